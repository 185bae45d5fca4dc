//! Mirrors from registries.toml: tried in order for every read, then the
//! origin; writes go to the origin only.

use bytes::Bytes;
use ferry_registry::copy::{CopyOptions, Location, copy};
use ferry_registry::hosts::RegistriesConfig;
use ferry_registry::progress::NoProgress;
use ferry_registry::referrers::{list_referrers, referrer_tree, resolve_descriptor};
use ferry_registry::remote_extract::{LayerFilter, RemoteExtractOptions, extract_remote};
use ferry_registry::{Client, ClientOptions, Endpoint};
use ferry_spec::Reference;
use ferry_spec::media::{Category, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use serde_json::json;

use crate::common::*;
use crate::hostile::{Hostile, WEIGHT_RAW, noise};

/// A registries.toml naming `mirrors` for `origin`, loaded as ferry loads it.
fn registries(dir: &std::path::Path, origin: &str, mirrors: &[String]) -> RegistriesConfig {
    let path = dir.join("registries.toml");
    let list: Vec<String> = mirrors.iter().map(|m| format!("{m:?}")).collect();
    std::fs::write(
        &path,
        format!(
            "[[registry]]\nlocation = {origin:?}\nmirrors = [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    RegistriesConfig::load(&path).expect("load registries.toml")
}

/// A loopback port nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

fn pulls_seen(registry: &Hostile) -> usize {
    registry
        .seen()
        .iter()
        .filter(|s| {
            s.method == "GET" && (s.path.contains("/manifests/") || s.path.contains("/blobs/"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_is_served_by_the_first_mirror_that_answers() {
    let origin = Hostile::start("127.0.0.1").await;
    let mirror = Hostile::start("127.0.0.1").await;
    let files = [("w.bin", noise(300_000, 40)), ("x.bin", noise(1000, 41))];
    let seeded = origin.seed("lib/m", "v1", &files);
    mirror.seed("lib/m", "v1", &files);
    let (dir, store) = store();
    let config = registries(
        dir.path(),
        &origin.registry(),
        &[closed_port(), mirror.registry()],
    );
    let client = Client::new(ClientOptions {
        registries: config,
        ..options()
    });
    let pulled = pull(&client, &store, &origin.reference("lib/m:v1"))
        .await
        .expect("pull through the mirror");
    assert_eq!(pulled.digest.to_string(), seeded.manifest);
    for (_, content) in &files {
        assert_blob(&store, content);
    }
    assert_eq!(pulls_seen(&origin), 0, "the origin was not asked");
    assert_eq!(pulls_seen(&mirror), 1 + 1 + files.len());
    // The artifact is named after the origin, not the mirror.
    let name = origin.reference("lib/m:v1").whole();
    assert!(store.resolve(&name).is_ok(), "stored as {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_that_miss_or_lie_fall_back_to_the_origin() {
    let origin = Hostile::start("127.0.0.1").await;
    let empty_mirror = Hostile::start("127.0.0.1").await;
    let lying_mirror = Hostile::start("127.0.0.1").await;
    let files = [("w.bin", noise(200_000, 42))];
    let seeded = origin.seed("m", "v1", &files);
    lying_mirror.seed("m", "v1", &files);
    let layer = seeded.layers[0].0.clone();
    lying_mirror.with(|s| s.faults.wrong_content.insert(layer.clone()));
    let (dir, store) = store();
    let config = registries(
        dir.path(),
        &origin.registry(),
        &[empty_mirror.registry(), lying_mirror.registry()],
    );
    let client = Client::new(ClientOptions {
        registries: config,
        ..options()
    });
    pull(&client, &store, &origin.reference("m:v1"))
        .await
        .expect("the origin serves what the mirrors could not");
    assert_blob(&store, &files[0].1);
    assert_eq!(empty_mirror.requests("GET", "/manifests/v1").len(), 1);
    assert_eq!(lying_mirror.requests("GET", &layer).len(), 1);
    assert_eq!(
        origin.requests("GET", &layer).len(),
        1,
        "the blob came from the origin"
    );
    assert!(
        origin.requests("GET", "/manifests/").is_empty(),
        "the manifest came from the mirror"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_error_is_reported_when_nothing_has_the_artifact() {
    let origin = Hostile::start("127.0.0.1").await;
    let mirror = Hostile::start("127.0.0.1").await;
    let (dir, store) = store();
    let config = registries(dir.path(), &origin.registry(), &[mirror.registry()]);
    let client = Client::new(ClientOptions {
        registries: config,
        ..options()
    });
    let error = pull(&client, &store, &origin.reference("m:v1"))
        .await
        .expect_err("nobody has it");
    assert!(
        matches!(error, ferry_registry::ClientError::NotFound { .. })
            && error.to_string().contains(&origin.registry()),
        "{error}"
    );
    assert_eq!(mirror.requests("GET", "/manifests/v1").len(), 1);
}

/// A ModelPack-style artifact with a config file, a weight and a README
/// (one raw layer each, of three categories), and a signature attached to
/// it through the fallback tag. Returns the manifest digest and the files.
fn seed_mixed(registry: &Hostile, repo: &str, tag: &str) -> (String, Vec<(&'static str, Vec<u8>)>) {
    let files: Vec<(&'static str, &str, Vec<u8>)> = vec![
        (
            "config.json",
            "application/vnd.cncf.model.weight.config.v1.raw",
            b"{\"model_type\":\"test\"}\n".to_vec(),
        ),
        ("w.bin", WEIGHT_RAW, noise(250_000, 50)),
        (
            "README.md",
            "application/vnd.cncf.model.doc.v1.raw",
            b"# a model\n".to_vec(),
        ),
    ];
    let config = Bytes::from_static(br#"{"descriptor":{"name":"m"}}"#);
    let config_digest = registry.put_blob(repo, config.clone());
    let layers: Vec<serde_json::Value> = files
        .iter()
        .map(|(name, media_type, content)| {
            json!({
                "mediaType": media_type,
                "digest": registry.put_blob(repo, content.clone()),
                "size": content.len(),
                "annotations": {"org.cncf.model.filepath": name},
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": ferry_spec::media::ARTIFACT_TYPE_MODEL,
        "config": {
            "mediaType": "application/vnd.example.config+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers,
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let size = bytes.len();
    let digest = registry.put_manifest(repo, tag, bytes, MEDIA_TYPE_IMAGE_MANIFEST);

    let empty = registry.put_blob(repo, Bytes::from_static(b"{}"));
    let signature = Bytes::from_static(b"signed");
    let referrer = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{
            "mediaType": "application/octet-stream",
            "digest": registry.put_blob(repo, signature.clone()),
            "size": signature.len(),
        }],
        "subject": {"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": digest, "size": size},
    });
    let referrer = Bytes::from(serde_json::to_vec(&referrer).unwrap());
    let referrer_size = referrer.len();
    let referrer_digest = registry.put_manifest(repo, "sig", referrer, MEDIA_TYPE_IMAGE_MANIFEST);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_INDEX,
        "manifests": [{
            "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
            "digest": referrer_digest,
            "size": referrer_size,
            "artifactType": "application/vnd.example.sig",
        }],
    });
    registry.put_manifest(
        repo,
        &format!("sha256-{}", &digest["sha256:".len()..]),
        Bytes::from(serde_json::to_vec(&index).unwrap()),
        MEDIA_TYPE_IMAGE_INDEX,
    );
    let files = files
        .into_iter()
        .map(|(name, _, content)| (name, content))
        .collect();
    (digest, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_path_uses_the_mirror_while_the_origin_is_down() {
    let origin = closed_port();
    let mirror = Hostile::start("127.0.0.1").await;
    let (digest, files) = seed_mixed(&mirror, "org/m", "v1");
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions {
        registries: registries(dir.path(), &origin, &[mirror.registry()]),
        ..options()
    });
    let reference: Reference = format!("{origin}/org/m:v1").parse().unwrap();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();

    // pull
    let (_store_dir, store) = store();
    let pulled = pull(&client, &store, &reference).await.expect("pull");
    assert_eq!(pulled.digest.to_string(), digest);

    // pull --extract
    let all = RemoteExtractOptions {
        concurrency: 2,
        ..RemoteExtractOptions::default()
    };
    let out = dir.path().join("extracted");
    extract_remote(&client, &reference, &out, &all, &NoProgress)
        .await
        .expect("pull --extract");
    for (name, content) in &files {
        assert_eq!(&read(&format!("extracted/{name}")), content, "{name}");
    }

    // fetch --include config.json --category weight: both selectors add up
    let some = RemoteExtractOptions {
        filter: LayerFilter::new(&["config.json".into()], &[Category::Weight]).unwrap(),
        concurrency: 2,
        ..RemoteExtractOptions::default()
    };
    let out = dir.path().join("fetched");
    let fetched = extract_remote(&client, &reference, &out, &some, &NoProgress)
        .await
        .expect("fetch");
    assert_eq!(fetched.layers, ["config.json", "w.bin"]);
    assert_eq!(fetched.skipped_layers, 1);
    assert_eq!(read("fetched/config.json"), files[0].1);
    assert_eq!(read("fetched/w.bin"), files[1].1);
    assert!(!out.join("README.md").exists());

    // copy to a layout
    let layout = dir.path().join("layout");
    let copied = copy(
        &client,
        &Location::Registry(reference.clone()),
        &Location::Layout {
            path: layout.clone(),
            tag: Some("v1".into()),
        },
        &CopyOptions {
            recursive: true,
            concurrency: 2,
        },
        &NoProgress,
    )
    .await
    .expect("copy");
    assert_eq!(copied.digest.to_string(), digest);
    assert_eq!(
        copied.referrers, 1,
        "the referrer came through the mirror too"
    );

    // discover
    let subject = resolve_descriptor(&client, &reference)
        .await
        .expect("resolve the subject");
    assert_eq!(subject.digest().to_string(), digest);
    let endpoint = Endpoint::of(&reference);
    let listed = list_referrers(&client, &endpoint, subject.digest(), None)
        .await
        .expect("discover");
    assert_eq!(listed.descriptors.len(), 1);
    let tree = referrer_tree(&client, &endpoint, subject.digest(), None, 4)
        .await
        .expect("discover --tree");
    assert_eq!(tree.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_origin_never_to_a_mirror() {
    let origin = Hostile::start("127.0.0.1").await;
    let mirror = Hostile::start("127.0.0.1").await;
    let source = Hostile::start("127.0.0.1").await;
    let seeded = source.seed("m", "v1", &[("w.bin", noise(100_000, 51))]);
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(ClientOptions {
        registries: registries(dir.path(), &origin.registry(), &[mirror.registry()]),
        ..options()
    });
    let destination = origin.reference("m:v1");
    copy(
        &client,
        &Location::Registry(source.reference("m:v1")),
        &Location::Registry(destination),
        &CopyOptions {
            recursive: false,
            concurrency: 2,
        },
        &NoProgress,
    )
    .await
    .expect("copy to the origin");
    assert!(
        mirror.seen().is_empty(),
        "the mirror was asked: {:?}",
        mirror.seen()
    );
    assert_eq!(origin.requests("PUT", "/manifests/v1").len(), 1);
    origin.with(|s| {
        for (layer, _) in &seeded.layers {
            assert!(s.links.contains(&("m".to_string(), layer.clone())));
        }
    });
}
