//! Basic and Bearer challenges, credentials from Docker's config.json,
//! token caching and refresh.

use base64::Engine;
use ferry_registry::credentials::DockerConfig;
use ferry_registry::{Client, ClientError, ClientOptions};

use crate::common::*;
use crate::hostile::{Auth, Hostile, noise};

fn basic_registry(registry: &Hostile) {
    registry.with(|s| {
        s.auth = Auth::Basic {
            user: "alice".into(),
            password: "s3cret:with colon".into(),
        }
    });
}

/// A config.json in `dir` holding `user:password` for `registry`.
fn docker_config(
    dir: &std::path::Path,
    registry: &str,
    user: &str,
    password: &str,
) -> DockerConfig {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    let text = serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string();
    std::fs::write(&path, text).unwrap();
    DockerConfig::load(path).expect("load config.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_challenge_is_answered_with_docker_config_credentials() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(100_000, 20);
    registry.seed("team/m", "v1", &[("w.bin", content.clone())]);
    basic_registry(&registry);
    let (dir, store) = store();
    let config = docker_config(
        dir.path(),
        &registry.registry(),
        "alice",
        "s3cret:with colon",
    );
    let client = Client::new(ClientOptions {
        docker_config: Some(config),
        ..options()
    });
    pull(&client, &store, &registry.reference("team/m:v1"))
        .await
        .expect("Basic credentials from config.json are used");
    assert_blob(&store, &content);
    let challenged = registry
        .seen()
        .iter()
        .filter(|s| s.header("authorization").is_none())
        .count();
    assert_eq!(challenged, 1, "one challenge, then Basic on every request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_challenge_without_credentials_says_to_run_ferry_login() {
    let registry = Hostile::start("127.0.0.1").await;
    registry.seed("m", "v1", &[("w.bin", noise(1000, 21))]);
    basic_registry(&registry);
    let (dir, store) = store();
    // No config at all, and a config without this registry.
    let other = docker_config(dir.path(), "elsewhere.example", "bob", "pw");
    for config in [None, Some(other)] {
        let client = Client::new(ClientOptions {
            docker_config: config,
            ..options()
        });
        let error = pull(&client, &store, &registry.reference("m:v1"))
            .await
            .expect_err("no credentials, no pull");
        assert!(
            matches!(error, ClientError::Unauthorized { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("ferry login") && message.contains(&registry.registry()),
            "the message tells the user what to do: {message}"
        );
    }
    assert!(store.entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_basic_credentials_are_unauthorized_without_looping() {
    let registry = Hostile::start("127.0.0.1").await;
    registry.seed("m", "v1", &[("w.bin", noise(1000, 22))]);
    basic_registry(&registry);
    let (dir, store) = store();
    let config = docker_config(dir.path(), &registry.registry(), "alice", "wrong");
    let client = Client::new(ClientOptions {
        docker_config: Some(config),
        ..options()
    });
    let error = pull(&client, &store, &registry.reference("m:v1"))
        .await
        .expect_err("wrong credentials");
    assert!(
        matches!(error, ClientError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_eq!(registry.requests("GET", "/manifests/").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_for_the_scope_cached_and_refreshed() {
    let registry = Hostile::start("127.0.0.1").await;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.bin", noise(50_000, 23)),
        ("b.bin", noise(60_000, 24)),
        ("c.bin", noise(70_000, 25)),
    ];
    let seeded = registry.seed("org/model", "v1", &files);
    registry.with(|s| {
        s.auth = Auth::Bearer {
            service: "hostile.test".into(),
        }
    });
    let (_dir, store) = store();
    let client = client();
    pull(&client, &store, &registry.reference("org/model:v1"))
        .await
        .expect("pull with a bearer token");
    for (_, content) in &files {
        assert_blob(&store, content);
    }
    let tokens = registry.requests("GET", "/token");
    assert_eq!(
        tokens.len(),
        1,
        "one token serves the manifest and every blob"
    );
    assert_eq!(tokens[0].query_values("service"), vec!["hostile.test"]);
    assert_eq!(
        tokens[0].query_values("scope"),
        vec!["repository:org/model:pull"]
    );
    let blob_gets = registry.requests("GET", "/blobs/");
    assert_eq!(blob_gets.len(), seeded.layers.len() + 1);
    assert!(
        blob_gets
            .iter()
            .all(|s| s.header("authorization") == Some("Bearer tok-1")),
        "every blob request carries the cached token"
    );

    // The registry forgets its tokens: the next request gets a 401 and a
    // new token is fetched, once.
    registry.with(|s| s.tokens.clear());
    let more = registry.seed("org/model", "v2", &[("d.bin", noise(80_000, 26))]);
    pull(&client, &store, &registry.reference("org/model:v2"))
        .await
        .expect("pull after the token was revoked");
    assert_blob(&store, &more.layers[0].1);
    assert_eq!(
        registry.requests("GET", "/token").len(),
        2,
        "refreshed once"
    );
    let last = registry.requests("GET", "/blobs/");
    assert_eq!(
        last.last().unwrap().header("authorization"),
        Some("Bearer tok-2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_username_and_password_fields_are_used() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(50_000, 27);
    registry.seed("m", "v1", &[("w.bin", content.clone())]);
    basic_registry(&registry);
    let (dir, store) = store();
    let path = dir.path().join("config.json");
    let text = serde_json::json!({"auths": {registry.registry(): {
        "username": "alice",
        "password": "s3cret:with colon",
    }}})
    .to_string();
    std::fs::write(&path, text).unwrap();
    let client = Client::new(ClientOptions {
        docker_config: Some(DockerConfig::load(path).expect("load config.json")),
        ..options()
    });
    pull(&client, &store, &registry.reference("m:v1"))
        .await
        .expect("the username and password fields are credentials");
    assert_blob(&store, &content);
}
