//! Helpers: stores with packed or hand-made artifacts, trees to compare,
//! mounts that are always undone.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_mount::{LinuxSyscalls, UmountOptions};
use ferry_spec::media::Encoding;
use ferry_spec::oci::Digest;
use ferry_store::Store;
use ferry_store::pack::{PackOptions, pack};
use serde_json::Value;
use tempfile::TempDir;

pub use ferry_testkit::{Node, require_root, sha256_file, tree};

/// A temporary directory holding a store and whatever a test makes.
pub struct Env {
    dir: TempDir,
    pub store: Store,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("ferry-mount-it-")
            .tempdir()
            .expect("temp dir");
        let store = Store::open(dir.path().join("store")).expect("open store");
        Env { dir, store }
    }

    /// A path inside the environment.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `files` under `name` and packs them as `reference`.
    pub fn pack(
        &self,
        name: &str,
        reference: &str,
        files: &[(&str, &[u8])],
        format: Encoding,
    ) -> Digest {
        let dir = self.path(name);
        write_files(&dir, files);
        self.pack_dir(&dir, reference, format)
    }

    /// Packs an existing directory.
    pub fn pack_dir(&self, dir: &Path, reference: &str, format: Encoding) -> Digest {
        let options = PackOptions {
            layer_format: format,
            ..PackOptions::default()
        };
        let reference = reference.parse().expect("reference");
        pack(&self.store, dir, &reference, &options)
            .expect("pack")
            .manifest_digest
    }

    /// The cache directories of an artifact's layers, in manifest order.
    pub fn layer_dirs(&self, reference: &str) -> Vec<PathBuf> {
        let resolved = self.store.resolve(reference).expect("resolve");
        let manifest = self
            .store
            .read_manifest(resolved.descriptor.digest())
            .expect("manifest");
        manifest
            .layers()
            .iter()
            .map(|l| {
                ferry_mount::layers::LayerSource::of(l)
                    .expect("layer source")
                    .key
                    .dir(&self.store)
            })
            .collect()
    }

    /// Extracts `reference` with `ferry extract`'s code into `name`.
    pub fn extract(&self, reference: &str, name: &str) -> PathBuf {
        let out = self.path(name);
        ferry_store::extract::extract(&self.store, reference, &out, &Default::default())
            .expect("extract");
        out
    }

    /// The record directories under `<store>/mounts`.
    pub fn record_dirs(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.store.root().join("mounts")) {
            Ok(entries) => entries
                .map(|e| e.expect("entry").path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Writes files (parents created) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &[u8])]) {
    for (rel, bytes) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, bytes).expect("write");
    }
}

/// A stored layer: bytes, media type, annotations.
pub type LayerSpec<'a> = (Vec<u8>, &'a str, Vec<(&'a str, &'a str)>);

/// Stores a hand-made artifact (generic, empty config) named `name`.
pub fn put_artifact(store: &Store, name: &str, layers: &[LayerSpec]) -> Digest {
    put_manifest(store, name, layers, EMPTY_CONFIG, b"{}")
}

const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// Stores a hand-made manifest named `name` with `layers` and the config
/// `config` of `config_type` (an artifact with the empty config, else an
/// image).
pub fn put_manifest(
    store: &Store,
    name: &str,
    layers: &[LayerSpec],
    config_type: &str,
    config: &[u8],
) -> Digest {
    let mut layer_json = Vec::new();
    for (bytes, media_type, notes) in layers {
        let mut writer = store.blob_writer().expect("blob writer");
        writer.write_all_bytes(bytes).expect("write layer");
        let digest = writer.commit(None).expect("commit layer");
        let mut layer = serde_json::json!({
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": bytes.len(),
        });
        if !notes.is_empty() {
            let notes: serde_json::Map<String, Value> = notes
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            layer["annotations"] = Value::Object(notes);
        }
        layer_json.push(layer);
    }
    let config_digest = store.put_document(config).expect("config");
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": config_type,
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": layer_json,
    });
    if config_type == EMPTY_CONFIG {
        manifest["artifactType"] = Value::from("application/vnd.example.files");
    }
    let bytes = serde_json::to_vec(&manifest).expect("manifest json");
    let digest = store.put_document(&bytes).expect("manifest");
    let descriptor = ferry_spec::oci::Descriptor::new(
        ferry_spec::oci::MediaType::ImageManifest,
        bytes.len() as u64,
        digest.clone(),
    );
    let reference = ferry_store::index::normalize_reference(name).expect("reference");
    store.set_reference(&reference, &descriptor).expect("tag");
    digest
}

/// A tar archive of regular files and directories (names as given).
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(bytes.len() as u64);
        }
        header.set_mtime(0);
        builder
            .append_data(&mut header, name, *bytes)
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

/// The tree with every write bit removed (what a read-only volume shows of
/// an extracted tree) and directory modes dropped (extract keeps the
/// staging directory's, the cache its own).
pub fn read_only_view_of(tree: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    tree.into_iter()
        .map(|(k, node)| {
            let node = match node {
                Node::File { mode, size, digest } => Node::File {
                    mode: mode & 0o7555,
                    size,
                    digest,
                },
                Node::Dir { .. } => Node::Dir { mode: 0 },
                other => other,
            };
            (k, node)
        })
        .collect()
}

/// Asserts every blob in the store still hashes to its name.
pub fn assert_blobs_intact(store: &Store) {
    let dir = store.blobs_dir("sha256");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).expect("blobs dir") {
        let path = entry.expect("entry").path();
        let name = format!("sha256:{}", path.file_name().unwrap().to_string_lossy());
        assert_eq!(sha256_file(&path), name, "blob {} changed", path.display());
        checked += 1;
    }
    assert!(checked > 0, "the store has blobs to check");
    let report = ferry_store::maintenance::fsck(store, false).expect("fsck");
    assert!(report.is_clean(), "fsck: {report:?}");
}

/// True when `path` is a mount point in this namespace.
pub fn is_mount_point(path: &Path) -> bool {
    let entries = ferry_mount::mountinfo::read();
    ferry_mount::mountinfo::mount_at(&entries, path).is_some()
}

/// The errno of an I/O result that must have failed.
pub fn errno<T: std::fmt::Debug>(result: io::Result<T>, what: &str) -> i32 {
    match result {
        Ok(value) => panic!("{what} succeeded ({value:?}) but should have failed"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: {e} has no errno")),
    }
}

/// Unmounts (through ferry, else lazily) when dropped, so a failing test
/// leaves nothing mounted.
pub struct Guard<'a> {
    pub store: &'a Store,
    pub target: PathBuf,
}

impl<'a> Guard<'a> {
    pub fn new(store: &'a Store, target: &Path) -> Guard<'a> {
        Guard {
            store,
            target: target.to_path_buf(),
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let done = ferry_mount::umount(
            self.store,
            &self.target,
            &UmountOptions::default(),
            &LinuxSyscalls,
        );
        if done.is_err() && is_mount_point(&self.target) {
            let _ = rustix::mount::unmount(&self.target, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Makes a file executable.
pub fn make_executable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}
