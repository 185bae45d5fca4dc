//! Many packs into one store at once, within one process.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Barrier;
use std::thread;

use ferry_store::extract::{self, ExtractOptions};
use ferry_store::maintenance;
use ferry_store::pack::PackOptions;

use crate::common::{self, TestDir};

const THREADS: usize = 8;

/// One model directory per thread: shared files (same blobs, written
/// concurrently) plus a unique one.
fn models(t: &TestDir) -> Vec<PathBuf> {
    (0..THREADS)
        .map(|i| {
            let dir = common::small_model(&t.join(format!("model-{i}")));
            common::write_file(
                &dir,
                &format!("unique-{i}.safetensors"),
                &common::tiny_safetensors(20_000 + i, i as u8),
                0o644,
            );
            dir
        })
        .collect()
}

#[test]
fn eight_threads_pack_into_one_store() {
    let t = TestDir::new();
    let models = models(&t);
    let root = t.join("store");
    let barrier = Barrier::new(THREADS);
    let digests: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let barrier = &barrier;
                let root = root.clone();
                scope.spawn(move || {
                    barrier.wait();
                    // Each thread opens the (possibly not yet created) store itself.
                    let store = ferry_store::Store::open(&root).expect("opening store");
                    let options = PackOptions {
                        bundle_small: (i % 2 == 1).then_some(4096),
                        ..PackOptions::default()
                    };
                    common::pack_ok(&store, dir, &format!("m:t{i}"), &options).manifest_digest
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("pack thread"))
            .collect()
    });

    let store = ferry_store::Store::open(&root).unwrap();
    let names: BTreeSet<String> = common::index_names(&store).into_iter().collect();
    let expected: BTreeSet<String> = (0..THREADS)
        .map(|i| format!("docker.io/library/m:t{i}"))
        .collect();
    assert_eq!(names, expected, "every pack's entry survived");
    assert_eq!(
        common::index_names(&store).len(),
        THREADS,
        "no duplicate entries"
    );
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.unreferenced.is_empty(), "{report:?}");
    assert_eq!(report.leftovers, 0, "temporary files left behind");
    for (i, digest) in digests.iter().enumerate() {
        let resolved = store.resolve(&format!("m:t{i}")).unwrap();
        assert_eq!(resolved.descriptor.digest(), digest);
    }
    let unique: BTreeSet<_> = digests.iter().map(|d| d.to_string()).collect();
    assert_eq!(unique.len(), THREADS);

    // Spot-check two artifacts byte for byte.
    for i in [0, THREADS - 1] {
        let out = t.join(format!("out-{i}"));
        extract::extract(&store, &format!("m:t{i}"), &out, &ExtractOptions::default()).unwrap();
        assert_eq!(
            common::files_only(common::tree(&out)),
            common::files_only(common::tree_following_links(&models[i]))
        );
    }
}

#[test]
fn prune_running_during_packs_never_breaks_them() {
    let t = TestDir::new();
    let models = models(&t);
    let store = t.store("store");
    // Something for prune to collect, so it really deletes while packs run.
    store.put_document(b"{\"garbage\":1}").unwrap();
    thread::scope(|scope| {
        let pruner = scope.spawn(|| {
            let mut rounds = 0;
            while rounds < 50 {
                maintenance::prune(&store, false).expect("prune");
                rounds += 1;
            }
        });
        let packers: Vec<_> = models
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let store = store.clone();
                scope.spawn(move || {
                    for round in 0..3 {
                        common::pack_ok(
                            &store,
                            dir,
                            &format!("m:t{i}-{round}"),
                            &PackOptions::default(),
                        );
                    }
                })
            })
            .collect();
        for p in packers {
            p.join().expect("pack thread");
        }
        pruner.join().expect("prune thread");
    });
    maintenance::prune(&store, false).unwrap();
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(common::index_names(&store).len(), THREADS * 3);
    for i in 0..THREADS {
        let out = t.join(format!("out-{i}"));
        extract::extract(
            &store,
            &format!("m:t{i}-2"),
            &out,
            &ExtractOptions::default(),
        )
        .unwrap_or_else(|e| panic!("artifact {i} is broken after concurrent prune: {e}"));
    }
}

