//! The OCI conformance checklist (/tmp/conformance-checklist.md), section by
//! section. Every blob and manifest test runs for sha256 and sha512, and
//! every test against both storage backends (`fs::NAME`, `memory::NAME`).

use futures_util::stream;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

on_both_backends!(
    ping_answers_200,
    missing_blob_is_404_in_an_unknown_repo,
    monolithic_post_stores_the_blob,
    post_then_put,
    chunked_upload_with_out_of_order_chunks,
    chunked_single_and_old_suite_sizes,
    streamed_patch_without_content_range,
    chunk_lengths_that_contradict_content_range,
    upload_cancel_is_204,
    zero_length_and_empty_json_blobs,
    cross_repository_mounts,
    blob_head_get_and_ranges,
    manifest_push_and_pull,
    manifest_kinds_the_suites_push,
    large_manifests_up_to_4_mib,
    invalid_references,
    tag_list_and_pagination,
    referrers_api,
    index_children_with_a_subject_are_referrers,
    manifest_and_blob_deletes,
    catalog_lists_repositories,
);

// ---------------------------------------------------------------------------
// 2.1 ping
// ---------------------------------------------------------------------------

async fn ping_answers_200(backend: Backend) {
    let server = Server::start_on(backend).await;
    for path in ["/v2/", "/v2"] {
        let response = server.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
    // Not a registry endpoint at all.
    expect_error(
        server.get("/v1/").await,
        StatusCode::NOT_FOUND,
        "UNSUPPORTED",
    )
    .await;
}

// ---------------------------------------------------------------------------
// 2.7 missing blobs, 2.2 (b) monolithic POST
// ---------------------------------------------------------------------------

async fn missing_blob_is_404_in_an_unknown_repo(backend: Backend) {
    let server = Server::start_on(backend).await;
    for alg in ALGS {
        let digest = alg.digest(b"never pushed");
        let path = format!("/v2/conformance/repo1/blobs/{digest}");
        expect_error(
            server.get(&path).await,
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        )
        .await;
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
    }
}

async fn monolithic_post_stores_the_blob(backend: Backend) {
    let server = Server::start_on(backend).await;
    for (i, alg) in ALGS.into_iter().enumerate() {
        let blob = random_bytes(512, i as u64);
        let digest = alg.digest(&blob);
        let response = server
            .request(
                Method::POST,
                &format!("/v2/conformance/repo1/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .header("content-length", blob.len().to_string())
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{alg:?}");
        assert_eq!(header(&response, "docker-content-digest"), digest);
        let loc = location(&response);
        assert_eq!(loc, format!("/v2/conformance/repo1/blobs/{digest}"));
        let got = server.get(&loc).await;
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(header(&got, "docker-content-digest"), digest);
        assert_eq!(header(&got, "content-length"), "512");
        assert_eq!(got.bytes().await.unwrap(), blob);

        // Bad digest: five extra bytes. 400, and nothing stored under it.
        let other = random_bytes(512, 100 + i as u64);
        let claimed = alg.digest(&other);
        let mut sent = other.clone();
        sent.extend_from_slice(b"oh no");
        let response = server
            .request(
                Method::POST,
                &format!("/v2/conformance/repo1/blobs/uploads/?digest={claimed}"),
            )
            .body(sent)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        let path = format!("/v2/conformance/repo1/blobs/{claimed}");
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
    }
    // No session is left behind by the failed monolithic upload.
    assert_eq!(server.open_sessions(), 0);
}

// ---------------------------------------------------------------------------
// 2.2 (a) + 2.4: POST then PUT
// ---------------------------------------------------------------------------

async fn post_then_put(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        let blob = random_bytes(512, 10 + i as u64);
        let digest = alg.digest(&blob);
        // Start: 202 exactly, Location under the repository, Range present
        // even with nothing received.
        let response = server
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let loc = location(&response);
        assert!(
            loc.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
            "{loc}"
        );
        assert!(header(&response, "range").starts_with("0-"));
        // OCI-Chunk-Min-Length, when advertised, must be a plain integer.
        let min = header(&response, "oci-chunk-min-length");
        assert!(min.is_empty() || min.parse::<u64>().is_ok(), "{min}");

        // PUT the whole blob; the Location may carry no query, `?digest=` is added.
        let response = server
            .request(Method::PUT, &format!("{loc}?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .header("content-length", blob.len().to_string())
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(header(&response, "docker-content-digest"), digest);
        let blob_loc = location(&response);
        assert_eq!(server.get(&blob_loc).await.bytes().await.unwrap(), blob);
        // The session is gone once finished.
        assert_eq!(server.get(&loc).await.status(), StatusCode::NOT_FOUND);

        // Re-uploading an existing blob is 201 again.
        let loc = server.start_upload(repo).await;
        let response = server
            .request(Method::PUT, &format!("{loc}?digest={digest}"))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);

        // Bad digest on the PUT: 400.
        let loc = server.start_upload(repo).await;
        let mut bad = blob.clone();
        bad.extend_from_slice(b"oh no");
        let response = server
            .request(Method::PUT, &format!("{loc}?digest={digest}"))
            .body(bad)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        // The blob under that digest is still the right content.
        let got = server.get(&blob_loc).await;
        assert_eq!(got.bytes().await.unwrap(), blob);
    }
}

// ---------------------------------------------------------------------------
// 2.3 chunked PATCH, 2.4 final PUT, 2.5 status
// ---------------------------------------------------------------------------

async fn patch_chunk(server: &Server, url: &str, start: usize, chunk: &[u8]) -> reqwest::Response {
    server
        .request(Method::PATCH, url)
        .header("content-type", "application/octet-stream")
        .header("content-length", chunk.len().to_string())
        .header(
            "content-range",
            format!("{start}-{}", start + chunk.len() - 1),
        )
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

/// Bytes received per the status GET. An empty session may say `0-0` (as
/// distribution does) or `0--1`; both parse in the suite, so both read as 0
/// here when `empty` is expected.
async fn status_of(server: &Server, url: &str) -> u64 {
    let response = server.get(url).await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "status GET {url}"
    );
    assert!(!location(&response).is_empty());
    range_received(&response)
}

async fn status_is_empty(server: &Server, url: &str) {
    let response = server.get(url).await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "status GET {url}"
    );
    assert!(!location(&response).is_empty());
    let range = header(&response, "range");
    assert!(
        range == "0-0" || range == "0--1",
        "empty session Range {range:?}"
    );
}

async fn chunked_upload_with_out_of_order_chunks(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        // The NEW suite's "chunked multi": 3·1024−5 bytes in three chunks.
        let blob = random_bytes(3067, 20 + i as u64);
        let digest = alg.digest(&blob);
        let chunks = [&blob[..1024], &blob[1024..2048], &blob[2048..]];
        let original = server.start_upload(repo).await;

        // Skip ahead on an empty session: 416, session intact at 0.
        let response = patch_chunk(&server, &original, 1024, chunks[1]).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        status_is_empty(&server, &original).await;

        // First chunk: 202, Range 0-1023, Location.
        let response = patch_chunk(&server, &original, 0, chunks[0]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(header(&response, "range"), "0-1023");
        let next = location(&response);

        // Re-send what was already received, on the original URL: 416, unchanged.
        let response = patch_chunk(&server, &original, 0, chunks[0]).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(status_of(&server, &original).await, 1024);
        // Status GETs ignore extra query parameters.
        assert_eq!(
            status_of(&server, &format!("{original}?digest={digest}")).await,
            1024
        );

        // A PUT whose Content-Range does not start at the offset: 416 (range
        // checked before digest), and the session survives.
        let response = server
            .request(Method::PUT, &format!("{next}?digest={digest}"))
            .header("content-range", "2048-3066")
            .header("content-length", chunks[2].len().to_string())
            .body(chunks[2].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(status_of(&server, &next).await, 1024);

        // Second chunk; then the last one inside the PUT.
        let response = patch_chunk(&server, &next, 1024, chunks[1]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(header(&response, "range"), "0-2047");
        let next = location(&response);
        assert_eq!(status_of(&server, &original).await, 2048);
        let response = server
            .request(Method::PUT, &format!("{next}?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", "2048-3066")
            .header("content-length", chunks[2].len().to_string())
            .body(chunks[2].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{alg:?}");
        assert_eq!(header(&response, "docker-content-digest"), digest);
        let got = server.get(&location(&response)).await;
        assert_eq!(got.bytes().await.unwrap(), blob);

        // All chunks by PATCH, then an empty PUT.
        let blob = random_bytes(3067, 30 + i as u64);
        let digest = alg.digest(&blob);
        let url = server.start_upload(repo).await;
        let mut start = 0;
        for chunk in blob.chunks(1024) {
            let response = patch_chunk(&server, &url, start, chunk).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            start += chunk.len();
            assert_eq!(range_received(&response), start as u64);
        }
        let response = server
            .request(Method::PUT, &format!("{url}?digest={digest}"))
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            server
                .get(&location(&response))
                .await
                .bytes()
                .await
                .unwrap(),
            blob
        );

        // Chunked with a wrong final digest: 400.
        let url = server.start_upload(repo).await;
        let response = patch_chunk(&server, &url, 0, &blob).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let wrong = alg.digest(b"something else");
        let response = server
            .request(Method::PUT, &format!("{url}?digest={wrong}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

async fn chunked_single_and_old_suite_sizes(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    // One 512-byte chunk.
    let blob = random_bytes(512, 40);
    let url = server.start_upload(repo).await;
    let response = patch_chunk(&server, &url, 0, &blob).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&response, "range"), "0-511");
    // The OLD suite: 42 bytes in 22 + 20, Range checked exactly each time.
    let blob = random_bytes(42, 41);
    let digest = sha256(&blob);
    let url = server.start_upload(repo).await;
    let response = patch_chunk(&server, &url, 0, &blob[..22]).await;
    assert_eq!(header(&response, "range"), "0-21");
    assert_eq!(status_of(&server, &url).await, 22);
    let response = patch_chunk(&server, &url, 22, &blob[22..]).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&response, "range"), "0-41");
    let response = server
        .request(Method::PUT, &format!("{url}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn streamed_patch_without_content_range(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        let blob = random_bytes(100_000, 50 + i as u64);
        let digest = alg.digest(&blob);
        let url = server.start_upload(repo).await;
        // Transfer-Encoding: chunked (no Content-Length), in several pieces.
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = blob[..60_000]
            .chunks(7_000)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let response = server
            .request(Method::PATCH, &url)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{alg:?}");
        assert_eq!(header(&response, "range"), "0-59999");
        let next = location(&response);
        // A second streamed PATCH appends; this one (OLD style) has a Content-Length.
        let response = server
            .request(Method::PATCH, &next)
            .body(blob[60_000..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(range_received(&response), blob.len() as u64);
        let response = server
            .request(Method::PUT, &format!("{next}?digest={digest}"))
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let got = server.get(&location(&response)).await;
        assert_eq!(header(&got, "content-length"), blob.len().to_string());
        assert_eq!(got.bytes().await.unwrap(), blob);
    }
}

async fn chunk_lengths_that_contradict_content_range(backend: Backend) {
    let server = Server::start_on(backend).await;
    let blob = random_bytes(200, 45);
    let digest = sha256(&blob);
    let url = server.start_upload("conformance/repo1").await;
    // Content-Length disagrees with Content-Range: 416 and nothing taken.
    let response = server
        .request(Method::PATCH, &url)
        .header("content-range", "0-99")
        .header("content-length", "50")
        .body(blob[..50].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    status_is_empty(&server, &url).await;
    // A chunked body shorter than its Content-Range: 416, and the Range the
    // server reports is the truth, so the client can resume from it.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(blob[..50].to_vec())];
    let response = server
        .request(Method::PATCH, &url)
        .header("content-range", "0-99")
        .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let reported = header(&response, "range");
    let received = status_of(&server, &url).await;
    assert_eq!(reported, format!("0-{}", received.max(1) - 1));
    let received = received as usize;
    let response = patch_chunk(&server, &url, received, &blob[received..]).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = server
        .request(Method::PUT, &format!("{url}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Malformed Content-Range values: 416 (or 400), session unharmed.
    let url = server.start_upload("conformance/repo1").await;
    for bad in ["abc", "5-2", "-5", "1-"] {
        let response = server
            .request(Method::PATCH, &url)
            .header("content-range", bad)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::RANGE_NOT_SATISFIABLE || status == StatusCode::BAD_REQUEST,
            "{bad}: {status}"
        );
    }
    status_is_empty(&server, &url).await;
}

async fn upload_cancel_is_204(backend: Backend) {
    let server = Server::start_on(backend).await;
    let url = server.start_upload("conformance/repo1").await;
    let response = server.delete(&url).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_error(
        server.get(&url).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_eq!(server.delete(&url).await.status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------
// Empty blobs (6.20)
// ---------------------------------------------------------------------------

async fn zero_length_and_empty_json_blobs(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for alg in ALGS {
        let empty = alg.digest(b"");
        // Monolithic POST with an empty body.
        let response = server
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={empty}"),
            )
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{alg:?}");
        let path = format!("/v2/{repo}/blobs/{empty}");
        let head = server.head(&path).await;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(header(&head, "content-length"), "0");
        let get = server.get(&path).await;
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(header(&get, "content-length"), "0");
        assert_eq!(header(&get, "docker-content-digest"), empty);
        assert!(get.bytes().await.unwrap().is_empty());
        assert_eq!(server.delete(&path).await.status(), StatusCode::ACCEPTED);
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);

        // POST then a zero-byte PUT.
        let url = server.start_upload(repo).await;
        let response = server
            .request(Method::PUT, &format!("{url}?digest={empty}"))
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(server.head(&path).await.status(), StatusCode::OK);

        // `{}` as a blob.
        let digest = server.push_blob(repo, b"{}", alg).await;
        let get = server.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(get.bytes().await.unwrap(), "{}");
    }
}

// ---------------------------------------------------------------------------
// 2.2 (c), (d): mounts
// ---------------------------------------------------------------------------

async fn cross_repository_mounts(backend: Backend) {
    let server = Server::start_on(backend).await;
    let (repo1, repo2) = ("conformance/repo1", "conformance/repo2");
    for (i, alg) in ALGS.into_iter().enumerate() {
        let blob = random_bytes(512, 60 + i as u64);
        let digest = server.push_blob(repo2, &blob, alg).await;

        // Mount with `from`: 201, Location exactly the blob path.
        let response = server
            .request(
                Method::POST,
                &format!("/v2/{repo1}/blobs/uploads/?mount={digest}&from={repo2}"),
            )
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{alg:?}");
        assert_eq!(location(&response), format!("/v2/{repo1}/blobs/{digest}"));
        assert_eq!(header(&response, "docker-content-digest"), digest);
        let got = server.get(&location(&response)).await;
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.bytes().await.unwrap(), blob);

        // Deletes are per repository.
        let path1 = format!("/v2/{repo1}/blobs/{digest}");
        let path2 = format!("/v2/{repo2}/blobs/{digest}");
        assert_eq!(server.delete(&path1).await.status(), StatusCode::ACCEPTED);
        assert_eq!(server.head(&path1).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(server.head(&path2).await.status(), StatusCode::OK);

        // Mount without `from` of a blob the registry knows: 201.
        let response = server
            .request(
                Method::POST,
                &format!("/v2/conformance/repo3/blobs/uploads/?mount={digest}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            location(&response),
            format!("/v2/conformance/repo3/blobs/{digest}")
        );

        // Mount of a blob `from` does not hold: 202 with an upload Location;
        // the fallback PUT works and the blob is then served in repo1.
        let missing = random_bytes(512, 70 + i as u64);
        let missing_digest = alg.digest(&missing);
        let response = server
            .request(
                Method::POST,
                &format!("/v2/{repo1}/blobs/uploads/?mount={missing_digest}&from={repo2}"),
            )
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let loc = location(&response);
        assert!(
            loc.starts_with(&format!("/v2/{repo1}/blobs/uploads/")),
            "{loc}"
        );
        let response = server
            .request(Method::PUT, &format!("{loc}?digest={missing_digest}"))
            .body(missing.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let got = server
            .get(&format!("/v2/{repo1}/blobs/{missing_digest}"))
            .await;
        assert_eq!(got.bytes().await.unwrap(), missing);
        // ... and it was not put into repo2 by the mount attempt.
        let in_repo2 = server
            .head(&format!("/v2/{repo2}/blobs/{missing_digest}"))
            .await;
        assert_eq!(in_repo2.status(), StatusCode::NOT_FOUND);

        // A blob that exists in another repository but not in `from`: 202.
        let response = server
            .request(
                Method::POST,
                &format!(
                    "/v2/conformance/repo4/blobs/uploads/?mount={missing_digest}&from={repo2}"
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Mount without `from` of a digest that exists nowhere: 202 + Location.
    let nowhere = sha256(b"hello world");
    let response = server
        .request(
            Method::POST,
            &format!("/v2/conformance-other/blobs/uploads/?mount={nowhere}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(location(&response).starts_with("/v2/conformance-other/blobs/uploads/"));
}

// ---------------------------------------------------------------------------
// 2.7 blob HEAD / GET / ranges, 2.8 DELETE
// ---------------------------------------------------------------------------

async fn blob_head_get_and_ranges(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        let blob = random_bytes(2048, 80 + i as u64);
        let digest = server.push_blob(repo, &blob, alg).await;
        let path = format!("/v2/{repo}/blobs/{digest}");

        let head = server.head(&path).await;
        assert_eq!(head.status(), StatusCode::OK);
        // The header itself, not reqwest's body-size hint.
        assert_eq!(header(&head, "content-length"), "2048", "{alg:?}");
        assert_eq!(header(&head, "docker-content-digest"), digest);
        assert!(head.bytes().await.unwrap().is_empty());

        // Go's client asks for gzip; the answer must stay uncompressed with
        // a real Content-Length.
        let get = server
            .request(Method::GET, &path)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(header(&get, "content-length"), "2048");
        assert!(header(&get, "content-encoding").is_empty());
        assert!(header(&get, "transfer-encoding").is_empty());
        assert_eq!(get.bytes().await.unwrap(), blob);

        let cases: [(&str, usize, usize); 4] = [
            ("bytes=500-1499", 500, 1500),
            ("bytes=500-", 500, 2048),
            ("bytes=-500", 1548, 2048),
            ("bytes=2000-5000", 2000, 2048),
        ];
        for (range, start, end) in cases {
            let response = server
                .request(Method::GET, &path)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(
                header(&response, "content-length"),
                (end - start).to_string(),
                "{range}"
            );
            let content_range = header(&response, "content-range");
            assert!(
                content_range == format!("bytes {start}-{}/2048", end - 1)
                    || content_range == format!("bytes {start}-{}/*", end - 1),
                "{range}: {content_range}"
            );
            assert_eq!(response.bytes().await.unwrap(), blob[start..end], "{range}");
        }
        for range in ["bytes=500-0", "bytes=5000-10000"] {
            let response = server
                .request(Method::GET, &path)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{range}"
            );
        }

        // DELETE: 202, then 404 for HEAD, GET and a second DELETE.
        let response = server.delete(&path).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
        expect_error(
            server.get(&path).await,
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        )
        .await;
        assert_eq!(server.delete(&path).await.status(), StatusCode::NOT_FOUND);
    }
}

// ---------------------------------------------------------------------------
// 2.9 / 2.10 manifests
// ---------------------------------------------------------------------------

async fn check_manifest(
    server: &Server,
    repo: &str,
    reference: &str,
    bytes: &[u8],
    media_type: &str,
    digest: &str,
) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    for method in [Method::GET, Method::HEAD] {
        // Two separate Accept lines, as the NEW suite sends.
        let response = server
            .request(method.clone(), &path)
            .header("accept", INDEX)
            .header("accept", MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        assert_eq!(header(&response, "content-type"), media_type, "{path}");
        assert_eq!(header(&response, "content-length"), bytes.len().to_string());
        assert_eq!(header(&response, "docker-content-digest"), digest);
        let body = response.bytes().await.unwrap();
        if method == Method::GET {
            assert_eq!(body, bytes);
        } else {
            assert!(body.is_empty());
        }
    }
}

async fn manifest_push_and_pull(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        let (manifest, digest) = server.image(repo, alg, 90 + i as u64).await;
        // By digest, in the requested algorithm.
        let response = server
            .put_manifest_ok(repo, &digest, MANIFEST, &manifest)
            .await;
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert_eq!(
            location(&response),
            format!("/v2/{repo}/manifests/{digest}")
        );
        check_manifest(&server, repo, &digest, &manifest, MANIFEST, &digest).await;
        // Re-PUT of identical content: 201 again.
        server
            .put_manifest_ok(repo, &digest, MANIFEST, &manifest)
            .await;

        // By tag: the tag resolves to a sha256 digest of the same bytes.
        let tag = format!("image-{i}");
        let response = server
            .put_manifest_ok(repo, &tag, MANIFEST, &manifest)
            .await;
        let by_tag = header(&response, "docker-content-digest");
        assert_eq!(by_tag, sha256(&manifest));
        let loc = location(&response);
        let got = server.get(&loc).await;
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.bytes().await.unwrap(), manifest);
        check_manifest(&server, repo, &tag, &manifest, MANIFEST, &by_tag).await;

        // Tags are mutable.
        let (other, other_digest) = server.image(repo, Alg::Sha256, 95 + i as u64).await;
        server.put_manifest_ok(repo, &tag, MANIFEST, &other).await;
        check_manifest(&server, repo, &tag, &other, MANIFEST, &other_digest).await;

        // Body digest different from the reference: 400 DIGEST_INVALID.
        let mut padded = manifest.clone();
        padded.extend_from_slice(b"  ");
        let response = server.put_manifest(repo, &digest, MANIFEST, &padded).await;
        expect_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    }
}

async fn manifest_kinds_the_suites_push(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        let seed = 200 + 10 * i as u64;
        let (image, image_digest) = server.image(repo, alg, seed).await;
        server
            .put_manifest_ok(repo, &image_digest, MANIFEST, &image)
            .await;

        // Index over it (a child must exist), plus custom fields.
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": INDEX,
            "org.custom.field": "value",
            "manifests": [{"mediaType": MANIFEST, "digest": image_digest, "size": image.len(),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        }))
        .unwrap();
        let index_digest = alg.digest(&index);
        server
            .put_manifest_ok(repo, &index_digest, INDEX, &index)
            .await;
        check_manifest(&server, repo, &index_digest, &index, INDEX, &index_digest).await;

        // Index of indexes, tagged.
        let nested = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": INDEX,
            "manifests": [{"mediaType": INDEX, "digest": index_digest, "size": index.len()}],
        }))
        .unwrap();
        server
            .put_manifest_ok(repo, "index-of-index", INDEX, &nested)
            .await;

        // Empty index; image with `layers: []`.
        let empty_index = format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[]}}"#);
        server
            .put_manifest_ok(repo, "empty-index", INDEX, empty_index.as_bytes())
            .await;
        let empty = server.push_blob(repo, b"{}", alg).await;
        let no_layers = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[]}}"#
        );
        server
            .put_manifest_ok(repo, "no-layers", MANIFEST, no_layers.as_bytes())
            .await;

        // No `mediaType` in the body: the Content-Type header decides and is echoed.
        let no_media_type = format!(
            "{{\n\t\"schemaVersion\": 2,\n\t\"config\": {{\"mediaType\": \"application/vnd.nhl.peanut.butter.bagel\", \"digest\": \"{empty}\", \"size\": 2, \"data\": \"e30=\", \"newUnspecifiedField\": null}},\n\t\"layers\": []\n}}"
        );
        let response = server
            .put_manifest_ok(repo, "emptylayer", MANIFEST, no_media_type.as_bytes())
            .await;
        let digest = header(&response, "docker-content-digest");
        check_manifest(
            &server,
            repo,
            "emptylayer",
            no_media_type.as_bytes(),
            MANIFEST,
            &digest,
        )
        .await;

        // Non-distributable layers that were never uploaded: accepted.
        let config = server
            .push_blob(repo, format!("{{\"seed\":{seed}}}").as_bytes(), alg)
            .await;
        let config_len = format!("{{\"seed\":{seed}}}").len();
        let foreign_a = alg.digest(b"foreign a");
        let foreign_b = alg.digest(b"foreign b");
        let non_distributable = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config, "size": config_len},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                 "digest": foreign_a, "size": 123456,
                 "urls": [format!("https://store.example.com/blobs/{foreign_a}")]},
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                 "digest": foreign_b, "size": 12345,
                 "urls": [format!("https://store.example.com/blobs/{foreign_b}")]},
            ],
        }))
        .unwrap();
        server
            .put_manifest_ok(
                repo,
                "non-distributable-image",
                MANIFEST,
                &non_distributable,
            )
            .await;

        // `urls` on an ordinary layer: refused (only non-distributable
        // layers may live elsewhere).
        let external = alg.digest(b"external layer");
        let with_urls = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config, "size": config_len},
            "layers": [{"mediaType": LAYER, "digest": external, "size": 14,
                        "urls": [format!("https://store.example.com/blobs/{external}")]}],
        }))
        .unwrap();
        let response = server
            .put_manifest(repo, "external-layer", MANIFEST, &with_urls)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

        // A manifest referencing an ordinary blob that was never pushed: 400
        // MANIFEST_BLOB_UNKNOWN.
        let missing = alg.digest(b"not uploaded");
        let bad = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config, "size": config_len},
            "layers": [{"mediaType": LAYER, "digest": missing, "size": 12}],
        }))
        .unwrap();
        let response = server
            .put_manifest(repo, "missing-blob", MANIFEST, &bad)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
        assert_eq!(
            server
                .get(&format!("/v2/{repo}/manifests/missing-blob"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}

/// ~3.91 MB: 390 annotations of 10 000 bytes, as the NEW suite's "large-manifest".
fn large_manifest(empty: &str, annotations: usize) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for i in 0..annotations {
        map.insert(
            format!("org.example.large.{i:04}"),
            json!("A".repeat(10_000)),
        );
    }
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "annotations": map,
    }))
    .unwrap()
}

