//! Helpers shared by the integration tests: fixtures, tree snapshots and
//! small readers of what the store holds on disk.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ferry_spec::Reference;
use ferry_spec::annotations::{self as ann, FileMetadata};
use ferry_spec::oci::{Descriptor, Digest, MediaType};
use ferry_store::Store;
use ferry_store::pack::{self, PackOptions, Packed};
use ferry_testkit::{MIB, ModelSpec};
use serde_json::Value;

/// A scratch directory deleted when the test ends.
pub struct TestDir {
    tmp: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir {
            tmp: tempfile::Builder::new()
                .prefix("ferry-it-")
                .tempdir()
                .expect("creating a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Opens (creating) a store at `<tmp>/<name>`.
    pub fn store(&self, name: &str) -> Store {
        Store::open(self.join(name)).expect("opening store")
    }
}

/// Parses a reference the way the CLI would.
pub fn reference(input: &str) -> Reference {
    input
        .parse()
        .unwrap_or_else(|e| panic!("invalid test reference {input:?}: {e}"))
}

/// Packs or panics with the error.
pub fn pack_ok(store: &Store, dir: &Path, name: &str, options: &PackOptions) -> Packed {
    pack::pack(store, dir, &reference(name), options)
        .unwrap_or_else(|e| panic!("packing {} as {name}: {e}", dir.display()))
}

/// Writes `bytes` to `root/rel` (creating parents) and sets its mode.
pub fn write_file(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("file has a parent")).expect("creating parents");
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("setting mode");
}

/// Creates a symlink `root/rel -> target`.
pub fn write_symlink(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("link has a parent")).expect("creating parents");
    symlink(target, &path).unwrap_or_else(|e| panic!("linking {}: {e}", path.display()));
}

/// A minimal valid safetensors file with one F32 tensor of `n` values.
pub fn tiny_safetensors(n: usize, seed: u8) -> Vec<u8> {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        n * 4
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend((0..n * 4).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    out
}

/// A small hand-made model directory (no Python needed): weights, configs,
/// docs, code with an executable script, a dataset, a 0600 file, a
/// symlink in a subdirectory and a path too long for a plain tar header.
/// Returns `dir`.
pub fn small_model(dir: &Path) -> PathBuf {
    write_file(
        dir,
        "model.safetensors",
        &tiny_safetensors(40_000, 1),
        0o644,
    );
    write_file(
        dir,
        "config.json",
        br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16"}"#,
        0o644,
    );
    write_file(dir, "tokenizer.json", br#"{"version":"1.0"}"#, 0o644);
    write_file(dir, "README.md", b"# tiny\n", 0o644);
    write_file(dir, "LICENSE", b"Apache-2.0\n", 0o644);
    write_file(
        dir,
        "1_Pooling/config.json",
        br#"{"pooling":"mean"}"#,
        0o644,
    );
    write_file(dir, "data/train.jsonl", b"{\"x\":1}\n{\"x\":2}\n", 0o644);
    write_file(dir, "scripts/run.sh", b"#!/bin/sh\necho run\n", 0o755);
    write_file(dir, "private.txt", b"not for everyone\n", 0o600);
    write_symlink(dir, "docs/README-link.md", "../README.md");
    // Longer than the 100 bytes a plain tar header holds.
    let long = format!("deep/{}/{}/notes.txt", "a".repeat(60), "b".repeat(60));
    write_file(dir, &long, b"long path\n", 0o644);
    dir.to_path_buf()
}

/// A synthetic model (two shards, the generator's smallest size, about
/// 34 MB), made once by `ferry_testkit` and cached across test binaries
/// (the ferry CLI's tests use the same one): read-only.
pub fn generated_model() -> PathBuf {
    let spec = ModelSpec::new(10 * MIB).shards(2).seed(1);
    ferry_testkit::cached_model(env!("CARGO_TARGET_TMPDIR"), &spec)
}

/// Copies the generated model into `dest` and adds what the round trip
/// needs: nested folders, an executable script, a 0600 file, a symlink, an
/// empty file, a long path and non-ASCII names.
pub fn model_fixture(dest: &Path) -> PathBuf {
    copy_tree(&generated_model(), dest);
    write_file(
        dest,
        "1_Pooling/config.json",
        br#"{"word_embedding_dimension":256,"pooling_mode_mean_tokens":true}"#,
        0o644,
    );
    write_file(
        dest,
        "data/train.jsonl",
        b"{\"text\":\"hello\"}\n{\"text\":\"world\"}\n",
        0o644,
    );
    write_file(
        dest,
        "scripts/run.sh",
        b"#!/bin/sh\nexec python3 -c 'print(1)'\n",
        0o755,
    );
    write_file(dest, "private.txt", b"token=not-a-real-secret\n", 0o600);
    write_file(dest, "empty.txt", b"", 0o644);
    write_file(
        dest,
        "docs/notes \u{fc}ber.md",
        "caf\u{e9}\n".as_bytes(),
        0o644,
    );
    let long = format!("deep/{}/{}/file.txt", "a".repeat(60), "b".repeat(60));
    write_file(dest, &long, b"long path\n", 0o644);
    write_symlink(dest, "docs/README-link.md", "../README.md");
    dest.to_path_buf()
}

pub use ferry_testkit::{Node, copy_tree, files_only, tree, tree_following_links};

/// Sets the modification time of every regular file under `root`.
pub fn set_all_mtimes(root: &Path, time: SystemTime) {
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.expect("walking tree");
        if entry.file_type().is_file() {
            set_mtime(entry.path(), time);
        }
    }
}

/// Sets one file's modification time.
pub fn set_mtime(path: &Path, time: SystemTime) {
    File::open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("setting mtime of {}: {e}", path.display()));
}

