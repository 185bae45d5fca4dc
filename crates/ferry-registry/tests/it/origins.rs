//! Credentials stay on the origin they are for: an upload `Location` on
//! another server gets the upload, never the registry's credentials, and
//! that server cannot obtain them by asking.

use base64::Engine;
use ferry_registry::credentials::DockerConfig;
use ferry_registry::progress::NoProgress;
use ferry_registry::transfer;
use ferry_registry::{Client, ClientError, ClientOptions};
use ferry_store::pack::{PackOptions, pack};

use crate::common::*;
use crate::hostile::{Auth, Hostile, noise};

/// A registry demanding Basic credentials that sends every upload session
/// to `elsewhere`, and a client holding those credentials.
fn registry_sending_uploads_to(
    registry: &Hostile,
    elsewhere: &Hostile,
    dir: &std::path::Path,
) -> Client {
    registry.with(|s| {
        s.auth = Auth::Basic {
            user: "alice".into(),
            password: "s3cret".into(),
        };
        s.faults.upload_location_base = Some(elsewhere.url());
    });
    elsewhere.open_uploads("m", 20);
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let path = dir.join("config.json");
    let config = serde_json::json!({"auths": {registry.registry(): {"auth": auth}}});
    std::fs::write(&path, config.to_string()).unwrap();
    Client::new(ClientOptions {
        docker_config: Some(DockerConfig::load(path).unwrap()),
        ..options()
    })
}

/// Packs a model with a file large enough to go up in a PATCH, so the
/// session's POST, PATCH and PUT are all exercised.
fn pack_model(
    store: &ferry_store::Store,
    dir: &std::path::Path,
    reference: &ferry_spec::Reference,
) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), b"{\"model_type\":\"test\"}\n").unwrap();
    let big = usize::try_from(ferry_registry::api::MONOLITHIC_MAX).unwrap() + 1024;
    std::fs::write(model.join("weights.bin"), noise(big, 40)).unwrap();
    pack(store, &model, reference, &PackOptions::default()).expect("pack");
}

fn assert_no_credentials(server: &Hostile) {
    for seen in server.seen() {
        assert_eq!(
            seen.header("authorization"),
            None,
            "credentials reached another origin: {} {}",
            seen.method,
            seen.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_location_on_another_origin_gets_no_credentials() {
    let registry = Hostile::start("127.0.0.1").await;
    let elsewhere = Hostile::start("127.0.0.1").await;
    let (dir, store) = store();
    let client = registry_sending_uploads_to(&registry, &elsewhere, dir.path());
    let reference = registry.reference("m:v1");
    pack_model(&store, dir.path(), &reference);

    transfer::push(
        &client,
        &store,
        &reference.whole(),
        &reference,
        2,
        &NoProgress,
    )
    .await
    .expect("the push goes through the other server");
    for method in ["PATCH", "PUT"] {
        assert!(
            !elsewhere.requests(method, "/blobs/uploads/").is_empty(),
            "no {method} reached the session's server"
        );
    }
    assert_no_credentials(&elsewhere);
    assert!(
        registry
            .requests("POST", "/blobs/uploads/")
            .iter()
            .all(|s| s
                .header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))),
        "the registry itself got its credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_asking_for_credentials_does_not_get_them() {
    let registry = Hostile::start("127.0.0.1").await;
    // The session's server challenges with a token realm of its own: to
    // answer, the client would send the registry's Basic credentials there.
    let elsewhere = Hostile::start("127.0.0.1").await;
    elsewhere.with(|s| {
        s.auth = Auth::Bearer {
            service: "elsewhere".into(),
        }
    });
    let (dir, store) = store();
    let client = registry_sending_uploads_to(&registry, &elsewhere, dir.path());
    let reference = registry.reference("m:v1");
    pack_model(&store, dir.path(), &reference);

    let error = transfer::push(
        &client,
        &store,
        &reference.whole(),
        &reference,
        2,
        &NoProgress,
    )
    .await
    .expect_err("the other server's challenge is not answered");
    assert!(
        matches!(error, ClientError::Invalid { .. }) && error.to_string().contains("credentials"),
        "{error:?}"
    );
    assert_no_credentials(&elsewhere);
    assert!(
        elsewhere.requests("GET", "/token").is_empty(),
        "a token was asked of the other server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_target_asking_for_credentials_does_not_get_them() {
    // The registry redirects blob reads to a host that challenges with a
    // token realm of its own: the challenge comes from the redirect target,
    // not from the URL the client asked for, and must not be answered.
    let registry = Hostile::start("127.0.0.1").await;
    let cdn = Hostile::start("127.0.0.2").await;
    let content = noise(100_000, 41);
    registry.seed("m", "v1", &[("w.bin", content.clone())]);
    cdn.seed("m", "v1", &[("w.bin", content)]);
    registry.with(|s| {
        s.auth = Auth::Basic {
            user: "alice".into(),
            password: "s3cret".into(),
        };
        s.faults.redirect_blobs_to = Some(cdn.url());
    });
    cdn.with(|s| {
        s.auth = Auth::Bearer {
            service: "cdn".into(),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let path = dir.path().join("config.json");
    let config = serde_json::json!({"auths": {registry.registry(): {"auth": auth}}});
    std::fs::write(&path, config.to_string()).unwrap();
    let client = Client::new(ClientOptions {
        docker_config: Some(DockerConfig::load(path).unwrap()),
        ..options()
    });
    let (_store_dir, store) = store();

    let error = pull(&client, &store, &registry.reference("m:v1"))
        .await
        .expect_err("the redirect target's challenge is not answered");
    assert!(error.to_string().contains("credentials"), "{error:?}");
    assert_no_credentials(&cdn);
    assert!(
        cdn.requests("GET", "/token").is_empty(),
        "a token was asked of the redirect target"
    );
}
