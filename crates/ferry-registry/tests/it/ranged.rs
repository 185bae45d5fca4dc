//! Large blobs in byte ranges over several connections: against a registry
//! that ignores `Range`, answers short or for other bytes, corrupts a range,
//! drops a range's connection, redirects ranges to another host, and a pull
//! killed halfway that resumes with only the missing ranges.

use std::time::Duration;

use ferry_registry::copy::{CopyOptions, Location, copy};
use ferry_registry::progress::NoProgress;
use ferry_registry::{Client, ClientError, ClientOptions, RangeOptions};

use crate::common::*;
use crate::hostile::{Hostile, Seen, noise};

const MIB: usize = 1024 * 1024;
/// The smallest piece in these tests.
const PIECE: u64 = 128 * 1024;

/// Ranges from 512 KiB blobs on, pieces of at least 128 KiB, four
/// connections per blob.
fn ranged_options() -> ClientOptions {
    ClientOptions {
        ranges: RangeOptions {
            connections_per_blob: 4,
            max_connections: 8,
            min_blob: 512 * 1024,
            min_piece: PIECE,
            stream_piece: PIECE,
            // Split whatever the probe's speed.
            split_below: u64::MAX,
        },
        ..options()
    }
}

pub fn ranged_client() -> Client {
    Client::new(ranged_options())
}

/// `bytes=START-LAST` of a request, as `START..LAST + 1`.
pub fn closed_range(seen: &Seen) -> Option<std::ops::Range<u64>> {
    let (start, last) = seen
        .header("range")?
        .strip_prefix("bytes=")?
        .split_once('-')?;
    Some(start.parse().ok()?..last.parse::<u64>().ok()? + 1)
}

