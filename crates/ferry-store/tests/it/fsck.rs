//! Corrupt blobs and a damaged index: fsck finds them, nothing trusts them.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ferry_spec::oci::Digest;
use ferry_store::StoreError;
use ferry_store::extract::{self, ExtractOptions};
use ferry_store::maintenance;
use ferry_store::pack::{self, PackOptions};

use crate::common::{self, TestDir};

/// Inverts one byte in the middle of a file.
fn flip_byte(path: &Path) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = file.metadata().unwrap().len();
    assert!(len > 0, "cannot corrupt an empty blob");
    let at = len / 2;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

/// The digest of the largest layer of `name`.
fn largest_layer(store: &ferry_store::Store, name: &str) -> Digest {
    common::layers(store, name)
        .into_iter()
        .max_by_key(|l| l.size())
        .unwrap()
        .digest()
        .clone()
}

#[test]
fn a_clean_store_is_clean() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.checked, common::blob_names(&store).len());
    assert!(report.unreferenced.is_empty() && report.missing.is_empty());
    assert!(report.bytes > 0);
}

#[test]
fn a_flipped_byte_is_found_repaired_and_then_missing() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let victim = largest_layer(&store, "m");
    flip_byte(&store.blob_path(&victim));

    let report = maintenance::fsck(&store, false).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.corrupt, vec![victim.to_string()]);
    assert!(report.missing.is_empty(), "{report:?}");
    assert!(
        store.has_blob(&victim),
        "fsck without repair deletes nothing"
    );

    let report = maintenance::fsck(&store, true).unwrap();
    assert_eq!(report.corrupt, vec![victim.to_string()]);
    assert!(!store.has_blob(&victim), "repair deletes the corrupt blob");

    let report = maintenance::fsck(&store, false).unwrap();
    assert!(!report.is_clean());
    assert!(report.corrupt.is_empty(), "{report:?}");
    assert_eq!(report.missing, vec![victim.to_string()]);

    // Extracting now names the missing blob and leaves nothing behind.
    let out = t.join("out/m");
    let err = extract::extract(&store, "m", &out, &ExtractOptions::default()).unwrap_err();
    assert!(err.to_string().contains(&victim.to_string()), "{err}");
    assert!(!out.exists());
    assert!(common::entries_with_prefix(&t.join("out"), ".ferry-extract-").is_empty());

    // Packing the same directory again heals the store.
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    assert!(maintenance::fsck(&store, false).unwrap().is_clean());
}

#[test]
fn extracting_a_corrupt_layer_fails_and_writes_nothing() {
    for (tag, options) in [
        ("raw", PackOptions::default()),
        (
            "tar",
            PackOptions {
                layer_format: ferry_spec::media::Encoding::Tar,
                ..PackOptions::default()
            },
        ),
    ] {
        let t = TestDir::new();
        let model = common::small_model(&t.join("model"));
        let store = t.store("store");
        common::pack_ok(&store, &model, "m", &options);
        let victim = largest_layer(&store, "m");
        flip_byte(&store.blob_path(&victim));

        let out = t.join("out/m");
        let err = extract::extract(&store, "m", &out, &ExtractOptions::default()).unwrap_err();
        match &err {
            StoreError::DigestMismatch { digest, actual } => {
                assert_eq!(digest, &victim.to_string(), "{tag}");
                assert_ne!(actual, digest, "{tag}");
            }
            other => panic!("{tag}: expected a digest mismatch, got {other:?}"),
        }
        assert!(!out.exists(), "{tag}: partial extraction left behind");
        assert_eq!(
            fs::read_dir(t.join("out")).unwrap().count(),
            0,
            "{tag}: staging left behind"
        );

        // Into an existing directory with --force: unchanged.
        common::write_file(&out, "keep.txt", b"keep", 0o644);
        let before = common::tree(&out);
        let err = extract::extract(&store, "m", &out, &ExtractOptions { force: true }).unwrap_err();
        assert!(
            matches!(err, StoreError::DigestMismatch { .. }),
            "{tag}: {err:?}"
        );
        assert_eq!(common::tree(&out), before, "{tag}");
    }
}

#[test]
fn a_corrupt_manifest_is_reported_and_not_trusted() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let packed = common::pack_ok(&store, &model, "m", &PackOptions::default());
    flip_byte(&store.blob_path(&packed.manifest_digest));
    let report = maintenance::fsck(&store, false).unwrap();
    assert!(
        report.corrupt.contains(&packed.manifest_digest.to_string()),
        "{report:?}"
    );
    let err =
        extract::extract(&store, "m", &t.join("out"), &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err:?}");
    assert!(!t.join("out").exists());
}

