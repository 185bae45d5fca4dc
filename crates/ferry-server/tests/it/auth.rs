//! `--htpasswd` Basic auth, `--anonymous-pull` and `--read-only`.

use std::path::Path;

use reqwest::{Method, StatusCode};

use crate::common::*;

fn write_htpasswd(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let other = bcrypt::hash("other", 4).unwrap();
    std::fs::write(&path, format!("# users\nalice:{hash}\n\nbob:{other}\n")).unwrap();
    path
}

async fn post_blob(
    server: &Server,
    repo: &str,
    bytes: &[u8],
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let digest = sha256(bytes);
    let mut request = server
        .request(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .body(bytes.to_vec());
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.unwrap()
}

async fn expect_401(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, "www-authenticate");
    assert!(challenge.starts_with("Basic"), "{challenge:?}");
    assert!(challenge.contains("realm="), "{challenge:?}");
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = write_htpasswd(dir.path());
    let server = Server::start_with(|c| c.htpasswd = Some(htpasswd)).await;

    // No credentials: 401 with a Basic challenge, on reads and writes.
    expect_401(server.get("/v2/").await).await;
    expect_401(post_blob(&server, "r", b"data", None).await).await;
    expect_401(server.get("/v2/_catalog").await).await;
    // Wrong password, unknown user, malformed header: 401.
    expect_401(post_blob(&server, "r", b"data", Some(("alice", "wrong"))).await).await;
    expect_401(post_blob(&server, "r", b"data", Some(("mallory", "s3cret"))).await).await;
    expect_401(post_blob(&server, "r", b"data", Some(("bob", "s3cret"))).await).await;
    let response = server
        .request(Method::GET, "/v2/")
        .header("authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    expect_401(response).await;
    let response = server
        .request(Method::GET, "/v2/")
        .header("authorization", "Bearer abc")
        .send()
        .await
        .unwrap();
    expect_401(response).await;
    // Nothing was stored by the refused requests.
    assert!(paths(&server.root().join("repos")).is_empty());

    // The right credentials: 201, and reads work.
    let response = post_blob(&server, "r", b"data", Some(("alice", "s3cret"))).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = post_blob(&server, "r", b"more", Some(("bob", "other"))).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = server
        .request(Method::GET, &format!("/v2/r/blobs/{}", sha256(b"data")))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), "data");
    // Still 401 without credentials on a read.
    expect_401(
        server
            .get(&format!("/v2/r/blobs/{}", sha256(b"data")))
            .await,
    )
    .await;
    // A correct password after a cached failure, and vice versa.
    let ok = server
        .request(Method::GET, "/v2/")
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    expect_401(post_blob(&server, "r", b"data", Some(("alice", "wrong"))).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_pull() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = write_htpasswd(dir.path());
    let server = Server::start_with(|c| {
        c.htpasswd = Some(htpasswd);
        c.anonymous_pull = true;
    })
    .await;
    let response = post_blob(&server, "pub", b"public", Some(("alice", "s3cret"))).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let digest = sha256(b"public");

    // Reads without credentials work.
    assert_eq!(server.get("/v2/").await.status(), StatusCode::OK);
    let response = server.get(&format!("/v2/pub/blobs/{digest}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), "public");
    let head = server.head(&format!("/v2/pub/blobs/{digest}")).await;
    assert_eq!(head.status(), StatusCode::OK);
    // Writes without credentials do not.
    expect_401(post_blob(&server, "pub", b"anon", None).await).await;
    let response = server
        .request(Method::PUT, "/v2/pub/manifests/latest")
        .header("content-type", MANIFEST)
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_401(response).await;
    expect_401(server.delete(&format!("/v2/pub/blobs/{digest}")).await).await;
    assert_eq!(
        server
            .head(&format!("/v2/pub/blobs/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        server
            .head(&format!("/v2/pub/blobs/{}", sha256(b"anon")))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // Populate with a writable server first.
    let server = Server::start_at(&root, |_| {}).await;
    let (manifest, _) = server.image("ro", Alg::Sha256, 1000).await;
    server
        .put_manifest_ok("ro", "v1", MANIFEST, &manifest)
        .await;
    let blob = server.push_blob("ro", b"kept", Alg::Sha256).await;
    let session = server.start_upload("ro").await;
    server.shutdown().await;

    let server = Server::start_at(&root, |c| c.read_only = true).await;
    // Reads work.
    let response = server.get("/v2/ro/manifests/v1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), manifest);
    assert_eq!(
        server.get(&format!("/v2/ro/blobs/{blob}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get("/v2/ro/tags/list").await.status(),
        StatusCode::OK
    );
    // Every write: 405 UNSUPPORTED, nothing changes.
    let writes = [
        server.request(Method::POST, "/v2/ro/blobs/uploads/"),
        server.request(
            Method::POST,
            &format!("/v2/ro/blobs/uploads/?digest={}", sha256(b"new")),
        ),
        server.request(Method::PATCH, &session),
        server.request(Method::PUT, &format!("{session}?digest={}", sha256(b""))),
        server.request(Method::DELETE, &session),
        server.request(Method::PUT, "/v2/ro/manifests/v2"),
        server.request(Method::DELETE, "/v2/ro/manifests/v1"),
        server.request(Method::DELETE, &format!("/v2/ro/blobs/{blob}")),
    ];
    for request in writes {
        let response = request.body("new").send().await.unwrap();
        expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    }
    assert_eq!(
        server.get("/v2/ro/manifests/v1").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get(&format!("/v2/ro/blobs/{blob}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(server.get(&session).await.status(), StatusCode::NO_CONTENT);
}
