//! The unpacked-layer cache: one read-only directory per layer, shared by
//! every mount of every artifact that contains the layer.
//!
//! ```text
//! <store root>/layers/
//!   sha256/<hex>/      a tar layer unpacked (keyed by its blob digest)
//!   file/<hex>/        a raw layer: its blob hardlinked at its file path
//!                      (keyed by digest, path and mode, since the same blob
//!                      may sit at different paths in different artifacts)
//!   merged/<hex>/      a hardlink tree of a whole stack of layers, for
//!                      stacks too deep for one overlay
//!   empty/             the bottom lower of single-layer read-only overlays
//!   diffids/<hex>      the verified uncompressed digest of sha256/<hex>
//!   tmp/               entries being built (removed by prune)
//!   pending/           markers of entries not yet known to be on disk
//! ```
//!
//! An entry is built once, in `tmp/`, and renamed into place only when
//! complete: a tar layer's digest, size and (when its config declares
//! one) diffId are verified while it is unpacked, a raw layer's blob is
//! hashed once placed, every file and directory made read-only (a-w).
//! Nothing is trusted by size alone. A synced
//! marker written first makes a crash cost a rebuild, never a torn entry
//! ([`crate::pending`]). A raw layer is never copied: its blob is hardlinked,
//! and the blob's inode made 0444 (content-addressed blobs never change,
//! and a view must be readable by the container's user). Raw files whose
//! declared mode is executable get a private copy instead, so the shared
//! blob inode never carries an execute bit. Read-only files protect the
//! store in the hardlink fallback against writes by anyone without
//! CAP_DAC_OVERRIDE; overlay views need no such help (overlayfs copies a
//! file up before writing, so a lower file is never written).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_spec::media::Encoding;
use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::Store;
use ferry_store::extract::{self, LayerPlacement};
use rayon::prelude::*;

use crate::error::{IoContext, MountError, Result};
use crate::tree::{self, LinkMode};

/// Where a layer lives in the cache, relative to `<root>/layers`
/// (`sha256/<hex>`, `file/<hex>` or `merged/<hex>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerKey(String);

impl LayerKey {
    /// The key as recorded in mount records.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a recorded key, refusing anything that is not
    /// `<kind>/<64 hex digits>` (records are files a user could edit).
    pub fn parse(text: &str) -> Option<LayerKey> {
        let (kind, hex) = text.split_once('/')?;
        let valid = matches!(kind, "sha256" | "file" | "merged")
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| LayerKey(text.to_string()))
    }

    /// The cache directory of this key.
    pub fn dir(&self, store: &Store) -> PathBuf {
        cache_root(store).join(&self.0)
    }

    /// The key of a merged tree of `keys` (bottom first).
    pub fn merged(keys: &[LayerKey]) -> LayerKey {
        let joined: Vec<&str> = keys.iter().map(LayerKey::as_str).collect();
        let digest = ferry_spec::digest::sha256_digest(joined.join("\n").as_bytes());
        LayerKey(format!("merged/{}", digest.digest()))
    }
}

impl std::fmt::Display for LayerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `<root>/layers`.
pub fn cache_root(store: &Store) -> PathBuf {
    store.root().join("layers")
}

/// How one layer becomes a cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A tar archive, unpacked.
    Tar,
    /// A raw blob placed at `parts` (safe path components) with `mode`.
    File {
        /// The file's path, split into checked components.
        parts: Vec<String>,
        /// Permission bits in the view (write bits removed).
        mode: u32,
    },
}

/// A layer of a manifest and where it goes in the cache.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// Its cache key.
    pub key: LayerKey,
    /// The layer descriptor.
    pub descriptor: Descriptor,
    /// How it is placed.
    pub kind: SourceKind,
    /// The uncompressed digest the artifact's config declares for it (a
    /// ModelPack config's `diffIds`), checked when the entry is built or
    /// reused.
    pub diff_id: Option<Digest>,
}

