//! Resource limits against hostile clients: silent connections, a full
//! connection table, trickled manifests, upload-session floods and
//! password guessing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ferry_server::UploadLimits;
use ferry_server::auth::AuthLimits;

use crate::common::*;

/// Reads until the server closes the connection; what arrived, or `None`
/// when it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|_| raw)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_closed_after_the_timeout() {
    let idle = Duration::from_secs(1);
    let server = Server::start_with(|c| c.idle_timeout = idle).await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let raw = read_until_closed(&mut silent, Duration::from_secs(20))
        .await
        .expect("a connection that never sends a byte is never closed");
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert!(opened.elapsed() >= idle, "closed before the timeout");
    assert_eq!(server.get("/v2/").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_too() {
    let idle = Duration::from_secs(1);
    let server = Server::start_with(|c| c.idle_timeout = idle).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("an idle keep-alive connection is never closed");
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_connection_without_a_request_is_closed() {
    let idle = Duration::from_secs(1);
    let server = Server::start_with(|c| c.idle_timeout = idle).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("an h2c connection that sends no request is never closed");
    // h2c itself works with these settings.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/v2/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_h2c_connection_is_closed() {
    let server = Server::start_with(|c| c.idle_timeout = Duration::from_secs(1)).await;
    // reqwest keeps its connection and answers the server's pings.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .pool_idle_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/v2/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    response.bytes().await.unwrap();
    assert_eq!(server.connection_count(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.connection_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "an idle h2c connection stays open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A long request is not idle: a slow manifest upload on h2 completes.
    let (manifest, _) = server.image("h2", Alg::Sha256, 1500).await;
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = manifest
        .chunks(manifest.len() / 3 + 1)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let slow = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        piece
    });
    let response = client
        .put(format!("{}/v2/h2/manifests/v1", server.base))
        .header("content-type", MANIFEST)
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_reads_nothing_of_a_blob_is_dropped() {
    let server = Server::start_with(|c| c.idle_timeout = Duration::from_secs(1)).await;
    // Far more than the loopback socket buffers hold.
    let blob = random_bytes(48 << 20, 1400);
    let digest = server.push_blob("slow", &blob, Alg::Sha256).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!("GET /v2/slow/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0usize;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled download never ended");
    assert!(
        received < blob.len(),
        "the server waited for a client that read nothing ({received} bytes sent)"
    );
    assert_eq!(server.get("/v2/").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_answers_again_once_silent_connections_time_out() {
    // Silent connections live 5 s; a connection over the cap waits 2 s
    // for a slot: it is closed unanswered before any slot frees.
    let idle = Duration::from_secs(5);
    let server = Server::start_with(|c| {
        c.idle_timeout = idle;
        c.max_connections = 4;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut over = TcpStream::connect(server.addr).await.unwrap();
    over.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut over, Duration::from_secs(20))
        .await
        .expect("a connection over the cap is neither served nor closed");
    assert!(
        raw.is_empty(),
        "served over the cap: {}",
        String::from_utf8_lossy(&raw)
    );

    for stream in &mut silent {
        read_until_closed(stream, Duration::from_secs(30))
            .await
            .expect("a silent connection is never closed");
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), server.get("/v2/"))
        .await
        .expect("the registry stays unreachable after the silent connections closed");
    assert_eq!(answer.status(), StatusCode::OK);
}

/// Sends `GET /v2/` on a kept-alive connection and reads the answer's head:
/// the connection is then surely accepted and counted.
async fn hold_connection(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(30), async {
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no answer");
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_cannot_take_every_connection() {
    let server = Server::start_with(|c| {
        c.idle_timeout = Duration::from_secs(60);
        c.max_connections = 16;
        c.max_connections_per_client = 2;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        hold_connection(&mut stream).await;
        held.push(stream);
    }
    // A third from the same address is closed unanswered...
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    over.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut over, Duration::from_secs(30))
        .await
        .expect("a connection over the client's cap is neither served nor closed");
    assert!(
        raw.is_empty(),
        "served over the client's cap: {}",
        String::from_utf8_lossy(&raw)
    );
    // ...while another address is still served.
    let other = client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        other.get(server.url("/v2/")).send(),
    )
    .await
    .expect("another client was kept waiting")
    .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // A closed connection frees the client's slot.
    drop(held.pop());
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream
                .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let raw = read_until_closed(&mut stream, Duration::from_secs(30))
                .await
                .unwrap_or_default();
            if !raw.is_empty() {
                return raw;
            }
            // The server may not have seen the close yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the client's slot was never freed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_trickled_a_byte_at_a_time_is_cut_off() {
    let server = Server::start_with(|c| {
        c.manifest_timeout = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let (manifest, _) = server.image("trickle", Alg::Sha256, 1100).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "PUT /v2/trickle/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: {MANIFEST}\r\n\
         Content-Length: {}\r\n\r\n",
        manifest.len()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // One byte every 100 ms, well within the idle timeout: the manifest
    // would take over a minute.
    let trickle = tokio::spawn(async move {
        for byte in manifest {
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut raw = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            if raw.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    trickle.abort();
    assert!(answered.is_ok(), "a trickled manifest is never cut off");
    if !raw.is_empty() {
        let response = RawResponse::parse(&raw);
        assert_eq!(response.status, 408, "{}", response.head);
    }
    assert_eq!(
        server.get("/v2/trickle/manifests/v1").await.status(),
        StatusCode::NOT_FOUND
    );
}

/// A client whose connections come from `ip` (any 127/8 address is local).
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap()
}

async fn start_upload(client: &reqwest::Client, base: &str) -> reqwest::Response {
    client
        .post(format!("{base}/v2/flood/blobs/uploads/"))
        .header("content-length", "0")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_sessions_are_capped_per_client_and_in_total() {
    let server = Server::start_with(|c| {
        c.upload_limits = UploadLimits {
            max_sessions: 3,
            max_sessions_per_client: 2,
        };
    })
    .await;
    let a = client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
    let b = client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let mut a_sessions = Vec::new();
    for _ in 0..2 {
        let response = start_upload(&a, &server.base).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        a_sessions.push(location(&response));
    }
    // The third from one client: refused, the others still may.
    let refused = start_upload(&a, &server.base).await;
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
    // Also a monolithic upload (it is a session while its body arrives).
    let digest = sha256(b"blob");
    let refused = a
        .post(format!(
            "{}/v2/flood/blobs/uploads/?digest={digest}",
            server.base
        ))
        .body("blob")
        .send()
        .await
        .unwrap();
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
    let response = start_upload(&b, &server.base).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let b_session = location(&response);
    // Three open in total: another client is refused too.
    let refused = start_upload(&b, &server.base).await;
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
    assert_eq!(server.open_sessions(), 3);

    // Cancelling frees a slot.
    assert_eq!(
        server.delete(&a_sessions[0]).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = start_upload(&a, &server.base).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    a_sessions[0] = location(&response);
    // Finishing frees a slot, and so does a failed finish (wrong digest).
    let response = server
        .request(Method::PUT, &format!("{b_session}?digest={digest}"))
        .body("blob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let wrong = sha256(b"other");
    let response = server
        .request(Method::PUT, &format!("{}?digest={wrong}", a_sessions[1]))
        .body("blob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    for client in [&a, &b] {
        let response = start_upload(client, &server.base).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_upload_sessions_expire_and_free_their_slots() {
    let server = Server::start_with(|c| {
        c.upload_idle_ttl = Duration::from_secs(1);
        c.upload_limits = UploadLimits {
            max_sessions: 10,
            max_sessions_per_client: 2,
        };
    })
    .await;
    let first = server.start_upload("idle").await;
    server.start_upload("idle").await;
    let refused = server
        .request(Method::POST, "/v2/idle/blobs/uploads/")
        .send()
        .await
        .unwrap();
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
    // Within a bounded wait the idle sessions are dropped and slots free.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.open_sessions() > 0 {
        assert!(Instant::now() < deadline, "idle sessions never expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.get(&first).await.status(), StatusCode::NOT_FOUND);
    server.start_upload("idle").await;
    server.start_upload("idle").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_upload_ends_at_the_session_lifetime() {
    let server = Server::start_with(|c| {
        c.upload_ttl = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(120);
        c.upload_limits = UploadLimits {
            max_sessions: 10,
            max_sessions_per_client: 1,
        };
    })
    .await;
    let location = server.start_upload("trickle").await;
    let path = location
        .strip_prefix(&server.base)
        .unwrap_or(&location)
        .to_string();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // A byte every 200 ms: never idle, and it would take hours.
    let trickle = tokio::spawn(async move {
        loop {
            if write.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut raw = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(answered.is_ok(), "a trickled upload outlives its session");
    let response = RawResponse::parse(&raw);
    assert_eq!(response.status, 404, "{}", response.head);
    // The session is gone and no longer counts against its client.
    assert_eq!(server.open_sessions(), 0);
    assert_eq!(server.get(&location).await.status(), StatusCode::NOT_FOUND);
    server.start_upload("trickle").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_requests_are_served_while_passwords_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    // Cost 12: each verification takes a noticeable while.
    let hash = bcrypt::hash("s3cret", 12).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let server = Arc::new(
        Server::start_with(|c| {
            c.htpasswd = Some(htpasswd);
            c.anonymous_pull = true;
            c.auth_limits = AuthLimits {
                concurrent_verifications: 1,
                max_failures: 1000,
                ..AuthLimits::default()
            };
        })
        .await,
    );
    const GUESSES: usize = 16;
    let done = Arc::new(AtomicUsize::new(0));
    let mut guesses = Vec::new();
    for i in 0..GUESSES {
        let (server, done) = (server.clone(), done.clone());
        guesses.push(tokio::spawn(async move {
            let response = server
                .request(Method::DELETE, "/v2/r/blobs/uploads/x")
                .basic_auth("alice", Some(format!("guess {i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let response = tokio::time::timeout(Duration::from_secs(10), server.get("/v2/"))
            .await
            .expect("an anonymous request waits behind password checks");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        done.load(Ordering::SeqCst) < GUESSES,
        "the guesses were all answered before the anonymous requests"
    );
    for guess in guesses {
        tokio::time::timeout(Duration::from_secs(120), guess)
            .await
            .expect("password checks never finish")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_passwords_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let server = Server::start_with(|c| {
        c.htpasswd = Some(htpasswd);
        c.auth_limits = AuthLimits {
            max_failures: 3,
            ..AuthLimits::default()
        };
    })
    .await;
    let attempt = |password: &'static str| {
        server
            .request(Method::GET, "/v2/")
            .basic_auth("alice", Some(password))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("wrong").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = attempt("wrong").await.unwrap();
    let retry_after: u64 = header(&throttled, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_error(throttled, StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS").await;
    // Anonymous requests are challenged as usual, not throttled.
    assert_eq!(server.get("/v2/").await.status(), StatusCode::UNAUTHORIZED);
}