#[test]
fn racing_packs_of_one_tag_leave_one_entry() {
    let t = TestDir::new();
    let models = models(&t);
    let store = t.store("store");
    let barrier = Barrier::new(THREADS);
    let digests: BTreeSet<String> = thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter()
            .map(|dir| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    common::pack_ok(store, dir, "m:same", &PackOptions::default())
                        .manifest_digest
                        .to_string()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("pack thread"))
            .collect()
    });
    assert_eq!(digests.len(), THREADS);
    assert_eq!(
        common::index_names(&store),
        vec!["docker.io/library/m:same"]
    );
    let winner = store
        .resolve("m:same")
        .unwrap()
        .descriptor
        .digest()
        .to_string();
    assert!(digests.contains(&winner), "the entry is one of the packs");
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // The losers' manifests and configs are garbage now, nothing else.
    assert!(
        report
            .unreferenced
            .contains(&digests.iter().find(|d| **d != winner).unwrap().clone())
    );
    maintenance::prune(&store, false).unwrap();
    assert!(
        maintenance::fsck(&store, false)
            .unwrap()
            .unreferenced
            .is_empty()
    );
    extract::extract(&store, "m:same", &t.join("out"), &ExtractOptions::default()).unwrap();
}

#[test]
fn prune_never_breaks_a_concurrent_tag() {
    // Index updates stage their new index.json in tmp/, which prune empties.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let packed = common::pack_ok(&store, &model, "m", &PackOptions::default());
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|scope| {
        let pruner = scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                maintenance::prune(&store, false).expect("prune");
            }
        });
        let tagger = scope.spawn(|| {
            for i in 0..100 {
                let result =
                    store.set_reference(&common::reference(&format!("m:tag{i}")), &packed.manifest);
                if let Err(e) = result {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("tag {i} failed while prune ran: {e}");
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        tagger.join().expect("tag thread");
        pruner.join().expect("prune thread");
    });
    assert_eq!(common::index_names(&store).len(), 101);
    assert!(maintenance::fsck(&store, false).unwrap().is_clean());
}

#[test]
fn failing_packs_racing_successful_ones_never_take_their_blobs() {
    let t = TestDir::new();
    let models = models(&t);
    let store = t.store("store");
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        for (i, dir) in models.iter().enumerate() {
            let (store, barrier) = (&store, &barrier);
            scope.spawn(move || {
                barrier.wait();
                // Odd threads fail after writing their layers.
                let options = PackOptions {
                    created: (i % 2 == 1).then(|| "not a time".to_string()),
                    ..PackOptions::default()
                };
                for round in 0..3 {
                    let result = ferry_store::pack::pack(
                        store,
                        dir,
                        &common::reference(&format!("m:t{i}-{round}")),
                        &options,
                    );
                    assert_eq!(result.is_ok(), i % 2 == 0, "thread {i}: {result:?}");
                }
            });
        }
    });
    let names = common::index_names(&store);
    assert_eq!(names.len(), THREADS / 2 * 3);
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.unreferenced.is_empty(),
        "failed packs left blobs: {report:?}"
    );
    for i in (0..THREADS).step_by(2) {
        let out = t.join(format!("out-{i}"));
        extract::extract(
            &store,
            &format!("m:t{i}-2"),
            &out,
            &ExtractOptions::default(),
        )
        .unwrap_or_else(|e| panic!("artifact {i} lost blobs to a failed pack: {e}"));
    }
}

#[test]
fn verified_files_are_installed_together_and_only_from_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let store = ferry_store::Store::open(dir.path().join("store")).unwrap();
    let contents: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
    let digests: Vec<ferry_spec::oci::Digest> = contents
        .iter()
        .map(|c| {
            let mut hasher = ferry_spec::digest::DigestHasher::sha256();
            hasher.update(c);
            hasher.finish()
        })
        .collect();
    // One of them is stored already: its temp file is just dropped.
    store.put_document(&contents[0]).unwrap();
    let temps: Vec<std::path::PathBuf> = digests.iter().map(|d| store.partial_path(d)).collect();
    for (temp, content) in temps.iter().zip(&contents) {
        std::fs::write(temp, content).unwrap();
    }
    let outside = dir.path().join("elsewhere");
    std::fs::write(&outside, &contents[1]).unwrap();
    assert!(
        store
            .install_verified_batch(&[(outside.as_path(), &digests[1])])
            .is_err(),
        "a file outside tmp/ is refused"
    );
    let batch: Vec<(&std::path::Path, &ferry_spec::oci::Digest)> = temps
        .iter()
        .map(|t| t.as_path())
        .zip(digests.iter())
        .collect();
    store.install_verified_batch(&batch).unwrap();
    for (digest, content) in digests.iter().zip(&contents) {
        assert_eq!(&std::fs::read(store.blob_path(digest)).unwrap(), content);
    }
    let left: Vec<_> = std::fs::read_dir(store.tmp_dir()).unwrap().collect();
    assert!(left.is_empty(), "left in tmp: {left:?}");
}