impl LayerSource {
    /// Decides how `layer` is placed, refusing (before anything is built)
    /// layers ferry cannot unpack and file paths that are unsafe.
    pub fn of(layer: &Descriptor) -> Result<LayerSource> {
        let digest = layer.digest();
        if !ferry_spec::digest::is_sha256(digest) {
            return Err(MountError::Unsupported(format!(
                "layer {digest}: only sha256 layers can be mounted"
            )));
        }
        match extract::placement(layer)? {
            LayerPlacement::Tar(_) => Ok(LayerSource {
                key: LayerKey(format!("sha256/{}", digest.digest())),
                descriptor: layer.clone(),
                kind: SourceKind::Tar,
                diff_id: None,
            }),
            LayerPlacement::File(path) => {
                let parts = extract::safe_components(&path)?;
                let mode = extract::file_mode(layer) & 0o555;
                let mode = if mode & 0o111 == 0 {
                    0o444
                } else {
                    mode | 0o444
                };
                let identity = format!("{digest}\n{}\n{mode:o}", parts.join("/"));
                let key = ferry_spec::digest::sha256_digest(identity.as_bytes());
                Ok(LayerSource {
                    key: LayerKey(format!("file/{}", key.digest())),
                    descriptor: layer.clone(),
                    kind: SourceKind::File { parts, mode },
                    diff_id: None,
                })
            }
        }
    }

    /// The same source, with the uncompressed digest its config declares.
    pub fn expecting(self, diff_id: Option<Digest>) -> LayerSource {
        LayerSource { diff_id, ..self }
    }
}

/// What making sure a set of layers is cached did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries built now.
    pub built: usize,
    /// Entries that were already there.
    pub reused: usize,
}

/// Makes sure every source has its cache directory, building the missing
/// ones in parallel. The caller holds the store's ingest lock, so prune
/// cannot remove blobs or cache entries meanwhile.
pub fn ensure(store: &Store, sources: &[LayerSource]) -> Result<CacheStats> {
    let root = cache_root(store);
    for dir in ["sha256", "file", "merged", "tmp", DIFF_IDS] {
        let path = root.join(dir);
        fs::create_dir_all(&path).ctx("creating", &path)?;
    }
    crate::pending::recover(store, Some(crate::pending::SETTLE_AFTER))?;
    // A raw layer's diffId is known without reading it: refused before
    // anything is built.
    for source in sources
        .iter()
        .filter(|s| matches!(s.kind, SourceKind::File { .. }))
    {
        check_diff_id(store, source)?;
    }
    let mut missing: Vec<&LayerSource> = Vec::new();
    for source in sources {
        if !source.key.dir(store).is_dir() && !missing.iter().any(|m| m.key == source.key) {
            missing.push(source);
        }
    }
    let unique = {
        let mut keys: Vec<&LayerKey> = sources.iter().map(|s| &s.key).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    };
    if !missing.is_empty() {
        let keys: Vec<&LayerKey> = missing.iter().map(|s| &s.key).collect();
        crate::pending::mark(store, &keys)?;
    }
    let built: Vec<bool> = missing
        .par_iter()
        .map(|source| build(store, source))
        .collect::<Result<_>>()?;
    let built = built.into_iter().filter(|b| *b).count();
    for source in sources.iter().filter(|s| s.kind == SourceKind::Tar) {
        check_diff_id(store, source)?;
    }
    Ok(CacheStats {
        built,
        reused: unique - built,
    })
}

/// `layers/diffids/<hex>` holds the uncompressed digest a tar entry
/// `sha256/<hex>` was verified to have (a function of the blob, whatever
/// artifact names it), so a reused entry is checked without unpacking.
const DIFF_IDS: &str = "diffids";

fn diff_id_path(store: &Store, layer: &Descriptor) -> PathBuf {
    cache_root(store)
        .join(DIFF_IDS)
        .join(layer.digest().digest())
}

