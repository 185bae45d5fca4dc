//! Pushes: an upload whose connection drops mid-PATCH (a file resumes, a
//! stream starts over), blobs the registry already has, cross-repository
//! mounts, an unchanged artifact.

use std::path::Path;

use ferry_registry::copy::{CopyOptions, Location, copy};
use ferry_registry::progress::NoProgress;
use ferry_registry::transfer::{self, Pushed};
use ferry_registry::{Client, ClientError};
use ferry_spec::Reference;
use ferry_store::Store;
use ferry_store::pack::{PackOptions, pack};

use crate::common::*;
use crate::hostile::{Hostile, noise, sha256};

const MIB: usize = 1024 * 1024;

/// Packs a model directory holding `files` as `reference`.
fn pack_files(store: &Store, dir: &Path, reference: &Reference, files: &[(&str, Vec<u8>)]) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), b"{\"model_type\":\"test\"}\n").unwrap();
    for (name, content) in files {
        std::fs::write(model.join(name), content).unwrap();
    }
    pack(store, &model, reference, &PackOptions::default()).expect("pack");
}

async fn push(
    client: &Client,
    store: &Store,
    local: &Reference,
    to: &Reference,
) -> Result<Pushed, ClientError> {
    transfer::push(client, store, &local.whole(), to, 4, &NoProgress).await
}

/// Every blob of the stored artifact `reference`: (digest, content).
fn artifact_blobs(store: &Store, reference: &Reference) -> Vec<(String, Vec<u8>)> {
    let resolved = store.resolve(&reference.whole()).unwrap();
    let manifest = store.read_manifest(resolved.descriptor.digest()).unwrap();
    std::iter::once(manifest.config().clone())
        .chain(manifest.layers().iter().cloned())
        .map(|d| {
            let content = std::fs::read(store.blob_path(d.digest())).unwrap();
            (d.digest().to_string(), content)
        })
        .collect()
}

