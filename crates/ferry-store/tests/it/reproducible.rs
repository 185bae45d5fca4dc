//! The same content gives the same manifest digest, wherever and whenever
//! it is packed, unless the user asks for times to be recorded.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use ferry_spec::annotations as ann;
use ferry_spec::config::rfc3339_from_unix;
use ferry_spec::media::Encoding;
use ferry_spec::oci::Digest;
use ferry_store::pack::PackOptions;

use crate::common::{self, TestDir};

fn layouts() -> Vec<(&'static str, PackOptions)> {
    vec![
        ("raw", PackOptions::default()),
        (
            "tar",
            PackOptions {
                layer_format: Encoding::Tar,
                ..PackOptions::default()
            },
        ),
        (
            "bundle",
            PackOptions {
                bundle_small: Some(64 * 1024),
                ..PackOptions::default()
            },
        ),
    ]
}

fn digest_of(store: &ferry_store::Store, dir: &std::path::Path, options: &PackOptions) -> Digest {
    common::pack_ok(store, dir, "repro:v1", options).manifest_digest
}

#[test]
fn same_dir_twice_gives_the_same_digest() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    for (layout, options) in layouts() {
        let first = digest_of(&store, &model, &options);
        let (_, first_bytes, _) = common::manifest_json(&store, "repro:v1");
        let second = digest_of(&store, &model, &options);
        let (_, second_bytes, _) = common::manifest_json(&store, "repro:v1");
        assert_eq!(first, second, "layout {layout}");
        assert_eq!(first_bytes, second_bytes, "layout {layout}");
    }
}

#[test]
fn mtimes_do_not_change_the_digest() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    for (layout, options) in layouts() {
        common::set_all_mtimes(
            &model,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
        );
        let before = digest_of(&store, &model, &options);
        common::set_all_mtimes(&model, SystemTime::now() + Duration::from_secs(3600));
        let after = digest_of(&store, &model, &options);
        assert_eq!(before, after, "layout {layout}");
    }
}

#[test]
fn copies_elsewhere_and_other_stores_give_the_same_digest() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    // A different path and a different base name.
    let copy = t.join("elsewhere/deeper/another-name");
    common::copy_tree(&model, &copy);
    common::set_all_mtimes(&copy, SystemTime::now() - Duration::from_secs(86_400 * 400));
    let store_a = t.store("store-a");
    let store_b = t.store("nested/store-b");
    for (layout, options) in layouts() {
        let original = digest_of(&store_a, &model, &options);
        let copied = digest_of(&store_b, &copy, &options);
        assert_eq!(original, copied, "layout {layout}");
        let (_, a, _) = common::manifest_json(&store_a, "repro:v1");
        let (_, b, _) = common::manifest_json(&store_b, "repro:v1");
        assert_eq!(a, b, "layout {layout}: manifest bytes differ");
    }
}

#[test]
fn content_and_mode_changes_do_change_the_digest() {
    // Guards the equalities above against a digest that never changes.
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    for (layout, options) in layouts() {
        let base = digest_of(&store, &model, &options);
        fs::set_permissions(model.join("README.md"), fs::Permissions::from_mode(0o600)).unwrap();
        let chmodded = digest_of(&store, &model, &options);
        fs::set_permissions(model.join("README.md"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(model.join("README.md"), b"# tiny, edited\n").unwrap();
        let edited = digest_of(&store, &model, &options);
        fs::write(model.join("README.md"), b"# tiny\n").unwrap();
        assert_ne!(base, chmodded, "layout {layout}: mode not recorded");
        assert_ne!(base, edited, "layout {layout}: content not hashed");
        assert_ne!(chmodded, edited, "layout {layout}");
        assert_eq!(base, digest_of(&store, &model, &options), "layout {layout}");
    }
}

#[test]
fn created_time_changes_the_digest_and_is_recorded() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let plain = digest_of(&store, &model, &PackOptions::default());
    let (_, _, manifest) = common::manifest_json(&store, "repro:v1");
    assert!(manifest["annotations"][ann::CREATED].is_null());
    assert!(common::config_json(&store, "repro:v1")["descriptor"]["createdAt"].is_null());

    let stamps = ["2024-01-02T03:04:05Z", "2025-06-30T23:59:59Z"];
    let mut digests = vec![plain.to_string()];
    for created in stamps {
        let options = PackOptions {
            created: Some(created.to_string()),
            ..PackOptions::default()
        };
        let digest = digest_of(&store, &model, &options);
        assert_eq!(digest, digest_of(&store, &model, &options), "{created}");
        let (_, _, manifest) = common::manifest_json(&store, "repro:v1");
        assert_eq!(manifest["annotations"][ann::CREATED], created);
        let config = common::config_json(&store, "repro:v1");
        assert_eq!(config["descriptor"]["createdAt"], created);
        digests.push(digest.to_string());
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3, "each created time gives its own digest");
}

fn tar_mtime(store: &ferry_store::Store, digest: &Digest) -> u64 {
    let mut blob = Vec::new();
    store
        .open_blob(digest)
        .unwrap()
        .read_to_end(&mut blob)
        .unwrap();
    let mut archive = tar::Archive::new(&blob[..]);
    let mut entries = archive.entries().unwrap();
    let entry = entries.next().expect("one entry").unwrap();
    entry.header().mtime().unwrap()
}

#[test]
fn preserved_metadata_records_mtimes_in_tar_layers() {
    let t = TestDir::new();
    let model = common::small_model(&t.join("model"));
    let store = t.store("store");
    let preserve = PackOptions {
        layer_format: Encoding::Tar,
        preserve_metadata: true,
        ..PackOptions::default()
    };
    let fixed = PackOptions {
        layer_format: Encoding::Tar,
        ..PackOptions::default()
    };
    let t1 = 1_600_000_000;
    let t2 = 1_700_000_000;
    common::set_all_mtimes(&model, SystemTime::UNIX_EPOCH + Duration::from_secs(t1));
    let first = digest_of(&store, &model, &preserve);
    assert_eq!(
        first,
        digest_of(&store, &model, &preserve),
        "preserve is still stable"
    );
    let first_layers = common::layers(&store, "repro:v1");
    let fixed_first = digest_of(&store, &model, &fixed);

    common::set_mtime(
        &model.join("README.md"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(t2),
    );
    let second = digest_of(&store, &model, &preserve);
    let second_layers = common::layers(&store, "repro:v1");
    assert_ne!(first, second, "a new mtime must change a preserved pack");
    assert_eq!(
        fixed_first,
        digest_of(&store, &model, &fixed),
        "without preserve the mtime is ignored"
    );

    let old = common::layer_at(&first_layers, "README.md");
    let new = common::layer_at(&second_layers, "README.md");
    assert_ne!(
        old.digest(),
        new.digest(),
        "the tar blob itself records the mtime"
    );
    assert_eq!(tar_mtime(&store, old.digest()), t1);
    assert_eq!(tar_mtime(&store, new.digest()), t2);
    assert_eq!(
        common::file_metadata(new).mtime,
        rfc3339_from_unix(t2 as i64).unwrap()
    );
    // Untouched files keep their layers.
    assert_eq!(
        common::layer_at(&first_layers, "LICENSE").digest(),
        common::layer_at(&second_layers, "LICENSE").digest()
    );
    // Fixed metadata: mtime 0 and root ownership in the tar header.
    let fixed_layers = common::layers(&store, "repro:v1");
    let readme = common::layer_at(&fixed_layers, "README.md");
    assert_eq!(tar_mtime(&store, readme.digest()), 0);
    assert_eq!(common::file_metadata(readme).uid, 0);
}