/// Checks a cached entry against the diffId its artifact declares. A raw
/// layer is not compressed: its diffId is its digest. A tar entry's
/// verified diffId is on record once any artifact declared it; otherwise
/// the blob is unpacked once more, into a scratch directory, to verify it.
fn check_diff_id(store: &Store, source: &LayerSource) -> Result<()> {
    let Some(expected) = &source.diff_id else {
        return Ok(());
    };
    let layer = &source.descriptor;
    let mismatch = |actual: &str| {
        MountError::Store(ferry_store::StoreError::DiffIdMismatch {
            layer: layer.digest().to_string(),
            actual: actual.to_string(),
            expected: expected.to_string(),
        })
    };
    if let SourceKind::File { .. } = source.kind {
        return match expected == layer.digest() {
            true => Ok(()),
            false => Err(mismatch(layer.digest().as_ref())),
        };
    }
    let recorded = fs::read_to_string(diff_id_path(store, layer)).ok();
    match recorded.as_deref().map(str::trim) {
        Some(actual) if actual == expected.to_string() => Ok(()),
        Some(actual) if Digest::try_from(actual).is_ok() => Err(mismatch(actual)),
        _ => {
            let scratch = BuildDir::create(store)?;
            unpack(store, layer, Some(expected), &scratch.path)?;
            record_diff_id(store, layer, expected)
        }
    }
}

fn record_diff_id(store: &Store, layer: &Descriptor, diff_id: &Digest) -> Result<()> {
    let path = diff_id_path(store, layer);
    ferry_spec::durable::write_file(
        &path,
        diff_id.to_string().as_bytes(),
        None,
        ferry_spec::durable::SHARED_FILE_MODE,
    )
    .ctx("writing", &path)
}

/// A directory in `layers/tmp` removed (read-only or not) unless kept.
struct BuildDir {
    path: PathBuf,
    keep: bool,
}