#[test]
fn a_truncated_blob_is_corrupt() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let victim = largest_layer(&store, "m");
    let path = store.blob_path(&victim);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let report = maintenance::fsck(&store, false).unwrap();
    assert_eq!(report.corrupt, vec![victim.to_string()]);
}

#[test]
fn a_truncated_index_is_reported_and_refused_everywhere() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    common::pack_ok(&store, &model, "m", &PackOptions::default());
    let index = store.index_path();
    let bytes = fs::read(&index).unwrap();
    fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
    let blobs_before = common::blob_names(&store);

    let report = maintenance::fsck(&store, false).unwrap();
    assert!(!report.is_clean());
    let index_error = report.index_error.expect("fsck reports the index");
    assert!(
        index_error.contains(&index.display().to_string()),
        "{index_error}"
    );

    let is_corrupt_index = |err: &StoreError| match err {
        StoreError::CorruptIndex { path, .. } => {
            path == &index && err.to_string().contains(&index.display().to_string())
        }
        _ => false,
    };
    let err = store.resolve("m").unwrap_err();
    assert!(is_corrupt_index(&err), "resolve: {err:?}");
    let err = pack::pack(
        &store,
        &model,
        &common::reference("n"),
        &PackOptions::default(),
    )
    .unwrap_err();
    assert!(is_corrupt_index(&err), "pack: {err:?}");
    assert_eq!(
        common::blob_names(&store),
        blobs_before,
        "pack wrote blobs into a store whose index it cannot update"
    );
    let err =
        extract::extract(&store, "m", &t.join("out"), &ExtractOptions::default()).unwrap_err();
    assert!(is_corrupt_index(&err), "extract: {err:?}");
    assert!(!t.join("out").exists());

    // Garbage collection must not treat "cannot read the index" as "nothing is used".
    let err = maintenance::prune(&store, false).unwrap_err();
    assert!(is_corrupt_index(&err), "prune: {err:?}");
    let err = maintenance::remove(&store, "m").unwrap_err();
    assert!(is_corrupt_index(&err), "rm: {err:?}");
    for blob in &blobs_before {
        assert!(
            common::blob_names(&store).contains(blob),
            "{blob} was deleted while the index was unreadable"
        );
    }
    assert_eq!(
        fs::read(&index).unwrap(),
        &bytes[..bytes.len() / 2],
        "index rewritten"
    );
}

#[test]
fn damaged_entries_name_the_references_that_reach_a_bad_blob() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let first = common::pack_ok(
        &store,
        &model,
        "registry.example.com/org/m:v1",
        &PackOptions::default(),
    );
    common::pack_ok(
        &store,
        &model,
        "registry.example.com/org/m:v2",
        &PackOptions::default(),
    );
    common::write_file(&model, "extra.txt", b"only in v3", 0o644);
    let third = common::pack_ok(
        &store,
        &model,
        "registry.example.com/org/m:v3",
        &PackOptions::default(),
    );
    assert!(maintenance::fsck(&store, false).unwrap().damaged.is_empty());

    // A layer v1 and v2 share (same content, same manifest) goes missing.
    let shared = largest_layer(&store, "registry.example.com/org/m:v1");
    fs::remove_file(store.blob_path(&shared)).unwrap();
    // The layer only v3 has is corrupted.
    let extra = common::layer_at(
        &common::layers(&store, "registry.example.com/org/m:v3"),
        "extra.txt",
    )
    .digest()
    .clone();
    flip_byte(&store.blob_path(&extra));

    let report = maintenance::fsck(&store, false).unwrap();
    let damaged: Vec<(Option<&str>, &Digest, &[String])> = report
        .damaged
        .iter()
        .map(|d| (d.reference.as_deref(), &d.digest, d.blobs.as_slice()))
        .collect();
    let mut both = vec![shared.to_string(), extra.to_string()];
    both.sort();
    assert_eq!(
        damaged,
        [
            (
                Some("registry.example.com/org/m:v1"),
                &first.manifest_digest,
                &[shared.to_string()][..]
            ),
            (
                Some("registry.example.com/org/m:v2"),
                &first.manifest_digest,
                &[shared.to_string()][..]
            ),
            (
                Some("registry.example.com/org/m:v3"),
                &third.manifest_digest,
                &both[..]
            ),
        ]
    );
    // Repair deletes the corrupt blob: v3 then lacks both, and still is listed.
    maintenance::fsck(&store, true).unwrap();
    let after = maintenance::fsck(&store, false).unwrap();
    assert_eq!(after.missing, both);
    assert_eq!(after.damaged.len(), 3, "{after:?}");
    assert_eq!(after.damaged[2].blobs, both);
}
