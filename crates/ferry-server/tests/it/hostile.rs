//! Requests a hostile or broken client sends: traversal in names, digests
//! and upload ids, malformed and oversized bodies, stalled and concurrent
//! uploads, and a restart in the middle of an upload.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ferry_server::storage::Storage;
use ferry_server::storage::fs::FsStorage;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn traversal_in_names_creates_nothing_outside_the_root() {
    let server = Server::start().await;
    let parent = server.root().parent().unwrap().to_path_buf();
    let before_root = paths(server.root());
    let digest = sha256(b"x");
    let cases = [
        ("GET", format!("/v2/../../etc/blobs/{digest}")),
        ("POST", "/v2/../../etc/blobs/uploads/".to_string()),
        ("POST", "/v2/%2e%2e/%2e%2e/etc/blobs/uploads/".to_string()),
        ("POST", "/v2/a/../b/blobs/uploads/".to_string()),
        ("POST", "/v2/a/%2e%2e/%2e%2e/x/blobs/uploads/".to_string()),
        ("POST", "/v2/a/..%2f..%2fx/blobs/uploads/".to_string()),
        ("POST", "/v2/Upper/blobs/uploads/".to_string()),
        ("POST", "/v2/a/_blobs/blobs/uploads/".to_string()),
        (
            "POST",
            format!("/v2/../blobs/uploads/?digest={}", sha256(b"")),
        ),
        ("PUT", "/v2/../../etc/manifests/latest".to_string()),
        ("PUT", "/v2/a/%2e%2e/manifests/latest".to_string()),
        ("GET", "/v2/../../etc/tags/list".to_string()),
        ("GET", format!("/v2/a/../../referrers/{digest}")),
        ("DELETE", format!("/v2/..%2F..%2Fetc/blobs/{digest}")),
    ];
    for (method, path) in &cases {
        let body: &[u8] = if *method == "PUT" { b"{}" } else { b"" };
        let response = raw_request(server.addr, method, path, body).await;
        assert!(
            response.status == 400 || response.status == 404,
            "{method} {path}: {}",
            response.head
        );
        if response.status == 400 {
            assert_eq!(response.code().as_deref(), Some("NAME_INVALID"), "{path}");
        }
    }
    // Nothing new outside the root, nothing in the repository tree.
    let mut outside: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(outside, ["root"]);
    assert_eq!(paths(server.root()), before_root);
    assert!(paths(&server.root().join("repos")).is_empty());
    // The server still works.
    server.push_blob("a/b", b"fine", Alg::Sha256).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_in_digests_and_upload_ids() {
    let server = Server::start().await;
    let before = paths(server.root());
    // Digests in queries reach the digest parser: 400 DIGEST_INVALID.
    for digest in ["sha256:../../x", "sha256:..%2F..%2Fx", "sha512:/etc/passwd"] {
        let response = server
            .request(
                Method::POST,
                &format!("/v2/repo/blobs/uploads/?digest={digest}"),
            )
            .body("x")
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        let url = server.start_upload("repo").await;
        let response = server
            .request(Method::PUT, &format!("{url}?digest={digest}"))
            .body("x")
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        assert_eq!(server.delete(&url).await.status(), StatusCode::NO_CONTENT);
    }
    // In paths: 400 (DIGEST_INVALID) or 404, never a file access.
    for path in [
        "/v2/repo/blobs/sha256:..",
        "/v2/repo/blobs/sha256:../../x",
        "/v2/repo/blobs/sha256:..%2F..%2Fx",
        "/v2/repo/manifests/sha256:..%2F..%2Fblobs",
        "/v2/repo/referrers/sha256:..",
    ] {
        let methods: &[&str] = if path.contains("/referrers/") {
            &["GET"]
        } else {
            &["GET", "DELETE"]
        };
        for method in methods {
            let response = raw_request(server.addr, method, path, b"").await;
            assert!(
                response.status == 400 || response.status == 404,
                "{method} {path}: {}",
                response.head
            );
            if response.status == 400 {
                assert_eq!(response.code().as_deref(), Some("DIGEST_INVALID"), "{path}");
            }
        }
    }
    let put = raw_request(server.addr, "PUT", "/v2/repo/manifests/sha256:..", b"{}").await;
    assert_eq!(put.status, 400);
    // Upload ids that are not UUIDs: 404 BLOB_UPLOAD_UNKNOWN.
    let real = server.start_upload("repo").await;
    let real_id = real.rsplit('/').next().unwrap().to_string();
    for id in [
        "..%2Fx",
        "..",
        "not-a-uuid",
        "..%2F..%2Frepos",
        &format!("{real_id}%2F..%2F..%2Fx"),
    ] {
        for method in ["GET", "PATCH", "PUT", "DELETE"] {
            let path = format!("/v2/repo/blobs/uploads/{id}?digest={}", sha256(b""));
            let response = raw_request(server.addr, method, &path, b"").await;
            assert_eq!(response.status, 404, "{method} {path}: {}", response.head);
            assert_eq!(response.code().as_deref(), Some("BLOB_UPLOAD_UNKNOWN"));
        }
    }
    for path in [
        "/v2/repo/blobs/uploads/../x",
        "/v2/repo/blobs/uploads/../../../x",
    ] {
        let response = raw_request(server.addr, "PATCH", path, b"data").await;
        assert_eq!(response.status, 404, "{path}");
    }
    // A real session id under another repository is unknown there.
    let response = server
        .get(&format!("/v2/other/blobs/uploads/{real_id}"))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.delete(&real).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(paths(server.root()), before);
    assert_eq!(
        std::fs::read_dir(server.root().parent().unwrap())
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_manifests() {
    let server = Server::start_with(|c| c.max_manifest_bytes = 64 * 1024).await;
    let repo = "repo";
    for body in [
        &b"{not json"[..],
        b"[]",
        b"\"string\"",
        b"",
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":{"a":1}}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":"x"}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"digest":"sha256:../../x"}]}"#,
    ] {
        let response = server.put_manifest(repo, "bad", MANIFEST, body).await;
        expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    }
    // A Content-Type that contradicts the body's mediaType.
    let index = format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[]}}"#);
    let response = server
        .put_manifest(repo, "bad", MANIFEST, index.as_bytes())
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    // Over the configured limit: 413, also when the size is not announced.
    let mut big = format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[],"x":""#);
    big.push_str(&"A".repeat(100 * 1024));
    big.push_str("\"}");
    let response = server
        .put_manifest(repo, "big", INDEX, big.as_bytes())
        .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    // A huge announced body that is never sent: refused without waiting for it.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /v2/{repo}/manifests/huge HTTP/1.1\r\nHost: x\r\nContent-Type: {INDEX}\r\n\
         Content-Length: 1000000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; 128 * 1024]).await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            if raw.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to an oversized manifest");
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(
        server.get(&format!("/v2/{repo}/tags/list")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(server.get("/v2/").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_client_is_dropped_and_the_upload_resumes() {
    let idle = Duration::from_secs(1);
    let server = Server::start_with(|c| c.idle_timeout = idle).await;
    let repo = "stall";
    let blob = random_bytes(1000, 900);
    let digest = sha256(&blob);
    let url = server.start_upload(repo).await;

    // Headers announce 1000 bytes; 10 arrive; then nothing.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PATCH {url} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000\r\n\r\n",
        server.addr
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&blob[..10]).await.unwrap();
    stalled.flush().await.unwrap();
    let stalled_at = Instant::now();

    // Others are served meanwhile, including other uploads.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ping = tokio::time::timeout(Duration::from_millis(500), server.get("/v2/")).await;
    assert_eq!(
        ping.expect("served while a client stalls").status(),
        StatusCode::OK
    );
    server.push_blob("other", b"meanwhile", Alg::Sha256).await;

    // The stalled request is ended by the server soon after the idle timeout.
    let mut raw = Vec::new();
    let ended = tokio::time::timeout(idle * 10, stalled.read_to_end(&mut raw)).await;
    assert!(
        ended.is_ok(),
        "stalled connection still open after {:?}",
        idle * 10
    );
    let waited = stalled_at.elapsed();
    assert!(
        waited >= idle,
        "dropped before the idle timeout ({waited:?})"
    );
    if !raw.is_empty() {
        let response = RawResponse::parse(&raw);
        assert!(response.status >= 400, "{}", response.head);
    }

    // The session holds what was received and resumes from there.
    let response = server.get(&url).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(range_received(&response), 10);
    let response = server
        .request(Method::PATCH, &url)
        .header("content-range", "10-999")
        .header("content-length", "990")
        .body(blob[10..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&response, "range"), "0-999");
    let response = server
        .request(Method::PUT, &format!("{url}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let got = server.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.unwrap(), blob);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnecting_mid_upload_leaves_a_usable_session() {
    let server = Server::start().await;
    let blob = random_bytes(5000, 950);
    let digest = sha256(&blob);
    let url = server.start_upload("drop").await;
    {
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        let head = format!("PATCH {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&blob[..2000]).await.unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    } // dropped: connection closed mid-body
    // Wait until the server has noticed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let received = loop {
        let response = server.get(&url).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let received = range_received(&response);
        if received == 2000 || Instant::now() > deadline {
            break received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(received, 2000);
    let response = server
        .request(Method::PUT, &format!("{url}?digest={digest}"))
        .header("content-range", "2000-4999")
        .body(blob[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let got = server.get(&format!("/v2/drop/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.unwrap(), blob);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_of_the_same_blob() {
    let server = Server::start().await;
    let blob = random_bytes(4 * 1024 * 1024, 960);
    for alg in ALGS {
        let digest = alg.digest(&blob);
        let upload = |repo: &'static str| {
            let server = &server;
            let blob = blob.clone();
            let digest = digest.clone();
            async move {
                let url = server.start_upload(repo).await;
                let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
                    blob.chunks(256 * 1024).map(|c| Ok(c.to_vec())).collect();
                let response = server
                    .request(Method::PATCH, &url)
                    .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                        pieces,
                    )))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                server
                    .request(Method::PUT, &format!("{url}?digest={digest}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (a, b, c) = tokio::join!(upload("same"), upload("same"), upload("elsewhere"));
        assert_eq!(
            (a, b, c),
            (
                StatusCode::CREATED,
                StatusCode::CREATED,
                StatusCode::CREATED
            )
        );
        for repo in ["same", "elsewhere"] {
            let got = server.get(&format!("/v2/{repo}/blobs/{digest}")).await;
            assert_eq!(got.bytes().await.unwrap(), blob);
        }
    }
    assert!(paths(&server.root().join("uploads")).is_empty());
    assert!(paths(&server.root().join("tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for alg in ALGS {
        let blob = random_bytes(3000, 970);
        let digest = alg.digest(&blob);
        let server = Server::start_at(&root, |_| {}).await;
        let url = server.start_upload("restart/repo").await;
        let response = server
            .request(Method::PATCH, &url)
            .header("content-range", "0-1199")
            .body(blob[..1200].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        server.shutdown().await;

        // A new server on the same root (another port): the session is there.
        let server = Server::start_at(&root, |_| {}).await;
        let response = server.get(&url).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{alg:?}");
        assert_eq!(range_received(&response), 1200);
        let response = server
            .request(Method::PATCH, &url)
            .header("content-range", "1200-2999")
            .body(blob[1200..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let response = server
            .request(Method::PUT, &format!("{url}?digest={digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let got = server
            .get(&format!("/v2/restart/repo/blobs/{digest}"))
            .await;
        assert_eq!(got.bytes().await.unwrap(), blob);
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_expiry_spares_sessions_being_created() {
    // The server expires sessions at startup and every ten minutes; a
    // session whose directory exists but whose files are not written yet
    // must not count as ancient (it made uploads fail with 500 under load).
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path()).unwrap();
    let fresh = storage.upload_start("repo").await.unwrap();
    let creating = "00000000-0000-4000-8000-000000000000";
    std::fs::create_dir_all(dir.path().join("uploads").join(creating)).unwrap();
    let old = storage.upload_start("repo").await.unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("uploads").join(&old).join("data"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(48 * 3600))
        .unwrap();
    let day = Duration::from_secs(24 * 3600);
    let removed = storage.expire_sessions(day, 2 * day).await.unwrap();
    assert_eq!(removed, vec![old.clone()]);
    assert!(dir.path().join("uploads").join(creating).is_dir());
    assert_eq!(
        storage.upload_offset("repo", &fresh).await.unwrap(),
        Some(0)
    );
    assert_eq!(storage.upload_offset("repo", &old).await.unwrap(), None);
}

/// Reads until the server closes the connection (or a response head ends),
/// returning what arrived, or `None` if it is still open after `limit`.
async fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| raw)
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_headers_and_manifest_bodies_are_dropped() {
    let idle = Duration::from_secs(1);
    let server = Server::start_with(|c| c.idle_timeout = idle).await;
    let (manifest, _) = server.image("stall", Alg::Sha256, 980).await;

    // Half a request head, then nothing.
    let mut headers = TcpStream::connect(server.addr).await.unwrap();
    headers
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A manifest PUT announcing more than it sends.
    let mut body = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /v2/stall/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: {MANIFEST}\r\n\
         Content-Length: {}\r\n\r\n",
        manifest.len()
    );
    body.write_all(head.as_bytes()).await.unwrap();
    body.write_all(&manifest[..manifest.len() / 2])
        .await
        .unwrap();

    let (a, b) = tokio::join!(
        wait_for_close(&mut headers, idle * 10),
        wait_for_close(&mut body, idle * 10)
    );
    assert!(
        a.is_some(),
        "a client stalled in its headers is never dropped"
    );
    let b = b.expect("a client stalled in a manifest body is never dropped");
    if !b.is_empty() {
        let response = RawResponse::parse(&b);
        assert!(response.status >= 400, "{}", response.head);
    }
    assert_eq!(
        server.get("/v2/stall/manifests/v1").await.status(),
        StatusCode::NOT_FOUND
    );
    // The same manifest sent whole is fine.
    server
        .put_manifest_ok("stall", "v1", MANIFEST, &manifest)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_manifest_is_not_stored() {
    let server = Server::start().await;
    let repo = "atomic";
    let (manifest, _) = server.image(repo, Alg::Sha256, 990).await;
    let mut value: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    for subject in [
        serde_json::json!({"mediaType": MANIFEST, "digest": "sha256:bogus", "size": 1}),
        serde_json::json!({"mediaType": MANIFEST, "size": 1}),
    ] {
        value["subject"] = subject;
        let bytes = serde_json::to_vec(&value).unwrap();
        let response = server
            .put_manifest(repo, "bad-subject", MANIFEST, &bytes)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
        let path = format!("/v2/{repo}/manifests/bad-subject");
        assert_eq!(server.get(&path).await.status(), StatusCode::NOT_FOUND);
        let path = format!("/v2/{repo}/manifests/{}", sha256(&bytes));
        assert_eq!(server.get(&path).await.status(), StatusCode::NOT_FOUND);
    }
    let response = server.get(&format!("/v2/{repo}/tags/list")).await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_are_checked_by_their_declared_media_type() {
    let server = Server::start().await;
    let repo = "shape";
    let config = server.push_blob(repo, b"{}", Alg::Sha256).await;
    let layer = server.push_blob(repo, b"layer", Alg::Sha256).await;
    let missing = sha256(b"never pushed");
    let descriptor = |media_type: &str, digest: &str| serde_json::json!({"mediaType": media_type, "digest": digest, "size": 2});
    let refuse = |content_type: &'static str, body: serde_json::Value, code: &'static str| {
        let server = &server;
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let response = server.put_manifest(repo, "x", content_type, &bytes).await;
            expect_error(response, StatusCode::BAD_REQUEST, code).await;
        }
    };
    // An image manifest with a `manifests` key is still an image manifest:
    // its config and layers must exist.
    refuse(
        MANIFEST,
        serde_json::json!({"schemaVersion": 2, "manifests": [],
            "config": descriptor(CONFIG, &missing), "layers": [descriptor(LAYER, &missing)]}),
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    // Config and layers are required.
    refuse(
        MANIFEST,
        serde_json::json!({"schemaVersion": 2, "layers": [descriptor(LAYER, &layer)]}),
        "MANIFEST_INVALID",
    )
    .await;
    refuse(
        MANIFEST,
        serde_json::json!({"schemaVersion": 2, "config": descriptor(CONFIG, &config)}),
        "MANIFEST_INVALID",
    )
    .await;
    // `urls` only on non-distributable layers.
    let mut with_urls = descriptor(CONFIG, &config);
    with_urls["urls"] = serde_json::json!(["https://example.com/c"]);
    refuse(
        MANIFEST,
        serde_json::json!({"schemaVersion": 2, "config": with_urls, "layers": []}),
        "MANIFEST_INVALID",
    )
    .await;
    let mut layer_with_urls = descriptor(LAYER, &missing);
    layer_with_urls["urls"] = serde_json::json!(["https://example.com/l"]);
    refuse(
        MANIFEST,
        serde_json::json!({"schemaVersion": 2, "config": descriptor(CONFIG, &config),
            "layers": [layer_with_urls]}),
        "MANIFEST_INVALID",
    )
    .await;
    // Docker types are checked the same way.
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    let docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
    refuse(
        docker_manifest,
        serde_json::json!({"schemaVersion": 2, "mediaType": docker_manifest,
            "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
            "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &missing)]}),
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    refuse(
        docker_list,
        serde_json::json!({"schemaVersion": 2, "mediaType": docker_list,
            "manifests": [descriptor(docker_manifest, &missing)]}),
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    refuse(
        docker_list,
        serde_json::json!({"schemaVersion": 2, "mediaType": docker_list}),
        "MANIFEST_INVALID",
    )
    .await;
    // An index whose entries name blobs, not manifests.
    refuse(
        INDEX,
        serde_json::json!({"schemaVersion": 2, "mediaType": INDEX,
            "manifests": [descriptor(MANIFEST, &layer)]}),
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    // Nothing was stored by the refusals.
    assert_eq!(
        server
            .get(&format!("/v2/{repo}/manifests/x"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // A Docker manifest and list that are whole are accepted and served
    // with their type.
    let image = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": docker_manifest,
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)]}))
    .unwrap();
    server
        .put_manifest_ok(repo, "docker", docker_manifest, &image)
        .await;
    let list = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": docker_list, "manifests": [descriptor(docker_manifest, &sha256(&image))]}))
    .unwrap();
    server
        .put_manifest_ok(repo, "list", docker_list, &list)
        .await;
    let response = server.get(&format!("/v2/{repo}/manifests/list")).await;
    assert_eq!(header(&response, "content-type"), docker_list);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_of_other_media_types_are_refused() {
    let server = Server::start().await;
    let repo = "xss";
    let (manifest, _) = server.image(repo, Alg::Sha256, 1200).await;
    // The body says nothing: the Content-Type alone would decide.
    let mut value: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    value.as_object_mut().unwrap().remove("mediaType");
    value["annotations"] = serde_json::json!({"x": "<script>alert(1)</script>"});
    let bytes = serde_json::to_vec(&value).unwrap();
    for content_type in [
        "text/html",
        "text/html; charset=utf-8",
        "application/json",
        "image/svg+xml",
    ] {
        let response = server
            .put_manifest(repo, "page", content_type, &bytes)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    }
    // Nor may the body name another type.
    value["mediaType"] = serde_json::json!("text/html");
    let response = server
        .request(Method::PUT, &format!("/v2/{repo}/manifests/page"))
        .body(serde_json::to_vec(&value).unwrap())
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    assert_eq!(
        server
            .get(&format!("/v2/{repo}/manifests/page"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_says_nosniff() {
    let server = Server::start().await;
    let repo = "sniff";
    let (manifest, digest) = server.image(repo, Alg::Sha256, 1300).await;
    server
        .put_manifest_ok(repo, "v1", MANIFEST, &manifest)
        .await;
    let layer =
        serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
    let responses = [
        server.get("/v2/").await,
        server.get(&format!("/v2/{repo}/blobs/{layer}")).await,
        server.head(&format!("/v2/{repo}/blobs/{layer}")).await,
        server.get(&format!("/v2/{repo}/manifests/{digest}")).await,
        server.get(&format!("/v2/{repo}/manifests/missing")).await,
        server.get("/v2/_catalog").await,
        server.get(&format!("/v2/{repo}/tags/list")).await,
        server.get(&format!("/v2/{repo}/referrers/{digest}")).await,
        server.get("/nowhere").await,
        server
            .put_manifest(repo, "bad", "text/html", b"<html></html>")
            .await,
    ];
    for response in responses {
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{} {}",
            response.url(),
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_query_strings_are_answered_and_the_server_keeps_serving() {
    let server = Server::start().await;
    server.push_blob("q/a", b"a", Alg::Sha256).await;
    server.push_blob("q/b", b"b", Alg::Sha256).await;
    for query in [
        "n=%",
        "n=1&last=%C3",
        "n=1&last=%C3%A9%",
        "last=%e9%zz&n=%+1",
        "last=%%%%&n=1",
        "n=18446744073709551616",
    ] {
        let response = raw_request(server.addr, "GET", &format!("/v2/_catalog?{query}"), b"").await;
        assert!(
            response.status == 200 || response.status == 400,
            "{query}: {}",
            response.head
        );
    }
    // Raw multi-byte characters after `%` in the request line.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all("GET /v2/_catalog?last=%\u{e9}\u{e9}&n=%\u{1F600} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let status = RawResponse::parse(&raw).status;
    assert!(status == 200 || status == 400, "{status}");
    // The next page's link carries `last` escaped, not verbatim.
    let response = server.get("/v2/_catalog?n=1&last=a%0d%0ab").await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = server.get("/v2/_catalog?n=1").await;
    let link = header(&response, "link");
    assert_eq!(link, "</v2/_catalog?n=1&last=q%2Fa>; rel=\"next\"");
    assert_eq!(server.get("/v2/").await.status(), StatusCode::OK);
}
