//! Pulls from a registry that sends wrong, short, cut, stalled, oversized or
//! redirected content.

use std::time::{Duration, Instant};

use ferry_registry::error::{Missing, NetCause};
use ferry_registry::{Client, ClientError, ClientOptions};

use crate::common::*;
use crate::hostile::{Hostile, Scripted, noise};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digest_is_refused_and_nothing_enters_the_store() {
    let registry = Hostile::start("127.0.0.1").await;
    let seeded = registry.seed(
        "m",
        "v1",
        &[
            ("good.bin", noise(300_000, 1)),
            ("bad.bin", noise(200_000, 2)),
        ],
    );
    let bad = seeded.layers[1].0.clone();
    registry.with(|s| s.faults.wrong_content.insert(bad.clone()));
    let (_dir, store) = store();

    let error = pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect_err("a blob that does not match its digest must fail the pull");
    assert!(
        matches!(error, ClientError::Integrity { .. }),
        "expected an integrity error, got {error:?}"
    );
    assert!(
        error.to_string().contains(&bad),
        "the error names the blob: {error}"
    );
    assert!(
        !store.has_blob(&digest(&bad)),
        "the bad blob entered the store"
    );
    assert!(
        !store.has_blob(&digest(&seeded.manifest)),
        "the manifest was stored although a blob failed"
    );
    assert!(
        store.entries().unwrap().is_empty(),
        "the index gained an entry"
    );
    assert!(
        !store.partial_path(&digest(&bad)).exists(),
        "the bad bytes were kept as a partial download"
    );
    // A later pull from an honest registry still works.
    registry.with(|s| s.faults.wrong_content.clear());
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("pull once the registry is honest");
    assert_blob(&store, &seeded.layers[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_resumes_with_range() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(3 * MIB, 3);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    let sent = MIB + 12_345;
    registry.with(|s| s.faults.truncate_once.insert(layer.clone(), sent));
    let (_dir, store) = store();

    let pulled = pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("a truncated body is resumed");
    assert_blob(&store, &content);
    let gets = registry.requests("GET", &format!("/blobs/{layer}"));
    assert_eq!(gets.len(), 2, "one cut request, one resumed request");
    assert_eq!(gets[0].header("range"), None);
    assert_eq!(
        gets[1].header("range"),
        Some(format!("bytes={sent}-").as_str())
    );
    assert!(
        tmp_entries(&store).is_empty(),
        "tmp/ keeps {:?}",
        tmp_entries(&store)
    );
    assert_eq!(store.entries().unwrap().len(), 1);
    assert_eq!(pulled.digest.to_string(), seeded.manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_blob_resumes_with_range() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 4);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    let sent = 700_001;
    registry.with(|s| s.faults.drop_chunked_once.insert(layer.clone(), sent));
    let (_dir, store) = store();

    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("a dropped connection is resumed");
    assert_blob(&store, &content);
    let ranges = range_headers(&registry, &layer);
    assert_eq!(ranges, vec![None, Some(format!("bytes={sent}-"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_resumes() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(MIB, 5);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.stall_once.insert(layer.clone(), 400_000));
    let (_dir, store) = store();
    let client = Client::new(ClientOptions {
        idle_timeout: Duration::from_secs(1),
        ..options()
    });

    let started = Instant::now();
    pull(&client, &store, &registry.reference("m:v1"))
        .await
        .expect("a stalled body is abandoned and resumed");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_blob(&store, &content);
    let gets = registry.requests("GET", &format!("/blobs/{layer}"));
    assert_eq!(gets.last().unwrap().header("range"), Some("bytes=400000-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_ignores_range_is_read_from_the_start() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(MIB, 6);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| {
        s.faults.truncate_once.insert(layer.clone(), 100_000);
        s.faults.ignore_range = true;
    });
    let (_dir, store) = store();
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("the whole blob again after a 200 to a range request");
    assert_blob(&store, &content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_answer_from_the_wrong_offset_is_not_appended() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(MIB, 7);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| {
        s.faults.truncate_once.insert(layer.clone(), 100_000);
        s.faults.lie_about_range = true;
    });
    let (_dir, store) = store();
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("a 206 that starts at byte 0 restarts the download");
    assert_blob(&store, &content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_and_unavailable_are_retried_after_retry_after() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(100_000, 8);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| {
        for (part, status) in [
            ("/manifests/", 429),
            ("/manifests/", 503),
            (layer.as_str(), 503),
        ] {
            s.faults.fail.push(Scripted {
                path_contains: part.to_string(),
                status,
                retry_after: Some("1".into()),
                times: 1,
            });
        }
    });
    let (_dir, store) = store();
    let started = Instant::now();
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("429 and 503 are retried");
    let elapsed = started.elapsed();
    assert_blob(&store, &content);
    assert_eq!(
        registry.requests("GET", "/manifests/v1").len(),
        3,
        "429, 503, then the manifest"
    );
    assert_eq!(
        registry.requests("GET", &layer).len(),
        2,
        "503, then the blob"
    );
    assert!(
        elapsed >= Duration::from_millis(2900),
        "Retry-After: 1 was honoured three times, but the pull took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_unavailability_fails_after_the_retry_budget() {
    let registry = Hostile::start("127.0.0.1").await;
    registry.seed("m", "v1", &[("w.bin", noise(1000, 9))]);
    registry.with(|s| {
        s.faults.fail.push(Scripted {
            path_contains: "/manifests/".into(),
            status: 503,
            retry_after: None,
            times: 100,
        })
    });
    let (_dir, store) = store();
    let error = pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect_err("a registry that always answers 503 fails the pull");
    assert!(
        matches!(error, ClientError::Status { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(
        registry.requests("GET", "/manifests/").len(),
        5,
        "five attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_over_4_mib_is_refused() {
    for chunked in [false, true] {
        let registry = Hostile::start("127.0.0.1").await;
        registry.with(|s| s.faults.huge_manifest = Some((4 * MIB + 1, chunked)));
        let (_dir, store) = store();
        let error = pull(&client(), &store, &registry.reference("m:v1"))
            .await
            .expect_err("an oversized manifest is refused");
        assert!(
            matches!(error, ClientError::Integrity { .. })
                && error.to_string().contains("larger than"),
            "chunked={chunked}: {error:?}"
        );
        assert!(store.entries().unwrap().is_empty());
    }
    // Exactly 4 MiB is allowed (it then fails as the invalid document it is).
    let registry = Hostile::start("127.0.0.1").await;
    registry.with(|s| s.faults.huge_manifest = Some((4 * MIB, false)));
    let (_dir, store) = store();
    let error = pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect_err("the padding document is no manifest");
    assert!(!error.to_string().contains("larger than"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_bytes_than_the_descriptor_declares_are_refused() {
    let registry = Hostile::start("127.0.0.1").await;
    let seeded = registry.seed("m", "v1", &[("w.bin", noise(500_000, 10))]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.extra_bytes.insert(layer.clone(), 4096));
    let (_dir, store) = store();
    let error = pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect_err("a body longer than the descriptor's size is refused");
    assert!(
        matches!(error, ClientError::Integrity { .. }) && error.to_string().contains("more than"),
        "{error:?}"
    );
    assert!(!store.has_blob(&digest(&layer)));
    assert!(!store.partial_path(&digest(&layer)).exists());
    assert!(store.entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_followed_without_credentials() {
    let registry = Hostile::start("127.0.0.1").await;
    let cdn = Hostile::start("127.0.0.2").await;
    let content = noise(600_000, 11);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    // The CDN holds the same blobs under the same paths.
    cdn.seed("m", "v1", &[("w.bin", content.clone())]);
    registry.with(|s| {
        s.auth = crate::hostile::Auth::Bearer {
            service: "hostile".into(),
        };
        s.faults.redirect_blobs_to = Some(cdn.url());
    });
    let (_dir, store) = store();
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("the redirect is followed");
    assert_blob(&store, &content);

    let layer = &seeded.layers[0].0;
    let at_registry = registry.requests("GET", &format!("/blobs/{layer}"));
    assert!(
        at_registry.iter().any(|s| s
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))),
        "the registry itself got the token"
    );
    let at_cdn = cdn.requests("GET", &format!("/blobs/{layer}"));
    assert!(!at_cdn.is_empty(), "the blob came from the other host");
    for seen in cdn.seen() {
        assert_eq!(
            seen.header("authorization"),
            None,
            "credentials leaked to another host: {} {}",
            seen.method,
            seen.path
        );
        assert_eq!(seen.query, "signed=yes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_keeps_making_progress_is_not_abandoned() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(6 * MIB + 5, 12);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    // Every answer stops after 1 MiB: seven requests, more than the five
    // attempts the retry policy allows for failures in a row.
    registry.with(|s| s.faults.cut_every.insert(layer.clone(), MIB));
    let (_dir, store) = store();
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("each cut answer moved the download forward");
    assert_blob(&store, &content);
    let gets = registry.requests("GET", &format!("/blobs/{layer}"));
    assert_eq!(gets.len(), 7);
    for (i, get) in gets.iter().enumerate().skip(1) {
        assert_eq!(
            get.header("range"),
            Some(format!("bytes={}-", i * MIB).as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_answers_that_ignore_range_give_up_after_the_retry_budget() {
    let registry = Hostile::start("127.0.0.1").await;
    let seeded = registry.seed("m", "v1", &[("w.bin", noise(3 * MIB, 13))]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| {
        s.faults.cut_every.insert(layer.clone(), MIB);
        s.faults.ignore_range = true;
    });
    let (_dir, store) = store();
    let error = pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect_err("a download that never gets further fails");
    assert!(
        matches!(error, ClientError::Unreachable { .. }),
        "{error:?}"
    );
    assert_eq!(
        registry.requests("GET", &format!("/blobs/{layer}")).len(),
        6
    );
    assert!(!store.has_blob(&digest(&layer)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_download_that_does_not_match_starts_over_in_the_same_run() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 14);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    let (_dir, store) = store();
    // What a killed pull left, but corrupted (a bad disk, another tool).
    let kept = 700_000;
    let mut corrupted = content[..kept].to_vec();
    corrupted[1234] ^= 0xff;
    std::fs::write(store.partial_path(&digest(&layer)), &corrupted).unwrap();

    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("one pull gets the blob despite the bad partial file");
    assert_blob(&store, &content);
    let ranges = range_headers(&registry, &layer);
    assert_eq!(
        ranges,
        vec![Some(format!("bytes={kept}-")), None],
        "resumed once, then downloaded again from byte 0"
    );
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_says_whether_the_repository_tag_manifest_or_blob_is_missing() {
    let registry = Hostile::start("127.0.0.1").await;
    let seeded = registry.seed("known/m", "v1", &[("w.bin", noise(1000, 15))]);
    let (_dir, store) = store();
    let client = client();
    let missing = |reference: &str| {
        let reference = registry.reference(reference);
        let (client, store) = (&client, &store);
        async move {
            pull(client, store, &reference)
                .await
                .expect_err("nothing to pull")
        }
    };
    let host = registry.registry();

    let error = missing("unknown/m:v1").await;
    assert!(
        matches!(&error, ClientError::NotFound(Missing::Repository { .. })),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("repository {host}/unknown/m not found")
    );

    let error = missing("known/m:nope").await;
    assert!(
        matches!(&error, ClientError::NotFound(Missing::Tag { tag, .. }) if tag == "nope"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("tag {host}/known/m:nope not found")
    );

    let absent = format!("sha256:{}", "0".repeat(64));
    let error = missing(&format!("known/m@{absent}")).await;
    assert_eq!(
        error.to_string(),
        format!("manifest {host}/known/m@{absent} not found")
    );

    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.blobs.remove(&layer));
    let error = missing("known/m:v1").await;
    assert!(
        matches!(&error, ClientError::NotFound(Missing::Blob { digest, .. }) if *digest == layer),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("blob {layer} not found in {host}/known/m")
    );
    assert!(store.entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_at_once() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let reference: ferry_spec::Reference = format!("{closed}/m:v1").parse().unwrap();
    let (_dir, store) = store();
    // Any retry would wait at least a second.
    let client = Client::new(ClientOptions {
        retry: ferry_registry::retry::RetryPolicy {
            attempts: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(5),
        },
        ..options()
    });
    let started = Instant::now();
    let error = pull(&client, &store, &reference)
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(
            error,
            ClientError::Unreachable {
                cause: NetCause::Refused,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains(&closed), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a refused connection was retried: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_ranges_gets_a_download_from_byte_0() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(MIB, 16);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.refuse_range = true);
    let (_dir, store) = store();
    std::fs::write(store.partial_path(&digest(&layer)), &content[..300_000]).unwrap();
    pull(&client(), &store, &registry.reference("m:v1"))
        .await
        .expect("the blob comes whole when its rest is refused");
    assert_blob(&store, &content);
    let ranges = range_headers(&registry, &layer);
    assert_eq!(ranges, vec![Some("bytes=300000-".to_string()), None]);
}

/// The `Range` header of every GET of blob `digest`, in order.
fn range_headers(registry: &Hostile, digest: &impl std::fmt::Display) -> Vec<Option<String>> {
    registry
        .requests("GET", &format!("/blobs/{digest}"))
        .iter()
        .map(|s| s.header("range").map(str::to_string))
        .collect()
}