impl BuildDir {
    fn create(store: &Store) -> Result<BuildDir> {
        let tmp = cache_root(store).join("tmp");
        let dir = tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(&tmp)
            .ctx("creating build directory in", &tmp)?;
        Ok(BuildDir {
            path: dir.keep(),
            keep: false,
        })
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = tree::remove_tree(&self.path)
        {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Builds one entry; false when a concurrent builder finished it first.
fn build(store: &Store, source: &LayerSource) -> Result<bool> {
    let mut dir = BuildDir::create(store)?;
    match &source.kind {
        SourceKind::Tar => unpack(
            store,
            &source.descriptor,
            source.diff_id.as_ref(),
            &dir.path,
        )?,
        SourceKind::File { parts, mode } => {
            place_raw(store, &source.descriptor, parts, *mode, &dir.path)?
        }
    }
    // Everything but the top directory now: moving a directory to another
    // parent needs write permission on it (its `..` entry changes).
    tree::make_read_only(&dir.path, false)?;
    let target = source.key.dir(store);
    match fs::rename(&dir.path, &target) {
        Ok(()) => {
            dir.keep = true;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o555))
                .ctx("setting mode of", &target)?;
            if let (SourceKind::Tar, Some(diff_id)) = (&source.kind, &source.diff_id) {
                record_diff_id(store, &source.descriptor, diff_id)?;
            }
            tracing::debug!(key = %source.key, "layer cached");
            Ok(true)
        }
        // Another mount built the same entry meanwhile: theirs is as good.
        Err(_) if target.is_dir() => Ok(false),
        Err(e) => Err(e).ctx("moving cached layer to", target),
    }
}

/// Unpacks a tar layer with the store's safe extractor, which refuses
/// hostile entries, decompresses what it supports (gzip, zstd) within its
/// limits, and verifies the blob's digest and size, and the uncompressed
/// digest against `diff_id`, while reading.
fn unpack(store: &Store, layer: &Descriptor, diff_id: Option<&Digest>, dir: &Path) -> Result<()> {
    let layer = with_sniffed_compression(store, layer)?;
    let limits = ferry_store::decompress::Limits::from_env()?;
    let blob = store.open_blob(layer.digest())?;
    let reader = io::BufReader::with_capacity(1 << 20, blob);
    extract::place_layer_verified(&layer, reader, dir, diff_id, &limits)?;
    Ok(())
}

/// ORAS marks directory layers for unpacking whatever their media type
/// says, and compresses them: such a layer gets the OCI media type of the
/// compression its first bytes show. A layer whose media type declares an
/// uncompressed tar but whose bytes are compressed is mislabelled and
/// refused.
fn with_sniffed_compression(store: &Store, layer: &Descriptor) -> Result<Descriptor> {
    let path = store.blob_path(layer.digest());
    let mut magic = [0u8; 4];
    let read = File::open(&path)
        .and_then(|mut f| f.read(&mut magic))
        .ctx("reading blob", &path)?;
    let (kind, media_type) = match magic[..read] {
        [0x1f, 0x8b, ..] => ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
        [0x28, 0xb5, 0x2f, 0xfd] => ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        _ => return Ok(layer.clone()),
    };
    if extract::placement(layer)? != LayerPlacement::Tar(Encoding::Tar) {
        return Ok(layer.clone()); // the media type names the compression
    }
    // Without the ORAS mark, would the media type still say "tar"?
    let mut unmarked = layer.clone();
    let mut notes = layer.annotations().clone().unwrap_or_default();
    notes.remove(ferry_spec::annotations::ORAS_UNPACK);
    unmarked.set_annotations(Some(notes));
    if matches!(extract::placement(&unmarked), Ok(LayerPlacement::Tar(_))) {
        return Err(MountError::Unsupported(format!(
            "layer {} is {kind}-compressed but its media type says uncompressed tar",
            layer.digest()
        )));
    }
    let mut sniffed = layer.clone();
    sniffed.set_media_type(ferry_spec::oci::MediaType::from(media_type));
    Ok(sniffed)
}

/// Places a raw blob at its path: a hardlink of the blob (no data copied),
/// or a private copy when the file is executable.
fn place_raw(
    store: &Store,
    layer: &Descriptor,
    parts: &[String],
    mode: u32,
    dir: &Path,
) -> Result<()> {
    let blob = store.blob_path(layer.digest());
    let meta = fs::metadata(&blob).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => MountError::Store(ferry_store::StoreError::NotFound(format!(
            "blob {}",
            layer.digest()
        ))),
        _ => MountError::Io {
            action: "reading blob",
            path: blob.clone(),
            source: e,
        },
    })?;
    // A size that disagrees with the manifest fails early; the content is
    // hashed below, once placed.
    if meta.len() != layer.size() {
        return Err(MountError::Store(ferry_store::StoreError::SizeMismatch {
            digest: layer.digest().to_string(),
            actual: meta.len(),
            expected: layer.size(),
        }));
    }
    let mut path = dir.to_path_buf();
    for part in &parts[..parts.len() - 1] {
        path.push(part);
        fs::create_dir_all(&path).ctx("creating", &path)?;
    }
    path.push(&parts[parts.len() - 1]);
    if mode & 0o111 == 0 {
        if meta.mode() & 0o7777 != 0o444 {
            fs::set_permissions(&blob, fs::Permissions::from_mode(0o444))
                .ctx("making read-only", &blob)?;
        }
        match fs::hard_link(&blob, &path) {
            Ok(()) => return verify_placed(layer, &path),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                tracing::warn!(
                    "layer cache and blobs on different filesystems: copying {}",
                    blob.display()
                );
            }
            Err(e) => return Err(e).ctx("linking", &path),
        }
    }
    reflink_copy::reflink_or_copy(&blob, &path).ctx("copying to", &path)?;
    verify_placed(layer, &path)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).ctx("setting mode of", &path)?;
    Ok(())
}

/// Hashes a raw blob as placed in an entry being built (the blob's own
/// inode when hardlinked): a blob changed at rest is refused here, when it
/// first enters the cache. An entry in the cache was verified when it
/// entered and is read-only from then on, so reuse does not hash again.
fn verify_placed(layer: &Descriptor, path: &Path) -> Result<()> {
    let (digest, size) =
        ferry_spec::digest::hash_file(path, layer.digest().algorithm()).ctx("reading", path)?;
    if &digest != layer.digest() {
        return Err(MountError::Store(ferry_store::StoreError::DigestMismatch {
            digest: layer.digest().to_string(),
            actual: digest.to_string(),
        }));
    }
    if size != layer.size() {
        return Err(MountError::Store(ferry_store::StoreError::SizeMismatch {
            digest: layer.digest().to_string(),
            actual: size,
            expected: layer.size(),
        }));
    }
    Ok(())
}

