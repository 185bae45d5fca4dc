//! `pull --extract` of hostile layers: a bomb that claims a large size,
//! bytes past the declared size, and one file named two ways. The remote
//! path ends as the local one does: refused with nothing in place, or the
//! same tree.

use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;
use ferry_registry::ClientError;
use ferry_registry::progress::NoProgress;
use ferry_registry::remote_extract::{RemoteExtractOptions, extract_remote};
use ferry_store::StoreError;
use ferry_store::extract::{ExtractOptions, extract};
use serde_json::json;

use crate::common::*;
use crate::hostile::{Hostile, noise};

const TAR: &str = "application/vnd.cncf.model.weight.v1.tar";
const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const RAW: &str = "application/vnd.cncf.model.weight.v1.raw";

/// A layer to seed: bytes, media type, file path, and a size to declare
/// instead of the real one.
struct Layer {
    bytes: Vec<u8>,
    media_type: &'static str,
    path: Option<&'static str>,
    declared: Option<u64>,
}

fn layer(bytes: Vec<u8>, media_type: &'static str, path: Option<&'static str>) -> Layer {
    Layer {
        bytes,
        media_type,
        path,
        declared: None,
    }
}

/// Seeds `repo:tag` with `layers` and an empty config (no diffIds to
/// check: the sizes and digests are what is tested).
fn seed(registry: &Hostile, repo: &str, tag: &str, layers: &[Layer]) {
    let config = registry.put_blob(repo, Bytes::from_static(b"{}"));
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| {
            let mut d = json!({
                "mediaType": l.media_type,
                "digest": registry.put_blob(repo, l.bytes.clone()),
                "size": l.declared.unwrap_or(l.bytes.len() as u64),
            });
            if let Some(path) = l.path {
                d["annotations"] = json!({"org.cncf.model.filepath": path});
            }
            d
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": "application/vnd.example.test",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": descriptors,
    });
    registry.put_manifest(
        repo,
        tag,
        Bytes::from(manifest.to_string()),
        ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
    );
}

/// A zstd tar holding one file of `size` zeros.
fn zstd_zero_bomb(size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let mut builder = tar::Builder::new(encoder);
    builder
        .append_data(&mut header, "zeros.bin", io::repeat(0).take(size))
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tar of (name, content or symlink target, is_symlink) entries.
fn tar_of(entries: &[(&str, &str, bool)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, value, is_link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        if *is_link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, name, value).unwrap();
        } else {
            header.set_size(value.len() as u64);
            builder
                .append_data(&mut header, name, value.as_bytes())
                .unwrap();
        }
    }
    builder.into_inner().unwrap()
}

fn options() -> RemoteExtractOptions {
    RemoteExtractOptions {
        concurrency: 4,
        ..RemoteExtractOptions::default()
    }
}