async fn large_manifests_up_to_4_mib(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    let empty = server.push_blob(repo, b"{}", Alg::Sha256).await;
    let manifest = large_manifest(&empty, 390);
    assert!(manifest.len() > 3_900_000 && manifest.len() < 4 * 1024 * 1024);
    // Sent chunked (no Content-Length), as Go does.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        manifest.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = server
        .request(Method::PUT, &format!("/v2/{repo}/manifests/large-manifest"))
        .header("content-type", MANIFEST)
        .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let digest = sha256(&manifest);
    check_manifest(
        &server,
        repo,
        "large-manifest",
        &manifest,
        MANIFEST,
        &digest,
    )
    .await;

    // Over 4 MiB: 413 with a clear message, chunked or not.
    let too_large = large_manifest(&empty, 430);
    assert!(too_large.len() > 4 * 1024 * 1024);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = too_large
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let response = server
        .request(Method::PUT, &format!("/v2/{repo}/manifests/too-large"))
        .header("content-type", MANIFEST)
        .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
        .send()
        .await
        .expect("the client receives the 413 rather than a reset connection");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = server
        .put_manifest(repo, "too-large", MANIFEST, &too_large)
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("limit"), "{message}");
    assert_eq!(
        server
            .get(&format!("/v2/{repo}/manifests/too-large"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The server is fine afterwards.
    assert_eq!(server.get("/v2/").await.status(), StatusCode::OK);
}

async fn invalid_references(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    let (manifest, _) = server.image(repo, Alg::Sha256, 300).await;
    // Missing by digest and by tag, and an invalid tag: 404.
    let missing_digest = sha256(b"missing manifest");
    for reference in [
        missing_digest.as_str(),
        "missing-abcdefghijklmnopqrst",
        ".INVALID_MANIFEST_NAME",
    ] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        expect_error(
            server.get(&path).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
    }
    // Malformed digest on PUT: 400 DIGEST_INVALID.
    for reference in ["sha256:baddigeststring", "sha256:totallywrong"] {
        let response = server
            .put_manifest(repo, reference, MANIFEST, &manifest)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        // GET: 400 with an envelope, or 404.
        let response = server
            .get(&format!("/v2/{repo}/manifests/{reference}"))
            .await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{status}"
        );
        if status == StatusCode::BAD_REQUEST {
            assert_eq!(error_code(response).await, "DIGEST_INVALID");
        }
    }
    let response = server
        .put_manifest(repo, "sha256:totallywrong", MANIFEST, b"blablabla")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A tag outside the grammar: the spec has no tag code, the manifest
    // request is invalid; an algorithm the registry cannot verify is
    // unsupported.
    let response = server
        .put_manifest(repo, ".INVALID_MANIFEST_NAME", MANIFEST, &manifest)
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    let response = server
        .put_manifest(repo, "md5:0123456789abcdef", MANIFEST, &manifest)
        .await;
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
}

// ---------------------------------------------------------------------------
// 2.12 tag list
// ---------------------------------------------------------------------------

async fn tag_list(server: &Server, path: &str) -> (Vec<String>, String) {
    let response = server.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let link = header(&response, "link");
    let body: Value = response.json().await.unwrap();
    let tags = body["tags"]
        .as_array()
        .expect("tags is an array")
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (tags, link)
}

async fn tag_list_and_pagination(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    let (manifest, _) = server.image(repo, Alg::Sha256, 400).await;
    let mut tags: Vec<String> = [
        "test0", "test1", "test2", "test3", "B", "a", "latest", "v1.0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for tag in &tags {
        server.put_manifest_ok(repo, tag, MANIFEST, &manifest).await;
    }
    tags.sort(); // byte order, like Go's sort.Strings
    let base = format!("/v2/{repo}/tags/list");
    let (all, link) = tag_list(&server, &base).await;
    assert_eq!(all, tags);
    assert!(link.is_empty());
    let body: Value = server.get(&base).await.json().await.unwrap();
    assert_eq!(body["name"], repo);

    // `n`: exactly n, with a Link to the rest; following the links yields all.
    let (page, link) = tag_list(&server, &format!("{base}?n=3")).await;
    assert_eq!(page, tags[..3]);
    assert!(link.contains("rel=\"next\""), "{link}");
    let mut collected = page;
    let mut link = link;
    while !link.is_empty() {
        let next = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
        assert!(next.starts_with(&base), "{next}");
        let (page, next_link) = tag_list(&server, &next).await;
        assert!(page.len() <= 3 && !page.is_empty());
        collected.extend(page);
        link = next_link;
    }
    assert_eq!(collected, tags);

    // `last` without `n`: everything after it.
    let middle = tags[tags.len() / 2].clone();
    let (after, _) = tag_list(&server, &format!("{base}?last={middle}")).await;
    let expected: Vec<String> = tags.iter().filter(|t| **t > middle).cloned().collect();
    assert_eq!(after, expected);
    assert!(!after.is_empty());
    // `n` and `last`.
    let (page, _) = tag_list(&server, &format!("{base}?n=2&last={}", tags[1])).await;
    assert_eq!(page, tags[2..4]);
    // n=0: empty, no Link.
    let (page, link) = tag_list(&server, &format!("{base}?n=0")).await;
    assert!(page.is_empty());
    assert!(link.is_empty());
    // n larger than the list.
    let (page, link) = tag_list(&server, &format!("{base}?n=1000")).await;
    assert_eq!(page, tags);
    assert!(link.is_empty());
    // n that is not a number: 400 with a code of the spec.
    for n in ["-1", "ten"] {
        let response = server.get(&format!("{base}?n={n}")).await;
        expect_error(response, StatusCode::BAD_REQUEST, "UNSUPPORTED").await;
    }

    // An unknown repository: 404 NAME_UNKNOWN or 200 with [].
    let response = server.get("/v2/conformance/nothing/tags/list").await;
    if response.status() == StatusCode::OK {
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["tags"], json!([]));
    } else {
        expect_error(response, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    }

    // After every tag is deleted: 200 with "tags": [].
    for tag in &tags {
        let response = server.delete(&format!("/v2/{repo}/manifests/{tag}")).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{tag}");
    }
    let response = server.get(&base).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tags"], json!([]));
}

// ---------------------------------------------------------------------------
// 2.13 referrers
// ---------------------------------------------------------------------------

async fn referrers(
    server: &Server,
    repo: &str,
    subject: &str,
    query: &str,
) -> (Vec<Value>, String) {
    let response = server
        .get(&format!("/v2/{repo}/referrers/{subject}{query}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), INDEX);
    assert!(header(&response, "docker-content-digest").is_empty());
    let filters = header(&response, "oci-filters-applied");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], INDEX);
    let manifests = body["manifests"].as_array().expect("manifests").clone();
    (manifests, filters)
}

async fn referrers_api(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    // Before anything exists: 200 with an empty index.
    let (list, _) = referrers(&server, repo, &sha256(b"random"), "").await;
    assert!(list.is_empty());

    for (i, alg) in ALGS.into_iter().enumerate() {
        let seed = 500 + 10 * i as u64;
        let (subject, subject_digest) = server.image(repo, alg, seed).await;
        let empty = server.push_blob(repo, b"{}", alg).await;
        let layer = server
            .push_blob(repo, &random_bytes(64, seed + 1), alg)
            .await;

        // An artifact pushed before its subject exists, by tag.
        let conf1 = "application/vnd.example.oci.conformance.v1";
        let annotations = json!({
            "org.opencontainers.conformance": "hello conformance test",
            "org.example.random": format!("r{seed}"),
        });
        let artifact = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": conf1,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": conf1, "digest": layer, "size": 64}],
            "subject": {"mediaType": MANIFEST, "digest": subject_digest, "size": subject.len()},
            "annotations": annotations,
        }))
        .unwrap();
        let response = server
            .put_manifest_ok(repo, "tagged-artifact1", MANIFEST, &artifact)
            .await;
        assert_eq!(header(&response, "oci-subject"), subject_digest);
        let artifact_digest = sha256(&artifact);

        // Now the subject, then a plain image with a subject (artifactType
        // falls back to config.mediaType), pushed by digest.
        server
            .put_manifest_ok(repo, &subject_digest, MANIFEST, &subject)
            .await;
        let config = server
            .push_blob(repo, format!("{{\"plain\":{seed}}}").as_bytes(), alg)
            .await;
        let plain = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config, "size": format!("{{\"plain\":{seed}}}").len()},
            "layers": [],
            "subject": {"mediaType": MANIFEST, "digest": subject_digest, "size": subject.len()},
        }))
        .unwrap();
        let plain_digest = alg.digest(&plain);
        let response = server
            .put_manifest_ok(repo, &plain_digest, MANIFEST, &plain)
            .await;
        assert_eq!(header(&response, "oci-subject"), subject_digest);

        // An index with a subject and no artifactType.
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": INDEX,
            "manifests": [],
            "subject": {"mediaType": MANIFEST, "digest": subject_digest, "size": subject.len()},
            "annotations": {"org.example.index": "yes"},
        }))
        .unwrap();
        let index_digest = alg.digest(&index);
        let response = server
            .put_manifest_ok(repo, &index_digest, INDEX, &index)
            .await;
        assert_eq!(header(&response, "oci-subject"), subject_digest);

        let (list, filters) = referrers(&server, repo, &subject_digest, "").await;
        assert!(filters.is_empty());
        assert_eq!(list.len(), 3, "{list:?}");
        let find = |d: &str| {
            list.iter()
                .find(|m| m["digest"] == d)
                .unwrap_or_else(|| panic!("{d} not in {list:?}"))
                .clone()
        };
        let a = find(&artifact_digest);
        assert_eq!(a["mediaType"], MANIFEST);
        assert_eq!(a["size"], artifact.len());
        assert_eq!(a["artifactType"], conf1);
        assert_eq!(a["annotations"], annotations); // exactly, nothing added
        let p = find(&plain_digest);
        assert_eq!(p["artifactType"], CONFIG);
        assert_eq!(p["size"], plain.len());
        assert!(
            p.get("annotations")
                .is_none_or(|a| a.as_object().is_some_and(|o| o.is_empty()))
        );
        let x = find(&index_digest);
        assert_eq!(x["mediaType"], INDEX);
        assert!(x.get("artifactType").is_none());
        assert_eq!(x["annotations"], json!({"org.example.index": "yes"}));

        // Filtering, with the value URL-encoded.
        let (list, filters) = referrers(
            &server,
            repo,
            &subject_digest,
            "?artifactType=application%2Fvnd.example.oci.conformance.v1",
        )
        .await;
        assert_eq!(filters, "artifactType");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["digest"], artifact_digest.as_str());
        let (list, filters) = referrers(
            &server,
            repo,
            &subject_digest,
            "?artifactType=application/vnd.none",
        )
        .await;
        assert_eq!(filters, "artifactType");
        assert!(list.is_empty());

        // A subject that never exists.
        let missing = alg.digest(format!("missing content {i}").as_bytes());
        let dangling = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": conf1,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": conf1, "digest": layer, "size": 64}],
            "subject": {"mediaType": MANIFEST, "digest": missing, "size": 123},
        }))
        .unwrap();
        let response = server
            .put_manifest_ok(repo, "tagged-artifact", MANIFEST, &dangling)
            .await;
        assert_eq!(header(&response, "oci-subject"), missing);
        let (list, _) = referrers(&server, repo, &missing, "").await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["digest"], sha256(&dangling).as_str());

        // Deleting the subject first is allowed; its referrers stay listed.
        let response = server
            .delete(&format!("/v2/{repo}/manifests/{subject_digest}"))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let (list, _) = referrers(&server, repo, &subject_digest, "").await;
        assert_eq!(list.len(), 3);
        // Deleting a referrer removes it from the list.
        let response = server
            .delete(&format!("/v2/{repo}/manifests/{plain_digest}"))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let (list, _) = referrers(&server, repo, &subject_digest, "").await;
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|m| m["digest"] != plain_digest.as_str()));
        // Referrers are per repository.
        let (list, _) = referrers(&server, "conformance/repo2", &subject_digest, "").await;
        assert!(list.is_empty());
    }
    // Unknown repository: 200 and empty.
    let (list, _) = referrers(&server, "no/such/repo", &sha256(b"x"), "").await;
    assert!(list.is_empty());
}