fn assert_registry_has(registry: &Hostile, repo: &str, blobs: &[(String, Vec<u8>)]) {
    registry.with(|s| {
        for (digest, content) in blobs {
            let held = s
                .blobs
                .get(digest)
                .unwrap_or_else(|| panic!("registry lacks {digest}"));
            assert!(
                held.as_ref() == content.as_slice(),
                "blob {digest} differs in the registry"
            );
            assert!(
                s.links.contains(&(repo.to_string(), digest.clone())),
                "{digest} not in {repo}"
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_dropped_mid_patch_resumes_from_the_reported_offset() {
    let registry = Hostile::start("127.0.0.1").await;
    let (dir, store) = store();
    let local = registry.reference("big:v1");
    // Larger than the monolithic limit, so it goes up in PATCH chunks.
    let weights = noise(40 * MIB, 30);
    pack_files(
        &store,
        dir.path(),
        &local,
        &[("model.safetensors", weights.clone())],
    );
    let kept = 10 * MIB + 777;
    registry.with(|s| s.faults.drop_patch_after = Some(kept));

    let pushed = push(&client(), &store, &local, &local)
        .await
        .expect("the push resumes after the dropped connection");
    let blobs = artifact_blobs(&store, &local);
    assert_registry_has(&registry, "big", &blobs);
    assert_eq!(pushed.uploaded, blobs.len());

    let big = sha256(&weights);
    assert!(blobs.iter().any(|(d, _)| *d == big));
    let status = registry.requests("GET", "/blobs/uploads/");
    assert!(
        !status.is_empty(),
        "the client asked where the upload stands"
    );
    let patches = registry.requests("PATCH", "/blobs/uploads/");
    let resumed = format!("{kept}-{}", weights.len() - 1);
    assert!(
        patches
            .iter()
            .any(|p| p.header("content-range") == Some(resumed.as_str())),
        "a PATCH resumed at byte {kept}: {:?}",
        patches
            .iter()
            .map(|p| p.header("content-range"))
            .collect::<Vec<_>>()
    );
    registry.with(|s| {
        assert!(
            s.manifests
                .contains_key(&("big".to_string(), "v1".to_string()))
        );
        assert!(s.uploads.is_empty(), "an upload was left open");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_the_registry_has_are_not_uploaded() {
    let registry = Hostile::start("127.0.0.1").await;
    let (dir, store) = store();
    let local = registry.reference("m:v1");
    pack_files(
        &store,
        dir.path(),
        &local,
        &[("w.safetensors", noise(MIB, 31))],
    );
    let blobs = artifact_blobs(&store, &local);
    for (_, content) in &blobs {
        registry.put_blob("m", content.clone());
    }
    let pushed = push(&client(), &store, &local, &local).await.expect("push");
    assert_eq!((pushed.uploaded, pushed.skipped), (0, blobs.len()));
    assert!(
        registry.requests("POST", "/blobs/uploads/").is_empty(),
        "nothing was uploaded"
    );
    assert!(registry.requests("PATCH", "/").is_empty());
    assert_eq!(registry.requests("HEAD", "/blobs/").len(), blobs.len());
    assert_eq!(registry.requests("PUT", "/manifests/v1").len(), 1);

    // The same artifact again: the registry has the manifest, nothing moves.
    registry.clear_log();
    let again = push(&client(), &store, &local, &local)
        .await
        .expect("re-push");
    assert_eq!((again.uploaded, again.skipped), (0, 0));
    assert!(registry.requests("HEAD", "/blobs/").is_empty());
    assert!(registry.requests("PUT", "/").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_mounted_from_another_repository_of_the_registry() {
    let registry = Hostile::start("127.0.0.1").await;
    let (dir, store) = store();
    let source = registry.reference("team/source:v1");
    pack_files(
        &store,
        dir.path(),
        &source,
        &[("w.safetensors", noise(MIB, 32))],
    );
    push(&client(), &store, &source, &source)
        .await
        .expect("first push");
    let blobs = artifact_blobs(&store, &source);

    registry.clear_log();
    let destination = registry.reference("team/copy:v1");
    let pushed = push(&client(), &store, &source, &destination)
        .await
        .expect("push with mounts");
    assert_eq!(
        pushed.uploaded, 0,
        "mounted blobs are not uploads: {pushed:?}"
    );
    assert_eq!(pushed.skipped, blobs.len());
    let posts = registry.requests("POST", "/v2/team/copy/blobs/uploads/");
    assert_eq!(posts.len(), blobs.len());
    for post in &posts {
        assert_eq!(post.query_values("from"), vec!["team/source"]);
        assert_eq!(post.query_values("mount").len(), 1);
    }
    assert!(registry.requests("PATCH", "/").is_empty());
    assert!(
        registry.requests("PUT", "/blobs/").is_empty(),
        "no blob was uploaded"
    );
    assert_registry_has(&registry, "team/copy", &blobs);

    // A registry that refuses to mount gets the bytes instead.
    registry.with(|s| {
        s.faults.refuse_mount = true;
        s.links.retain(|(repo, _)| repo != "team/copy");
        s.manifests.retain(|(repo, _), _| repo != "team/copy");
    });
    let pushed = push(&client(), &store, &source, &destination)
        .await
        .expect("push without mounts");
    assert_eq!(pushed.uploaded, blobs.len());
    assert_registry_has(&registry, "team/copy", &blobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_upload_reported_as_range_0_0_restarts_at_byte_0() {
    let registry = Hostile::start("127.0.0.1").await;
    let (dir, store) = store();
    let local = registry.reference("big:v1");
    let weights = noise(33 * MIB, 33);
    pack_files(
        &store,
        dir.path(),
        &local,
        &[("model.safetensors", weights.clone())],
    );
    // The first PATCHes are dropped before a byte is kept (fewer times than
    // the retry budget), so the client has to ask; the registry answers
    // `Range: 0-0` for its empty upload, as distribution does.
    registry.with(|s| s.faults.drop_patches_unread = 3);
    push(&client(), &store, &local, &local)
        .await
        .expect("the upload restarts from byte 0");
    assert_registry_has(&registry, "big", &artifact_blobs(&store, &local));
    let status = registry.requests("GET", "/blobs/uploads/");
    assert!(
        !status.is_empty(),
        "the client asked where the upload stands"
    );
    let patches = registry.requests("PATCH", "/blobs/uploads/");
    assert_eq!(patches.len(), 4, "three dropped, one taken");
    for patch in &patches {
        assert_eq!(
            patch.header("content-range"),
            Some(format!("0-{}", weights.len() - 1).as_str()),
            "every attempt starts at byte 0"
        );
    }
    assert_eq!(status.len(), 3, "the client asked after each drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_copy_whose_patch_is_dropped_starts_over_in_a_new_session() {
    let source = Hostile::start("127.0.0.1").await;
    let destination = Hostile::start("127.0.0.1").await;
    let weights = noise(3 * MIB, 34);
    let seeded = source.seed("m", "v1", &[("w.bin", weights.clone())]);
    // The first blob's stream is cut off (a stream cannot be resent).
    destination.with(|s| s.faults.drop_patches_unread = 1);
    let copied = copy(
        &client(),
        &Location::Registry(source.reference("m:v1")),
        &Location::Registry(destination.reference("m:v1")),
        &CopyOptions {
            recursive: false,
            concurrency: 1,
        },
        &NoProgress,
    )
    .await
    .expect("the blob goes up again in a new session");
    assert_eq!(copied.digest.to_string(), seeded.manifest);
    let blobs: Vec<(String, Vec<u8>)> = source.with(|s| {
        s.blobs
            .iter()
            .map(|(d, b)| (d.clone(), b.to_vec()))
            .collect()
    });
    assert_registry_has(&destination, "m", &blobs);
    assert_eq!(
        destination.requests("POST", "/v2/m/blobs/uploads/").len(),
        blobs.len() + 1,
        "one more session for the interrupted blob"
    );
    assert_eq!(
        destination.requests("PUT", "/blobs/uploads/").len(),
        blobs.len(),
        "the interrupted session was never closed"
    );
}
