//! `rm` and `prune`: shared blobs survive, debris goes, dry runs touch nothing.

use std::collections::BTreeSet;
use std::fs;

use ferry_store::StoreError;
use ferry_store::extract::{self, ExtractOptions};
use ferry_store::maintenance;
use ferry_store::pack::PackOptions;

use crate::common::{self, TestDir};

fn blob_set(store: &ferry_store::Store) -> BTreeSet<String> {
    common::blob_names(store).into_iter().collect()
}

/// Every blob an artifact needs: manifest, config, layers.
fn needed(store: &ferry_store::Store, name: &str) -> BTreeSet<String> {
    let (digest, _, manifest) = common::manifest_json(store, name);
    let mut out = BTreeSet::from([
        digest.to_string(),
        manifest["config"]["digest"].as_str().unwrap().to_string(),
    ]);
    for layer in manifest["layers"].as_array().unwrap() {
        out.insert(layer["digest"].as_str().unwrap().to_string());
    }
    out
}

#[test]
fn removing_a_tag_keeps_blobs_another_artifact_shares() {
    let t = TestDir::new();
    let model_a = common::small_model(&t.join("a"));
    common::write_file(&model_a, "only-in-a.txt", b"unique to a\n", 0o644);
    let model_b = common::small_model(&t.join("b"));
    common::write_file(&model_b, "only-in-b.txt", b"unique to b\n", 0o644);
    let store = t.store("store");
    common::pack_ok(&store, &model_a, "m:a", &PackOptions::default());
    common::pack_ok(&store, &model_b, "m:b", &PackOptions::default());
    let need_a = needed(&store, "m:a");
    let need_b = needed(&store, "m:b");
    let shared: BTreeSet<_> = need_a.intersection(&need_b).cloned().collect();
    assert!(
        shared.len() >= 5,
        "the two artifacts share their common files"
    );
    let only_a: BTreeSet<_> = need_a.difference(&need_b).cloned().collect();
    assert!(
        only_a.len() >= 2,
        "a has its own manifest and file: {only_a:?}"
    );

    let removed = maintenance::remove(&store, "m:a").unwrap();
    assert_eq!(removed.entries, 1);
    assert_eq!(removed.blobs, only_a.len());
    assert!(removed.bytes > 0);
    let left = blob_set(&store);
    assert_eq!(left, need_b, "exactly b's blobs remain");
    assert!(matches!(store.resolve("m:a"), Err(StoreError::NotFound(_))));

    let out = t.join("out");
    extract::extract(&store, "m:b", &out, &ExtractOptions::default()).expect("b still extracts");
    assert_eq!(
        common::files_only(common::tree(&out)),
        common::files_only(common::tree_following_links(&model_b))
    );
    assert!(maintenance::fsck(&store, false).unwrap().is_clean());

    let err = maintenance::remove(&store, "m:a").unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(blob_set(&store), need_b, "a failed rm deletes nothing");
}

#[test]
fn two_tags_of_one_manifest_and_removal_by_digest() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let first = common::pack_ok(&store, &model, "m:one", &PackOptions::default());
    let second = common::pack_ok(&store, &model, "m:two", &PackOptions::default());
    assert_eq!(first.manifest_digest, second.manifest_digest);
    let all = blob_set(&store);

    let removed = maintenance::remove(&store, "m:one").unwrap();
    assert_eq!((removed.entries, removed.blobs), (1, 0));
    assert_eq!(
        blob_set(&store),
        all,
        "the other tag still needs every blob"
    );
    extract::extract(&store, "m:two", &t.join("out"), &ExtractOptions::default()).unwrap();

    common::pack_ok(&store, &model, "m:one", &PackOptions::default());
    let removed = maintenance::remove(&store, first.manifest_digest.as_ref()).unwrap();
    assert_eq!(removed.entries, 2, "a digest removes every tag of it");
    assert!(common::index_names(&store).is_empty());
    assert!(
        blob_set(&store).is_empty(),
        "nothing is referenced any more"
    );
}

#[test]
fn prune_dry_run_deletes_nothing_and_prune_removes_debris() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let needed_blobs = needed(&store, "m");
    let orphan = store.put_document(b"{\"orphan\":true}").unwrap();
    let leftover_file = store.tmp_dir().join("blob-interrupted");
    fs::write(&leftover_file, vec![7u8; 1000]).unwrap();
    let leftover_dir = store.tmp_dir().join("half-written");
    common::write_file(&leftover_dir, "part", b"xyz", 0o644);

    // fsck: clean, with the orphan and the leftovers reported separately.
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.unreferenced, vec![orphan.to_string()]);
    assert_eq!(report.leftovers, 2);

    let before = blob_set(&store);
    let dry = maintenance::prune(&store, true).unwrap();
    assert_eq!(dry.blobs, vec![orphan.to_string()]);
    assert_eq!(dry.temp_files.len(), 2);
    assert!(dry.bytes >= 1000);
    assert_eq!(blob_set(&store), before, "dry run deleted blobs");
    assert!(
        leftover_file.exists() && leftover_dir.exists(),
        "dry run deleted leftovers"
    );

    let pruned = maintenance::prune(&store, false).unwrap();
    assert_eq!(pruned.blobs, dry.blobs);
    assert_eq!(pruned.temp_files.len(), 2);
    assert_eq!(blob_set(&store), needed_blobs);
    assert!(!leftover_file.exists() && !leftover_dir.exists());
    assert!(
        store.tmp_dir().is_dir(),
        "prune keeps the tmp directory itself"
    );
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean() && report.unreferenced.is_empty() && report.leftovers == 0);

    // A second prune finds nothing, and the artifact still extracts.
    let again = maintenance::prune(&store, false).unwrap();
    assert!(again.blobs.is_empty() && again.temp_files.is_empty());
    extract::extract(&store, "m", &t.join("out"), &ExtractOptions::default()).unwrap();
    // The store still accepts new blobs after its tmp dir was emptied.
    common::pack_ok(&store, &model, "m:again", &PackOptions::default());
}

#[test]
fn a_failed_pack_removes_only_what_it_added() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let orphan = store.put_document(b"{\"orphan\":true}").unwrap();
    let before = blob_set(&store);

    // Same files plus a new one; the created time is only checked after
    // the layers are written, so the pack fails with blobs in the store.
    common::write_file(&model, "new.txt", b"only in the failed pack\n", 0o644);
    let options = PackOptions {
        created: Some("not a time".into()),
        ..PackOptions::default()
    };
    ferry_store::pack::pack(&store, &model, &common::reference("n"), &options)
        .expect_err("invalid created time");
    assert_eq!(
        blob_set(&store),
        before,
        "shared, unrelated and orphan blobs all stay"
    );
    assert!(blob_set(&store).contains(&orphan.to_string()));
    assert!(
        common::entries_with_prefix(&store.tmp_dir(), "").is_empty(),
        "tmp/ debris"
    );
    extract::extract(&store, "m", &t.join("out"), &ExtractOptions::default())
        .expect("the earlier artifact is intact");
}