async fn index_children_with_a_subject_are_referrers(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    let (subject, subject_digest) = server.image(repo, Alg::Sha256, 600).await;
    server
        .put_manifest_ok(repo, "index", MANIFEST, &subject)
        .await;
    let subject_desc =
        json!({"mediaType": MANIFEST, "digest": subject_digest, "size": subject.len()});
    let conf1 = "application/vnd.example.oci.conformance.v1";
    let mut children = Vec::new();
    for seed in [601, 602] {
        let (child, _) = server.image(repo, Alg::Sha256, seed).await;
        let mut child: Value = serde_json::from_slice(&child).unwrap();
        child["subject"] = subject_desc.clone();
        child["artifactType"] = json!(conf1);
        let bytes = serde_json::to_vec(&child).unwrap();
        let digest = sha256(&bytes);
        let response = server
            .put_manifest_ok(repo, &digest, MANIFEST, &bytes)
            .await;
        assert_eq!(header(&response, "oci-subject"), subject_digest);
        children.push(json!({"mediaType": MANIFEST, "digest": digest, "size": bytes.len()}));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": INDEX, "artifactType": conf1,
        "manifests": children, "subject": subject_desc,
    }))
    .unwrap();
    // By tag.
    let response = server
        .put_manifest_ok(repo, "tagged-artifact", INDEX, &index)
        .await;
    assert_eq!(header(&response, "oci-subject"), subject_digest);
    let (list, _) = referrers(&server, repo, &subject_digest, "").await;
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|m| m["artifactType"] == conf1));
}