/// The remote extraction of `tag` must fail as `expected` says, leaving no
/// target and no staging directory.
async fn assert_refused(registry: &Hostile, tag: &str, expected: impl Fn(&ClientError) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let error = extract_remote(
        &client(),
        &registry.reference(&format!("m:{tag}")),
        &out,
        &options(),
        &NoProgress,
    )
    .await
    .expect_err(&format!("{tag} was extracted"));
    assert!(expected(&error), "{tag}: {error:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{tag}: left behind {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_bomb_claiming_a_large_size_is_stopped_by_what_it_holds() {
    let registry = Hostile::start("127.0.0.1").await;
    // Sent without Content-Length, so only the bytes can tell the truth.
    registry.with(|s| s.faults.chunked_blobs = true);
    let bomb = zstd_zero_bomb(1 << 30);
    seed(
        &registry,
        "m",
        "bomb",
        &[Layer {
            declared: Some(20 << 20),
            ..layer(bomb, TAR_ZSTD, None)
        }],
    );
    assert_refused(&registry, "bomb", |e| {
        matches!(e, ClientError::Store(StoreError::DecompressionBomb { compressed, .. }) if *compressed < 1 << 20)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_bytes_past_the_declared_size_are_refused() {
    let registry = Hostile::start("127.0.0.1").await;
    registry.with(|s| s.faults.chunked_blobs = true);
    let content = vec![7u8; 1 << 20];
    seed(
        &registry,
        "m",
        "long",
        &[Layer {
            declared: Some(1000),
            ..layer(content.clone(), RAW, Some("w.bin"))
        }],
    );
    assert_refused(
        &registry,
        "long",
        |e| matches!(e, ClientError::Integrity { reason, .. } if reason.contains("1000 bytes")),
    )
    .await;
    seed(
        &registry,
        "m",
        "short",
        &[Layer {
            declared: Some(2 << 20),
            ..layer(content, RAW, Some("w.bin"))
        }],
    );
    assert_refused(
        &registry,
        "short",
        |e| matches!(e, ClientError::Integrity { reason, .. } if reason.contains("ended after")),
    )
    .await;
}

/// Every path under `dir` with its kind and content (or link target),
/// sorted.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                pending.push(path.clone());
                "dir".to_string()
            } else {
                format!(
                    "file {}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                )
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_named_two_ways_is_placed_as_locally() {
    let registry = Hostile::start("127.0.0.1").await;
    seed(
        &registry,
        "m",
        "spellings",
        &[
            layer(b"first".to_vec(), RAW, Some("a")),
            layer(b"second".to_vec(), RAW, Some("./a")),
            layer(b"one".to_vec(), RAW, Some("d/./e")),
            layer(b"two".to_vec(), RAW, Some("d//e")),
            layer(
                tar_of(&[
                    ("b", "target", false),
                    ("./b2", "b", true),
                    ("c", "file", false),
                ]),
                TAR,
                None,
            ),
            // A symlink named `./c` after the file `c`: the later one wins.
            layer(tar_of(&[("./c", "b", true)]), TAR, None),
        ],
    );
    let reference = registry.reference("m:spellings");
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote");
    extract_remote(&client(), &reference, &remote, &options(), &NoProgress)
        .await
        .expect("remote extraction");
    let (_store_dir, store) = store();
    pull(&client(), &store, &reference).await.expect("pull");
    let local = dir.path().join("local");
    extract(
        &store,
        &reference.whole(),
        &local,
        &ExtractOptions::default(),
    )
    .expect("local extraction");

    let tree = snapshot(&remote);
    assert_eq!(tree, snapshot(&local), "remote and local extraction differ");
    let expect = |path: &str, what: &str| {
        assert!(
            tree.contains(&(path.to_string(), what.to_string())),
            "{path}: {tree:?}"
        );
    };
    expect("a", "file second");
    expect("d/e", "file two");
    expect("c", "link b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncompressed_layer_whose_diff_id_is_not_its_digest_is_refused() {
    // extract and mount refuse a config whose diffIds disagree with the
    // layers even when nothing is compressed; `pull --extract` must too.
    let registry = Hostile::start("127.0.0.1").await;
    let content = b"weights".to_vec();
    let layer_digest = registry.put_blob("m", content.clone());
    for (tag, diff_id) in [
        ("wrong", format!("sha256:{}", "0".repeat(64))),
        ("right", layer_digest.clone()),
    ] {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        })
        .to_string();
        let config_size = config.len();
        let config_digest = registry.put_blob("m", Bytes::from(config));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
            "config": {
                "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_CONFIG,
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [{
                "mediaType": RAW,
                "digest": layer_digest,
                "size": content.len(),
                "annotations": {"org.cncf.model.filepath": "w.bin"},
            }],
        });
        registry.put_manifest(
            "m",
            tag,
            Bytes::from(manifest.to_string()),
            ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
        );
    }
    assert_refused(&registry, "wrong", |e| {
        matches!(e, ClientError::Store(StoreError::DiffIdMismatch { .. }))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    extract_remote(
        &client(),
        &registry.reference("m:right"),
        &dir.path().join("out"),
        &options(),
        &NoProgress,
    )
    .await
    .expect("the consistent artifact extracts");
    assert_eq!(
        std::fs::read(dir.path().join("out/w.bin")).unwrap(),
        content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_layer_is_read_in_ordered_ranges_and_checked() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(3 * 1024 * 1024 + 5, 79);
    let digest = registry.put_blob("m", Bytes::from(content.clone()));
    seed(
        &registry,
        "m",
        "v1",
        &[layer(
            content.clone(),
            crate::hostile::WEIGHT_RAW,
            Some("w.bin"),
        )],
    );
    let client = crate::ranged::ranged_client();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    extract_remote(
        &client,
        &registry.reference("m:v1"),
        &out,
        &options(),
        &NoProgress,
    )
    .await
    .expect("a ranged extraction");
    assert!(std::fs::read(out.join("w.bin")).unwrap() == content);
    let gets = registry.requests("GET", &format!("/blobs/{digest}"));
    assert!(gets.len() >= 4, "{} requests", gets.len());
    assert!(
        gets.iter()
            .all(|s| crate::ranged::closed_range(s).is_some())
    );

    // A corrupt range is caught by the digest check; nothing is placed.
    registry.with(|s| {
        s.faults
            .corrupt_range_once
            .insert(digest.clone(), 2 * 1024 * 1024 + 1)
    });
    let again = dir.path().join("again");
    let error = extract_remote(
        &client,
        &registry.reference("m:v1"),
        &again,
        &options(),
        &NoProgress,
    )
    .await
    .expect_err("corrupt bytes are refused");
    assert!(matches!(error, ClientError::Integrity { .. }), "{error:?}");
    assert!(!again.exists());
}