/// The manifest `input` resolves to: digest, the exact bytes stored, parsed JSON.
pub fn manifest_json(store: &Store, input: &str) -> (Digest, Vec<u8>, Value) {
    let resolved = store
        .resolve(input)
        .unwrap_or_else(|e| panic!("resolving {input}: {e}"));
    let digest = resolved.descriptor.digest().clone();
    let bytes = store.read_document(&digest).expect("reading manifest");
    let json = serde_json::from_slice(&bytes).expect("manifest is JSON");
    (digest, bytes, json)
}

/// The config document of the manifest `input` resolves to.
pub fn config_json(store: &Store, input: &str) -> Value {
    let resolved = store.resolve(input).expect("resolving");
    let manifest = store
        .read_manifest(resolved.descriptor.digest())
        .expect("reading manifest");
    let bytes = store
        .read_document(manifest.config().digest())
        .expect("reading config");
    serde_json::from_slice(&bytes).expect("config is JSON")
}

/// The layers of the manifest `input` resolves to.
pub fn layers(store: &Store, input: &str) -> Vec<Descriptor> {
    let resolved = store.resolve(input).expect("resolving");
    store
        .read_manifest(resolved.descriptor.digest())
        .expect("reading manifest")
        .layers()
        .clone()
}

/// A descriptor's annotations (empty when it has none).
pub fn annotations(descriptor: &Descriptor) -> HashMap<String, String> {
    descriptor.annotations().clone().unwrap_or_default()
}

/// The layer whose `org.cncf.model.filepath` is `path`.
pub fn layer_at<'a>(layers: &'a [Descriptor], path: &str) -> &'a Descriptor {
    layers
        .iter()
        .find(|l| annotations(l).get(ann::FILEPATH).map(String::as_str) == Some(path))
        .unwrap_or_else(|| panic!("no layer with filepath {path:?}"))
}

/// The parsed `org.cncf.model.file.metadata+json` of a layer.
pub fn file_metadata(layer: &Descriptor) -> FileMetadata {
    let json = annotations(layer)
        .get(ann::FILE_METADATA)
        .cloned()
        .unwrap_or_else(|| panic!("layer {} has no file metadata", layer.digest()));
    serde_json::from_str(&json).expect("file metadata parses")
}

/// The raw `index.json` as JSON.
pub fn index_json(store: &Store) -> Value {
    let bytes = fs::read(store.index_path()).expect("reading index.json");
    serde_json::from_slice(&bytes).expect("index.json is JSON")
}

/// The `ref.name` of every index entry, in index order.
pub fn index_names(store: &Store) -> Vec<String> {
    index_json(store)["manifests"]
        .as_array()
        .expect("manifests array")
        .iter()
        .map(|m| {
            m["annotations"][ann::REF_NAME]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Names (`sha256:...`) of the blob files present.
pub fn blob_names(store: &Store) -> Vec<String> {
    let dir = store.blobs_dir("sha256");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("reading blobs")
        .map(|e| format!("sha256:{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    names.sort();
    names
}

/// Entries of `dir` whose name starts with `prefix`.
pub fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A hand-made layer: its bytes, media type and annotations.
pub type LayerSpec<'a> = (Vec<u8>, &'a str, Vec<(&'a str, &'a str)>);

/// Stores a hand-made artifact: each layer is (bytes, media type,
/// annotations). The config is a minimal valid ModelPack config. Returns
/// the manifest digest.
pub fn put_artifact(store: &Store, name: &str, layers: &[LayerSpec]) -> Digest {
    put_artifact_declaring(store, name, layers, &[])
}

/// [`put_artifact`] whose manifest declares `declared[i]` as the size of
/// layer `i` where it is `Some` (a manifest that lies about a size).
pub fn put_artifact_declaring(
    store: &Store,
    name: &str,
    layers: &[LayerSpec],
    declared: &[Option<u64>],
) -> Digest {
    let mut layer_json = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, (bytes, media_type, notes)) in layers.iter().enumerate() {
        let size = declared
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(bytes.len() as u64);
        let mut writer = store.blob_writer().expect("blob writer");
        writer.write_all_bytes(bytes).expect("writing layer");
        let digest = writer.commit(None).expect("committing layer");
        diff_ids.push(digest.to_string());
        let notes: serde_json::Map<String, Value> = notes
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let mut layer = serde_json::json!({
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": size,
        });
        if !notes.is_empty() {
            layer["annotations"] = Value::Object(notes);
        }
        layer_json.push(layer);
    }
    let config = serde_json::json!({
        "descriptor": {"name": "hand-made"},
        "config": {},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).expect("config JSON");
    let config_digest = store.put_document(&config_bytes).expect("storing config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": ferry_spec::media::ARTIFACT_TYPE_MODEL,
        "config": {
            "mediaType": ferry_spec::media::MEDIA_TYPE_MODEL_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": layer_json,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
    let digest = store
        .put_document(&manifest_bytes)
        .expect("storing manifest");
    let descriptor = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        digest.clone(),
    );
    store
        .set_reference(&reference(name), &descriptor)
        .expect("naming the manifest");
    digest
}