// ---------------------------------------------------------------------------
// 2.11 deletes
// ---------------------------------------------------------------------------

async fn manifest_and_blob_deletes(backend: Backend) {
    let server = Server::start_on(backend).await;
    let repo = "conformance/repo1";
    for (i, alg) in ALGS.into_iter().enumerate() {
        let seed = 700 + 10 * i as u64;
        let (manifest, digest) = server.image(repo, alg, seed).await;
        server
            .put_manifest_ok(repo, &digest, MANIFEST, &manifest)
            .await;
        for tag in ["t0", "t1"] {
            server.put_manifest_ok(repo, tag, MANIFEST, &manifest).await;
        }
        let tagged_digest = sha256(&manifest);

        // By tag: 202, only that tag goes.
        let response = server.delete(&format!("/v2/{repo}/manifests/t0")).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            server
                .head(&format!("/v2/{repo}/manifests/t0"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            server
                .head(&format!("/v2/{repo}/manifests/t1"))
                .await
                .status(),
            StatusCode::OK
        );
        check_manifest(&server, repo, &digest, &manifest, MANIFEST, &digest).await;
        assert_eq!(
            server
                .delete(&format!("/v2/{repo}/manifests/t0"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );

        // By digest (the one the tags point at): 202, tags gone, 404 after.
        let (tags, _) = tag_list(&server, &format!("/v2/{repo}/tags/list")).await;
        assert_eq!(tags, ["t1"]);
        let path = format!("/v2/{repo}/manifests/{tagged_digest}");
        assert_eq!(server.delete(&path).await.status(), StatusCode::ACCEPTED);
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            server
                .get(&format!("/v2/{repo}/manifests/t1"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        let (tags, _) = tag_list(&server, &format!("/v2/{repo}/tags/list")).await;
        assert!(tags.is_empty());
        assert_eq!(server.delete(&path).await.status(), StatusCode::NOT_FOUND);

        // By a sha512 (or sha256) digest reference.
        let path = format!("/v2/{repo}/manifests/{digest}");
        if alg == Alg::Sha512 {
            assert_eq!(server.head(&path).await.status(), StatusCode::OK);
            assert_eq!(server.delete(&path).await.status(), StatusCode::ACCEPTED);
        }
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);

        // Blobs a (deleted) manifest referenced can be deleted: 202, then 404.
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap();
        let path = format!("/v2/{repo}/blobs/{config}");
        assert_eq!(server.delete(&path).await.status(), StatusCode::ACCEPTED);
        assert_eq!(server.head(&path).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(server.get(&path).await.status(), StatusCode::NOT_FOUND);
    }

    // A blob a live manifest references can be deleted, and the manifest
    // can still be deleted afterwards (OCI_DELETE_MANIFEST_BEFORE_BLOBS=0).
    let (manifest, digest) = server.image(repo, Alg::Sha256, 790).await;
    server
        .put_manifest_ok(repo, "live", MANIFEST, &manifest)
        .await;
    let value: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = value["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        server
            .delete(&format!("/v2/{repo}/blobs/{layer}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        server
            .delete(&format!("/v2/{repo}/manifests/{digest}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    // A blob never pushed: 404.
    assert_eq!(
        server
            .delete(&format!("/v2/{repo}/blobs/{}", sha256(b"never")))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------------------
// _catalog
// ---------------------------------------------------------------------------

async fn catalog_lists_repositories(backend: Backend) {
    let server = Server::start_on(backend).await;
    let response = server.get("/v2/_catalog").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["repositories"], json!([]));
    for repo in ["zeta", "alpha/one", "alpha/two", "mid-dle"] {
        server.push_blob(repo, repo.as_bytes(), Alg::Sha256).await;
    }
    let (manifest, _) = server.image("manifests/only", Alg::Sha256, 800).await;
    server
        .put_manifest_ok("manifests/only", "v1", MANIFEST, &manifest)
        .await;
    let body: Value = server.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(
        body["repositories"],
        json!([
            "alpha/one",
            "alpha/two",
            "manifests/only",
            "mid-dle",
            "zeta"
        ])
    );
    let response = server.get("/v2/_catalog?n=2").await;
    assert!(header(&response, "link").contains("rel=\"next\""));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["repositories"], json!(["alpha/one", "alpha/two"]));
    let body: Value = server
        .get("/v2/_catalog?last=alpha/two")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["repositories"],
        json!(["manifests/only", "mid-dle", "zeta"])
    );
}
