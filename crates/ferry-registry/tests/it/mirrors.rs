//! Mirrors from registries.toml: tried in order for pulls, then the origin.

use ferry_registry::hosts::RegistriesConfig;
use ferry_registry::{Client, ClientOptions};

use crate::common::*;
use crate::hostile::{Hostile, noise};

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