/// The blob's `GET`s at `registry`.
fn blob_gets(registry: &Hostile, digest: &str) -> Vec<Seen> {
    registry.requests("GET", &format!("/blobs/{digest}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_comes_in_ranges_each_byte_once() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(3 * MIB + 4321, 70);
    let small = noise(1000, 71);
    let seeded = registry.seed(
        "m",
        "v1",
        &[("w.bin", content.clone()), ("small.json", small.clone())],
    );
    let (_dir, store) = store();
    let pulled = pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("a ranged pull");
    assert_blob(&store, &content);
    assert_blob(&store, &small);
    assert_eq!(
        pulled.bytes,
        (content.len() + small.len()) as u64 + config_len(&registry, &seeded)
    );
    let layer = &seeded.layers[0].0;
    let mut ranges: Vec<_> = blob_gets(&registry, layer)
        .iter()
        .map(|seen| {
            closed_range(seen).expect("every GET of the large blob asks for a closed range")
        })
        .collect();
    assert!(ranges.len() >= 4, "only {} ranges", ranges.len());
    ranges.sort_by_key(|r| r.start);
    let mut next = 0;
    for range in &ranges {
        assert_eq!(
            range.start, next,
            "ranges overlap or leave a gap: {ranges:?}"
        );
        next = range.end;
    }
    assert_eq!(next, content.len() as u64);
    assert_eq!(
        registry.served(layer),
        content.len() as u64,
        "every byte once"
    );
    let small_gets = blob_gets(&registry, &seeded.layers[1].0);
    assert_eq!(small_gets.len(), 1);
    assert_eq!(
        small_gets[0].header("range"),
        None,
        "a small blob is one stream"
    );
    assert!(
        tmp_entries(&store).is_empty(),
        "left in tmp: {:?}",
        tmp_entries(&store)
    );
}

/// The size of the seeded config blob.
fn config_len(registry: &Hostile, seeded: &crate::hostile::Seeded) -> u64 {
    let manifest: serde_json::Value = registry.with(|s| {
        let (bytes, _) = s
            .manifests
            .get(&("m".to_string(), seeded.manifest.clone()))
            .expect("the manifest")
            .clone();
        serde_json::from_slice(&bytes).unwrap()
    });
    manifest["config"]["size"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_ignores_range_sends_the_blob_once_over_one_stream() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 72);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    registry.with(|s| s.faults.ignore_range = true);
    let (_dir, store) = store();
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("one stream instead");
    assert_blob(&store, &content);
    let layer = &seeded.layers[0].0;
    assert_eq!(
        blob_gets(&registry, layer).len(),
        1,
        "the whole blob the first answer brought is used"
    );
    assert_eq!(registry.served(layer), content.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_range_for_other_bytes_falls_back_to_one_stream() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 73);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.shifted_ranges.insert(layer.clone()));
    let (_dir, store) = store();
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("one stream instead");
    assert_blob(&store, &content);
    let gets = blob_gets(&registry, &layer);
    assert_eq!(gets.len(), 2, "one refused range, then one stream");
    assert!(closed_range(&gets[0]).is_some());
    assert_eq!(gets[1].header("range"), None);
    assert!(
        tmp_entries(&store).is_empty(),
        "left in tmp: {:?}",
        tmp_entries(&store)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ranges_are_continued_where_they_stop() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 74);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.short_ranges.insert(layer.clone(), 50_000));
    let (_dir, store) = store();
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("short answers are continued");
    assert_blob(&store, &content);
    let gets = blob_gets(&registry, &layer);
    assert!(
        gets.len() as u64 >= content.len() as u64 / 50_000,
        "{} requests for {} bytes in answers of 50000",
        gets.len(),
        content.len()
    );
    assert_eq!(
        registry.served(&layer),
        content.len() as u64,
        "nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_with_wrong_bytes_is_never_stored() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 75);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.corrupt_range_once.insert(layer.clone(), MIB + 77));
    let (_dir, store) = store();
    let error = pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect_err("a corrupt range fails the pull");
    assert!(
        matches!(&error, ClientError::Integrity { what, .. } if what.contains(&layer)),
        "{error:?}"
    );
    assert!(!store.has_blob(&digest(&layer)));
    assert!(store.entries().unwrap().is_empty());
    assert!(
        tmp_entries(&store).is_empty(),
        "the bad bytes were kept: {:?}",
        tmp_entries(&store)
    );
    // The fault was once: the next pull is clean.
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("a clean pull");
    assert_blob(&store, &content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_range_connection_resumes_that_range_only() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 76);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    registry.with(|s| s.faults.drop_range_once.insert(layer.clone(), 30_000));
    let (_dir, store) = store();
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("the dropped range is resumed");
    assert_blob(&store, &content);
    let resumed = blob_gets(&registry, &layer)
        .iter()
        .filter_map(closed_range)
        .filter(|r| r.start % PIECE != 0)
        .count();
    assert_eq!(resumed, 1, "one range resumed in the middle of a piece");
    assert_eq!(
        registry.served(&layer),
        content.len() as u64 - 30_000,
        "only the dropped range's rest was asked again (the 30000 bytes before the drop came over the cut connection)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_go_straight_to_the_redirect_target_without_credentials() {
    let registry = Hostile::start("127.0.0.1").await;
    let cdn = Hostile::start("127.0.0.1").await;
    let content = noise(3 * MIB, 77);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    cdn.seed("m", "v1", &[("w.bin", content.clone())]);
    registry.with(|s| {
        s.auth = crate::hostile::Auth::Bearer {
            service: "hostile".into(),
        };
        s.faults.redirect_blobs_to = Some(cdn.url());
    });
    let (_dir, store) = store();
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("ranges through a redirect");
    assert_blob(&store, &content);
    let layer = &seeded.layers[0].0;
    let at_registry: Vec<_> = blob_gets(&registry, layer)
        .into_iter()
        .filter(|s| s.header("authorization").is_some())
        .collect();
    assert_eq!(
        at_registry.len(),
        1,
        "the registry is asked once; the other ranges go to the redirect target"
    );
    let at_cdn = blob_gets(&cdn, layer);
    assert!(
        at_cdn.len() >= 4,
        "{} ranges at the other host",
        at_cdn.len()
    );
    for seen in cdn.seen() {
        assert_eq!(seen.header("authorization"), None, "credentials leaked");
        assert_eq!(seen.query, "signed=yes", "the signed URL is used as given");
    }
    assert!(at_cdn.iter().all(|seen| closed_range(seen).is_some()));
    assert_eq!(cdn.served(layer), content.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ranged_pull_resumes_with_only_the_missing_ranges() {
    let registry = Hostile::start("127.0.0.1").await;
    let size = 6 * MIB;
    let content = noise(size, 78);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    // 4 connections at 1 MB/s each: about 1.5 s for the blob.
    registry.with(|s| s.faults.throttle = Some(1_000_000));
    let (_dir, store) = store();
    let partial = store.partial_path(&digest(&layer));
    let record = std::path::PathBuf::from(format!("{}.ranges", partial.display()));
    let reference = registry.reference("m:v1");
    // Dropped (killed) once a few pieces are recorded, before the end.
    let client = ranged_client();
    let finished = tokio::select! {
        pulled = pull(&client, &store, &reference) => Some(pulled),
        () = async {
            while recorded_bytes(&record) < 2 * PIECE * 4 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => None,
    };
    assert!(
        finished.is_none(),
        "the pull ended before it was killed: {finished:?}"
    );
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = recorded_bytes(&record);
    assert!(
        held > 0 && held < size as u64,
        "the kill came at {held} of {size} bytes"
    );
    assert!(!store.has_blob(&digest(&layer)));

    registry.clear_served();
    registry.with(|s| s.faults.throttle = None);
    pull(&ranged_client(), &store, &reference)
        .await
        .expect("the resumed pull");
    assert_blob(&store, &content);
    let fetched = registry.served(&layer);
    assert_eq!(
        fetched,
        size as u64 - held,
        "only the missing ranges were fetched again"
    );
    assert!(!record.exists(), "the record is gone with the partial file");
}

/// Bytes a range record lists.
fn recorded_bytes(record: &std::path::Path) -> u64 {
    let Ok(bytes) = std::fs::read(record) else {
        return 0;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return 0;
    };
    value["done"]
        .as_array()
        .map(|ranges| {
            ranges
                .iter()
                .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_between_registries_reads_ranges_and_uploads_in_order() {
    let source = Hostile::start("127.0.0.1").await;
    let destination = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB + 17, 80);
    let seeded = source.seed("m", "v1", &[("w.bin", content.clone())]);
    copy(
        &ranged_client(),
        &Location::Registry(source.reference("m:v1")),
        &Location::Registry(destination.reference("copy:v1")),
        &CopyOptions {
            recursive: false,
            concurrency: 2,
        },
        &NoProgress,
    )
    .await
    .expect("a ranged copy");
    let layer = &seeded.layers[0].0;
    let copied = destination.with(|s| s.blobs.get(layer).cloned());
    assert!(
        copied.is_some_and(|b| b == content),
        "the destination holds the blob"
    );
    let gets = blob_gets(&source, layer);
    assert!(gets.len() >= 4, "{} source requests", gets.len());
    assert!(gets.iter().all(|s| closed_range(s).is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_claims_wrong_bytes_is_downloaded_again_from_byte_0() {
    let registry = Hostile::start("127.0.0.1").await;
    let size = 2 * MIB;
    let content = noise(size, 81);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    let (_dir, store) = store();
    let partial = store.partial_path(&digest(&layer));
    // An earlier run's file and record: the first half "done", but wrong.
    std::fs::write(&partial, vec![0u8; size / 2]).unwrap();
    std::fs::write(
        format!("{}.ranges", partial.display()),
        format!(r#"{{"size":{size},"done":[[0,{}]]}}"#, size / 2),
    )
    .unwrap();
    pull(&ranged_client(), &store, &registry.reference("m:v1"))
        .await
        .expect("the bad half is fetched again");
    assert_blob(&store, &content);
    assert_eq!(
        registry.served(&layer),
        (size + size / 2) as u64,
        "the missing half, then the whole blob once the digest failed"
    );
    assert!(
        tmp_entries(&store).is_empty(),
        "left in tmp: {:?}",
        tmp_entries(&store)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_connection_is_not_split_after_the_probe() {
    let registry = Hostile::start("127.0.0.1").await;
    let content = noise(2 * MIB, 82);
    let seeded = registry.seed("m", "v1", &[("w.bin", content.clone())]);
    let layer = seeded.layers[0].0.clone();
    let fast = Client::new(ClientOptions {
        ranges: RangeOptions {
            // Any speed is fast enough.
            split_below: 0,
            ..ranged_options().ranges
        },
        ..options()
    });
    let (_dir, store) = store();
    pull(&fast, &store, &registry.reference("m:v1"))
        .await
        .expect("a probed pull");
    assert_blob(&store, &content);
    let gets = blob_gets(&registry, &layer);
    assert_eq!(gets.len(), 2, "the probe, then one stream");
    assert_eq!(closed_range(&gets[0]), Some(0..PIECE));
    assert_eq!(
        gets[1].header("range"),
        Some(format!("bytes={PIECE}-").as_str())
    );
    assert_eq!(
        registry.served(&layer),
        content.len() as u64,
        "every byte once"
    );
    assert!(
        tmp_entries(&store).is_empty(),
        "left in tmp: {:?}",
        tmp_entries(&store)
    );

    // The same for a reader that needs the bytes in order.
    registry.clear_log();
    let dir = tempfile::tempdir().unwrap();
    copy(
        &fast,
        &Location::Registry(registry.reference("m:v1")),
        &Location::Layout {
            path: dir.path().join("layout"),
            tag: Some("v1".into()),
        },
        &CopyOptions {
            recursive: false,
            concurrency: 1,
        },
        &NoProgress,
    )
    .await
    .expect("a probed copy");
    let gets = blob_gets(&registry, &layer);
    assert_eq!(gets.len(), 2, "the probe, then one stream");
    assert_eq!(closed_range(&gets[0]), Some(0..PIECE));
    assert_eq!(
        gets[1].header("range"),
        Some(format!("bytes={PIECE}-").as_str())
    );
    let copied = std::fs::read(
        dir.path()
            .join(format!("layout/blobs/sha256/{}", &layer[7..])),
    )
    .unwrap();
    assert!(copied == content);
}
