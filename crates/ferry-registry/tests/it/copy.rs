//! Copies into OCI layouts and layout archives: what is left on disk.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use ferry_registry::copy::{CopyOptions, Location, copy};
use ferry_registry::progress::NoProgress;

use crate::common::*;
use crate::hostile::{Hostile, noise};

/// The process umask, read from a file created with mode 0o777.
fn umask() -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o777)
        .open(&probe)
        .unwrap();
    !std::fs::metadata(&probe).unwrap().mode() & 0o777
}

/// Every file below `dir`, with its permission bits.
fn file_modes(dir: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let name = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                found.push((name, metadata.mode() & 0o777));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layouts_and_archives_are_readable_by_all_and_hold_no_lock_file() {
    let registry = Hostile::start("127.0.0.1").await;
    registry.seed("m", "v1", &[("w.bin", noise(200_000, 60))]);
    let dir = tempfile::tempdir().unwrap();
    let shared = 0o666 & !umask();
    let options = CopyOptions {
        recursive: false,
        concurrency: 2,
    };
    let source = Location::Registry(registry.reference("m:v1"));

    let layout = dir.path().join("layout");
    let to_layout = Location::Layout {
        path: layout.clone(),
        tag: Some("v1".into()),
    };
    copy(&client(), &source, &to_layout, &options, &NoProgress)
        .await
        .expect("copy to a layout");
    // Again: existing blobs, an index.json to rewrite under the lock.
    copy(&client(), &source, &to_layout, &options, &NoProgress)
        .await
        .expect("copy to the same layout");
    let modes = file_modes(&layout);
    let names: Vec<&str> = modes.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"index.json") && names.contains(&"oci-layout"),
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("blobs/sha256/"))
            .count(),
        3,
        "config, layer and manifest, nothing else: {names:?}"
    );
    assert_eq!(names.len(), 5, "no lock or temporary file: {names:?}");
    for (name, mode) in &modes {
        assert_eq!(*mode, shared, "{name} is {mode:o}");
    }

    let archive = dir.path().join("out/m.tar");
    let to_archive = Location::Archive {
        path: archive.clone(),
        tag: None,
    };
    copy(&client(), &source, &to_archive, &options, &NoProgress)
        .await
        .expect("copy to an archive");
    assert_eq!(
        file_modes(archive.parent().unwrap()),
        [("m.tar".to_string(), shared)],
        "the archive alone, readable by all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_nested_without_end_are_refused() {
    use ferry_registry::copy::MAX_INDEX_DEPTH;
    let registry = Hostile::start("127.0.0.1").await;
    let seeded = registry.seed("m", "leaf", &[("w.bin", noise(1000, 61))]);
    // An index naming an index naming ... the artifact, deeper than allowed.
    let index_type = ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX;
    let (mut child, mut child_type) = (
        seeded.manifest,
        ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
    );
    for level in 0..=MAX_INDEX_DEPTH {
        let bytes = registry.with(|s| s.manifests[&("m".to_string(), child.clone())].0.clone());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [{"mediaType": child_type, "digest": child, "size": bytes.len()}],
        });
        child = registry.put_manifest(
            "m",
            &format!("level{level}"),
            bytes::Bytes::from(index.to_string()),
            index_type,
        );
        child_type = index_type;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = CopyOptions {
        recursive: false,
        concurrency: 2,
    };
    let to_layout = |name: &str| Location::Layout {
        path: dir.path().join(name),
        tag: None,
    };
    let deep = Location::Registry(registry.reference(&format!("m:level{MAX_INDEX_DEPTH}")));
    let error = copy(&client(), &deep, &to_layout("deep"), &options, &NoProgress)
        .await
        .expect_err("nesting past the limit is refused");
    assert!(error.to_string().contains("nested"), "{error}");
    let fits = Location::Registry(registry.reference(&format!("m:level{}", MAX_INDEX_DEPTH - 1)));
    copy(&client(), &fits, &to_layout("fits"), &options, &NoProgress)
        .await
        .expect("nesting within the limit is copied");
}