/// The empty directory placed under single-layer read-only overlays
/// (overlayfs wants two lower directories when there is no upper one).
pub fn empty_dir(store: &Store) -> Result<PathBuf> {
    let dir = cache_root(store).join("empty");
    if !dir.is_dir() {
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx("creating", &dir),
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555))
            .ctx("setting mode of", &dir)?;
    }
    Ok(dir)
}

/// Makes sure the merged hardlink tree of `keys` (bottom first) exists;
/// returns its key and whether it was built now.
pub fn ensure_merged(store: &Store, keys: &[LayerKey]) -> Result<(LayerKey, bool)> {
    let key = LayerKey::merged(keys);
    let target = key.dir(store);
    if target.is_dir() {
        return Ok((key, false));
    }
    crate::pending::mark(store, &[&key])?;
    let mut dir = BuildDir::create(store)?;
    let sources: Vec<PathBuf> = keys.iter().map(|k| k.dir(store)).collect();
    tree::merge_into(&sources, &dir.path, LinkMode::Hardlink)?;
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755))
        .ctx("setting mode of", &dir.path)?;
    match fs::rename(&dir.path, &target) {
        Ok(()) => {
            dir.keep = true;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o555))
                .ctx("setting mode of", &target)?;
            Ok((key, true))
        }
        Err(_) if target.is_dir() => Ok((key, false)),
        Err(e) => Err(e).ctx("moving merged tree to", target),
    }
}

/// What [`collect`] removed (or would remove).
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Cache keys removed.
    pub entries: Vec<String>,
    /// Bytes of the files only those entries held (hardlinked blobs that
    /// stay in the store are not counted).
    pub bytes: u64,
}

/// Removes cache entries no manifest in the index and no active mount
/// needs, and debris of interrupted builds. Holds the collect lock, so no
/// mount is building or pinning meanwhile. Entries of live mounts are kept
/// even when their manifests were removed with `--force`: overlayfs must
/// not see its lower directories change.
pub fn collect(store: &Store, dry_run: bool) -> Result<Collected> {
    let _collect = store.lock_collect()?;
    // Prune is maintenance: settling every marker (one syncfs) is fine here.
    if !dry_run {
        crate::pending::recover(store, Some(std::time::Duration::ZERO))?;
    }
    let mut needed: std::collections::HashSet<LayerKey> =
        crate::pins::active_layer_keys(store)?.into_iter().collect();
    for manifest in indexed_manifests(store)? {
        for layer in manifest.layers() {
            // Layers ferry cannot mount have no cache entry to keep.
            if let Ok(source) = LayerSource::of(layer) {
                needed.insert(source.key);
            }
        }
    }
    let root = cache_root(store);
    let mut out = Collected::default();
    for kind in ["sha256", "file", "merged"] {
        let dir = root.join(kind);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx("reading", &dir),
        };
        for entry in entries {
            let entry = entry.ctx("reading", &dir)?;
            let name = format!("{kind}/{}", entry.file_name().to_string_lossy());
            if LayerKey::parse(&name).is_some_and(|k| needed.contains(&k)) {
                continue;
            }
            out.bytes += private_bytes(&entry.path());
            if !dry_run {
                tree::remove_tree(&entry.path())?;
            }
            out.entries.push(name);
        }
    }
    // A verified diffId goes with its tar entry.
    let diff_ids = root.join(DIFF_IDS);
    if !dry_run && diff_ids.is_dir() {
        for entry in fs::read_dir(&diff_ids).ctx("reading", &diff_ids)? {
            let entry = entry.ctx("reading", &diff_ids)?;
            if !root.join("sha256").join(entry.file_name()).is_dir() {
                tree::remove_tree(&entry.path())?;
            }
        }
    }
    let tmp = root.join("tmp");
    if !dry_run && tmp.is_dir() {
        for entry in fs::read_dir(&tmp).ctx("reading", &tmp)? {
            let entry = entry.ctx("reading", &tmp)?;
            tree::remove_tree(&entry.path())?;
        }
    }
    out.entries.sort();
    Ok(out)
}

