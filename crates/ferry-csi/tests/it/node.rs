//! The Node service with real mounts: read-only and writable inline
//! volumes, subpaths, stacks, two pods on one artifact, repeats,
//! conflicts, a restart in the middle, and malformed requests.

use std::fs;
use std::os::unix::fs::MetadataExt;

use ferry_csi::proto::volume_capability::access_mode::Mode;
use ferry_csi::proto::volume_capability::{AccessType, BlockVolume};
use ferry_csi::proto::volume_usage::Unit;
use ferry_csi::proto::{NodeGetVolumeStatsRequest, NodePublishVolumeRequest};
use tonic::Code;

use crate::common::*;

const MODEL: &str = "localhost/models/m:v1";

async fn started() -> Option<(tempfile::TempDir, Harness)> {
    if !root() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), None).await;
    pack_model(&harness.store(), dir.path(), MODEL, 1);
    Some((dir, harness))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_inline_volume_shows_the_files_and_refuses_writes() {
    let Some((dir, harness)) = started().await else {
        return;
    };
    let mut node = harness.node();
    let target = pod_target(dir.path(), "pod-1");
    node.node_publish_volume(publish("vol-1", &target, &[("reference", MODEL)]))
        .await
        .expect("publish");

    let expected = files(&dir.path().join("model-1"));
    assert_eq!(files(&target), expected);
    for path in [target.join("new-file"), target.join("config.json")] {
        let error = fs::write(&path, b"x").expect_err("a write went through");
        assert_eq!(
            error.raw_os_error(),
            Some(libc_erofs()),
            "{}: {error}",
            path.display()
        );
    }
    let error = fs::create_dir(target.join("dir")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc_erofs()));

    let stats = node
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "vol-1".into(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .expect("stats")
        .into_inner();
    let bytes = stats
        .usage
        .iter()
        .find(|u| u.unit == Unit::Bytes as i32)
        .unwrap();
    let expected_bytes: usize = expected.values().map(Vec::len).sum();
    assert_eq!(bytes.used, expected_bytes as i64);

    node.node_unpublish_volume(unpublish("vol-1", &target))
        .await
        .expect("unpublish");
    assert!(!target.exists(), "the target is removed");
    // Again, and for a target that never existed: nothing to do.
    node.node_unpublish_volume(unpublish("vol-1", &target))
        .await
        .expect("a repeated unpublish succeeds");
    node.node_unpublish_volume(unpublish("vol-x", &dir.path().join("nowhere")))
        .await
        .expect("an unknown target succeeds");
    let status = node
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "vol-1".into(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    harness.stop().await;
}

fn libc_erofs() -> i32 {
    30 // EROFS on Linux
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writable_volume_keeps_its_writes_to_itself_and_loses_them_at_unpublish() {
    let Some((dir, harness)) = started().await else {
        return;
    };
    let mut node = harness.node();
    let writable = pod_target(dir.path(), "writer");
    let reader = pod_target(dir.path(), "reader");
    node.node_publish_volume(publish(
        "vol-w",
        &writable,
        &[("reference", MODEL), ("readOnly", "false")],
    ))
    .await
    .expect("publish rw");
    node.node_publish_volume(publish("vol-r", &reader, &[("reference", MODEL)]))
        .await
        .expect("publish ro");
    fs::write(writable.join("config.json"), b"changed").unwrap();
    fs::write(writable.join("scratch.txt"), b"new").unwrap();
    assert_eq!(
        fs::read(reader.join("config.json")).unwrap(),
        b"{\"seed\":1}\n"
    );
    assert!(!reader.join("scratch.txt").exists());

    // The request's readonly flag (a pod's readOnly: true) wins.
    let forced = pod_target(dir.path(), "forced");
    let mut request = publish(
        "vol-f",
        &forced,
        &[("reference", MODEL), ("readOnly", "false")],
    );
    request.readonly = true;
    node.node_publish_volume(request).await.expect("publish");
    assert!(
        fs::write(forced.join("x"), b"x").is_err(),
        "readonly was ignored"
    );

    node.node_unpublish_volume(unpublish("vol-w", &writable))
        .await
        .unwrap();
    node.node_publish_volume(publish(
        "vol-w2",
        &writable,
        &[("reference", MODEL), ("readOnly", "false")],
    ))
    .await
    .unwrap();
    assert_eq!(
        fs::read(writable.join("config.json")).unwrap(),
        b"{\"seed\":1}\n"
    );
    assert!(
        !writable.join("scratch.txt").exists(),
        "writes outlived the volume"
    );
    for (id, target) in [
        ("vol-w2", &writable),
        ("vol-r", &reader),
        ("vol-f", &forced),
    ] {
        node.node_unpublish_volume(unpublish(id, target))
            .await
            .unwrap();
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subpaths_stacks_and_layer_globs_shape_the_volume() {
    let Some((dir, harness)) = started().await else {
        return;
    };
    let top = "localhost/models/adapter:v1";
    pack_model(&harness.store(), dir.path(), top, 2);
    let mut node = harness.node();

    let sub_dir = pod_target(dir.path(), "sub-dir");
    node.node_publish_volume(publish(
        "v1",
        &sub_dir,
        &[("reference", MODEL), ("subPath", "sub")],
    ))
    .await
    .unwrap();
    assert_eq!(fs::read(sub_dir.join("README.md")).unwrap(), b"# model 1\n");
    assert!(!sub_dir.join("config.json").exists());

    let sub_file = pod_target(dir.path(), "sub-file");
    node.node_publish_volume(publish(
        "v2",
        &sub_file,
        &[("reference", MODEL), ("subPath", "config.json")],
    ))
    .await
    .unwrap();
    assert_eq!(fs::read(&sub_file).unwrap(), b"{\"seed\":1}\n");

    let stacked = pod_target(dir.path(), "stacked");
    node.node_publish_volume(publish(
        "v3",
        &stacked,
        &[("reference", MODEL), ("stack", top)],
    ))
    .await
    .unwrap();
    assert_eq!(
        fs::read(stacked.join("config.json")).unwrap(),
        b"{\"seed\":2}\n",
        "the top wins"
    );

    let no_weights = pod_target(dir.path(), "no-weights");
    node.node_publish_volume(publish(
        "v4",
        &no_weights,
        &[("reference", MODEL), ("exclude", "*.bin")],
    ))
    .await
    .unwrap();
    assert!(no_weights.join("config.json").is_file());
    assert!(!no_weights.join("model.bin").exists());

    let missing = pod_target(dir.path(), "missing");
    let status = node
        .node_publish_volume(publish(
            "v5",
            &missing,
            &[("reference", MODEL), ("subPath", "nope")],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(!missing.exists(), "a failed publish leaves no target");

    for (id, target) in [
        ("v1", &sub_dir),
        ("v2", &sub_file),
        ("v3", &stacked),
        ("v4", &no_weights),
    ] {
        node.node_unpublish_volume(unpublish(id, target))
            .await
            .unwrap();
        assert!(!target.exists(), "{}", target.display());
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pods_share_one_unpacked_copy_and_repeats_do_nothing() {
    let Some((dir, harness)) = started().await else {
        return;
    };
    let mut node = harness.node();
    let first = pod_target(dir.path(), "first");
    let second = pod_target(dir.path(), "second");
    let request = publish("a", &first, &[("reference", MODEL)]);
    node.node_publish_volume(request.clone()).await.unwrap();
    let layers_dir = harness.store_root.join("layers");
    let cached = count_entries(&layers_dir);
    assert_eq!(cached, 3, "one cache entry per layer");
    node.node_publish_volume(publish("b", &second, &[("reference", MODEL)]))
        .await
        .unwrap();
    assert_eq!(
        count_entries(&layers_dir),
        cached,
        "the second pod unpacked again"
    );
    let inode = |p: &std::path::Path| fs::metadata(p.join("model.bin")).unwrap().ino();
    // Both overlays show the same lower file: one copy on disk.
    assert_eq!(inode(&first), inode(&second));

    // The same request again: success, nothing new.
    node.node_publish_volume(request)
        .await
        .expect("an idempotent repeat");
    // Another volume, or other attributes, at a used target: AlreadyExists.
    let status = node
        .node_publish_volume(publish("c", &first, &[("reference", MODEL)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    let status = node
        .node_publish_volume(publish(
            "a",
            &first,
            &[("reference", MODEL), ("subPath", "sub")],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    node.node_unpublish_volume(unpublish("a", &first))
        .await
        .unwrap();
    node.node_unpublish_volume(unpublish("b", &second))
        .await
        .unwrap();
    harness.stop().await;
}

/// Cache entries: unpacked tar layers and placed raw layers.
fn count_entries(layers: &std::path::Path) -> usize {
    ["sha256", "file"]
        .iter()
        .map(|kind| {
            fs::read_dir(layers.join(kind))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_driver_unpublishes_what_the_last_one_published() {
    let Some((dir, harness)) = started().await else {
        return;
    };
    let target = pod_target(dir.path(), "survivor");
    harness
        .node()
        .node_publish_volume(publish("vol", &target, &[("reference", MODEL)]))
        .await
        .unwrap();
    harness.stop().await;
    assert!(
        target.join("config.json").is_file(),
        "the volume outlives the driver"
    );

    // A stale socket from the first run is replaced.
    std::os::unix::net::UnixListener::bind(dir.path().join("plugin/csi.sock")).unwrap();
    let restarted = Harness::start(dir.path(), None).await;
    let mut node = restarted.node();
    node.node_publish_volume(publish("vol", &target, &[("reference", MODEL)]))
        .await
        .expect("the same publish is recognised");
    node.node_unpublish_volume(unpublish("vol", &target))
        .await
        .expect("unpublish after the restart");
    assert!(!target.exists());
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_arguments() {
    let Some((dir, harness)) = started().await else {
        return;
    };
    let mut node = harness.node();
    let target = pod_target(dir.path(), "p");
    let good = || publish("v", &target, &[("reference", MODEL)]);
    let mut cases: Vec<(&str, NodePublishVolumeRequest)> = Vec::new();
    cases.push((
        "empty volume id",
        NodePublishVolumeRequest {
            volume_id: String::new(),
            ..good()
        },
    ));
    cases.push((
        "empty target",
        NodePublishVolumeRequest {
            target_path: String::new(),
            ..good()
        },
    ));
    for hostile in [
        "../../etc",
        "relative",
        "/var/lib/kubelet/pods/../../../etc",
    ] {
        cases.push((
            "hostile target",
            NodePublishVolumeRequest {
                target_path: hostile.into(),
                ..good()
            },
        ));
    }
    cases.push((
        "no capability",
        NodePublishVolumeRequest {
            volume_capability: None,
            ..good()
        },
    ));
    let mut block = capability(Mode::SingleNodeReaderOnly);
    block.access_type = Some(AccessType::Block(BlockVolume {}));
    cases.push((
        "block",
        NodePublishVolumeRequest {
            volume_capability: Some(block),
            ..good()
        },
    ));
    cases.push((
        "multi-node writers",
        NodePublishVolumeRequest {
            volume_capability: Some(capability(Mode::MultiNodeMultiWriter)),
            ..good()
        },
    ));
    cases.push(("no reference", publish("v", &target, &[])));
    cases.push((
        "unknown attribute",
        publish("v", &target, &[("reference", MODEL), ("subpath", "x")]),
    ));
    cases.push((
        "bad reference",
        publish("v", &target, &[("reference", "Not A Reference")]),
    ));
    for (what, request) in cases {
        let status = node.node_publish_volume(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    let status = node
        .node_unpublish_volume(unpublish("", &target))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(!target.exists());
    assert!(!std::path::Path::new("/etc/config.json").exists());

    // pullPolicy Never with an artifact the store lacks: NotFound.
    let status = node
        .node_publish_volume(publish(
            "v",
            &target,
            &[
                ("reference", "localhost/models/absent:v1"),
                ("pullPolicy", "Never"),
            ],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    harness.stop().await;
}
