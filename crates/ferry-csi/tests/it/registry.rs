//! Publishes that pull: from a registry, once for concurrent pods, held to
//! the signature policy, and failing with the codes kubelet acts on when
//! the artifact or the registry is missing.

use std::fs;

use base64::Engine as _;
use std::time::Duration;

use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn publishes_pull_once_and_the_policy_decides() {
    if !root() {
        return;
    }
    let (addr, _registry) = registry().await;
    let dir = tempfile::tempdir().unwrap();
    // Published from another store, as a CI job would.
    let publisher = ferry_store::Store::open(dir.path().join("publisher")).unwrap();
    pack_model(&publisher, dir.path(), "localhost/m:v1", 7);
    let reference = format!("{addr}/models/m:v1");
    push(&publisher, "localhost/m:v1", &reference).await;

    let harness = Harness::start(dir.path(), None).await;
    let targets: Vec<_> = (0..3)
        .map(|i| pod_target(dir.path(), &format!("pod-{i}")))
        .collect();
    let publishes = targets.iter().enumerate().map(|(i, target)| {
        let mut node = harness.node();
        let request = publish(&format!("vol-{i}"), target, &[("reference", &reference)]);
        async move { node.node_publish_volume(request).await }
    });
    for result in futures_util::future::join_all(publishes).await {
        result.expect("publish");
    }
    for target in &targets {
        assert_eq!(
            fs::read(target.join("config.json")).unwrap(),
            b"{\"seed\":7}\n"
        );
    }
    let metrics = harness.driver.metrics().render(&harness.store_root);
    let pulled: u64 = metric(&metrics, "ferry_csi_pulled_bytes_total");
    let blobs: u64 = 256 * 1024; // model.bin, the largest blob
    assert!(
        pulled >= blobs && pulled < 2 * blobs,
        "three publishes pulled {pulled} bytes: the artifact once\n{metrics}"
    );
    assert!(
        metrics.contains("ferry_csi_publishes_total{code=\"OK\"} 3"),
        "{metrics}"
    );

    // Missing from the registry: NotFound; the registry down: Unavailable.
    let mut node = harness.node();
    let missing = pod_target(dir.path(), "missing");
    let status = node
        .node_publish_volume(publish(
            "m",
            &missing,
            &[("reference", &format!("{addr}/models/none:v1"))],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let status = node
        .node_publish_volume(publish(
            "d",
            &missing,
            &[("reference", &format!("{closed}/models/m:v1"))],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!missing.exists());
    for (i, target) in targets.iter().enumerate() {
        node.node_unpublish_volume(unpublish(&format!("vol-{i}"), target))
            .await
            .unwrap();
    }
    harness.stop().await;

    // A policy that wants signatures: refused with the reason, nothing
    // mounted, nothing pulled.
    let policy = dir.path().join("strict.json");
    fs::write(
        &policy,
        serde_json::json!({"default": [{"type": "reject"}]}).to_string(),
    )
    .unwrap();
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = Harness::start(strict_dir.path(), Some(policy)).await;
    let target = pod_target(strict_dir.path(), "refused");
    let status = strict
        .node()
        .node_publish_volume(publish("r", &target, &[("reference", &reference)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("reject"), "{}", status.message());
    assert!(!target.exists(), "a rejected volume left a target");
    assert!(
        strict.store().resolve(&reference).is_err(),
        "the rejected artifact was stored"
    );
    strict.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_as_openmetrics_text() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), None).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ferry_csi::serve_metrics(
        std::sync::Arc::clone(&harness.driver),
        port,
        async {
            let _ = stopped.await;
        },
    ));
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(text) = http_get(port) {
            body = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        body.contains("# TYPE ferry_csi_publish_seconds histogram"),
        "{body}"
    );
    assert!(body.contains("ferry_csi_store_bytes"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    harness.stop().await;
}

fn http_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_the_requests_secrets() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    fs::write(&htpasswd, format!("puller:{hash}\n")).unwrap();
    let (addr, _registry) = registry_with(Some(htpasswd)).await;
    let registry_host = addr.to_string();
    let login = ferry_registry::credentials::DockerConfig::with_login(
        &registry_host,
        "puller",
        &ferry_registry::credentials::Secret::new("s3cret"),
    );
    let publisher = ferry_store::Store::open(dir.path().join("publisher")).unwrap();
    pack_model(&publisher, dir.path(), "localhost/m:v1", 9);
    let reference = format!("{addr}/private/m:v1");
    push_as(&publisher, "localhost/m:v1", &reference, Some(login)).await;

    let harness = Harness::start(dir.path(), None).await;
    let mut node = harness.node();
    let target = pod_target(dir.path(), "p");
    let anonymous = node
        .node_publish_volume(publish("v", &target, &[("reference", &reference)]))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::PermissionDenied, "{anonymous:?}");

    // A kubernetes.io/dockerconfigjson secret; its credsStore names a
    // program that must never run (only auths are taken from a secret).
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:s3cret");
    let docker_config = serde_json::json!({
        "auths": {registry_host.clone(): {"auth": auth}},
        "credsStore": "ferry-test-must-not-run",
    });
    let mut request = publish("v", &target, &[("reference", &reference)]);
    request
        .secrets
        .insert(".dockerconfigjson".into(), docker_config.to_string());
    node.node_publish_volume(request)
        .await
        .expect("publish with a docker config secret");
    assert_eq!(
        fs::read(target.join("config.json")).unwrap(),
        b"{\"seed\":9}\n"
    );
    node.node_unpublish_volume(unpublish("v", &target))
        .await
        .unwrap();

    // The artifact is in the store now: a request with other credentials
    // must still reach it on the registry to use that copy.
    let mut stranger = publish("s", &target, &[("reference", &reference)]);
    stranger.secrets.insert("username".into(), "puller".into());
    stranger.secrets.insert("password".into(), "guessed".into());
    let status = node.node_publish_volume(stranger).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(!target.exists());

    // username and password keys, with pullPolicy Always to ask again.
    let mut request = publish(
        "w",
        &target,
        &[("reference", &reference), ("pullPolicy", "Always")],
    );
    request.secrets.insert("username".into(), "puller".into());
    request.secrets.insert("password".into(), "wrong".into());
    let status = node.node_publish_volume(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    request.secrets.insert("password".into(), "s3cret".into());
    node.node_publish_volume(request)
        .await
        .expect("publish with username and password");
    node.node_unpublish_volume(unpublish("w", &target))
        .await
        .unwrap();
    harness.stop().await;
}