/// Bytes of the files under `path` that nothing else links to.
fn private_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| private_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() && meta.nlink() == 1 {
        meta.len()
    } else {
        0
    }
}

/// Every image manifest the index reaches (through image indexes too).
fn indexed_manifests(store: &Store) -> Result<Vec<ferry_spec::oci::ImageManifest>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::<Digest>::new();
    let mut stack = store.entries()?;
    while let Some(descriptor) = stack.pop() {
        if !seen.insert(descriptor.digest().clone()) || !store.has_blob(descriptor.digest()) {
            continue;
        }
        let media_type = descriptor.media_type().to_string();
        let Ok(bytes) = store.read_document(descriptor.digest()) else {
            continue;
        };
        if media_type == ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX {
            if let Ok(index) = serde_json::from_slice::<ferry_spec::oci::ImageIndex>(&bytes) {
                stack.extend(index.manifests().iter().cloned());
            }
        } else if let Ok(manifest) =
            serde_json::from_slice::<ferry_spec::oci::ImageManifest>(&bytes)
        {
            out.push(manifest);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_spec::oci::MediaType;
    use std::collections::HashMap;

    fn raw_layer(bytes: &[u8], path: &str, mode: Option<u32>) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::Other("application/vnd.cncf.model.weight.v1.raw".into()),
            bytes.len() as u64,
            ferry_spec::digest::sha256_digest(bytes),
        );
        let mut notes = HashMap::new();
        notes.insert(
            ferry_spec::annotations::FILEPATH.to_string(),
            path.to_string(),
        );
        if let Some(mode) = mode {
            let meta = format!(
                r#"{{"name":"x","mode":{mode},"uid":0,"gid":0,"size":1,"mtime":"1970-01-01T00:00:00Z","typeflag":48}}"#
            );
            notes.insert(ferry_spec::annotations::FILE_METADATA.to_string(), meta);
        }
        d.set_annotations(Some(notes));
        d
    }

    #[test]
    fn raw_keys_depend_on_path_and_execute_bits() {
        let a = LayerSource::of(&raw_layer(b"x", "a/w.bin", None)).unwrap();
        let b = LayerSource::of(&raw_layer(b"x", "b/w.bin", None)).unwrap();
        let a_again = LayerSource::of(&raw_layer(b"x", "./a/w.bin", Some(0o600))).unwrap();
        let exec = LayerSource::of(&raw_layer(b"x", "a/w.bin", Some(0o755))).unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(
            a.key, a_again.key,
            "write bits do not matter: the view is read-only"
        );
        assert_ne!(a.key, exec.key);
        assert_eq!(
            exec.kind,
            SourceKind::File {
                parts: vec!["a".into(), "w.bin".into()],
                mode: 0o555
            }
        );
        assert!(a.key.as_str().starts_with("file/"));
    }

    #[test]
    fn unsafe_file_paths_are_refused_before_anything_is_built() {
        assert!(LayerSource::of(&raw_layer(b"x", "../escape", None)).is_err());
        assert!(LayerSource::of(&raw_layer(b"x", "/etc/passwd", None)).is_err());
    }

    #[test]
    fn recorded_keys_are_parsed_strictly() {
        let hex = "a".repeat(64);
        assert!(LayerKey::parse(&format!("sha256/{hex}")).is_some());
        assert!(LayerKey::parse(&format!("merged/{hex}")).is_some());
        assert!(LayerKey::parse(&format!("tmp/{hex}")).is_none());
        assert!(LayerKey::parse("sha256/../../etc").is_none());
    }
}
