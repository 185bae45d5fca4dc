//! `ferry extract`: an artifact becomes files again, safely.
//!
//! Everything is unpacked into a staging directory next to the target and
//! moved into place only when every layer has been written and its digest
//! verified, so a hostile or corrupt layer leaves nothing behind. Tar entries
//! are checked before anything is created: no absolute paths, no `..`, no
//! symlink or hardlink leaving the root, no device nodes or fifos, no path
//! that passes through a symlink.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use ferry_spec::annotations::{self as ann, FileMetadata};
use ferry_spec::digest::HashingReader;
use ferry_spec::media::{self, Encoding};
use ferry_spec::oci::{Descriptor, Digest};

use crate::error::{IoContext, Result, StoreError};
use crate::sized::{DeclaredSize, SizeViolation};
use crate::store::Store;

/// Options of `ferry extract`.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Write into a non-empty directory, replacing files.
    pub force: bool,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// Files, links and directories created.
    pub entries: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// The files and links placed, in order, with the layer each came from
    /// (what `convert` reports).
    pub files: Vec<PlacedFile>,
}

/// A file or link an extraction placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedFile {
    /// Its path relative to the root.
    pub path: String,
    /// The index of its layer in the manifest (0 when one layer is placed).
    pub layer: usize,
}

impl Extracted {
    fn one_file(path: &str, bytes: u64) -> Extracted {
        Extracted {
            entries: 1,
            bytes,
            files: vec![PlacedFile {
                path: path.to_string(),
                layer: 0,
            }],
        }
    }
}

/// How a layer becomes files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerPlacement {
    /// The blob is one file at this relative path.
    File(String),
    /// The blob is a tar archive to unpack at the root.
    Tar(Encoding),
}

/// Decides how a layer is placed: ModelPack media types first, then OCI
/// tar layers, then any blob with a title (ORAS-style files).
pub fn placement(layer: &Descriptor) -> Result<LayerPlacement> {
    let media_type = layer.media_type().to_string();
    let annotations = layer.annotations().clone().unwrap_or_default();
    let path_annotation = annotations
        .get(ann::FILEPATH)
        .or_else(|| annotations.get(ann::FILEPATH_LEGACY))
        .or_else(|| annotations.get(ann::TITLE))
        .cloned();
    let encoding = media::parse_layer_media_type(&media_type)
        .map(|(_, encoding)| encoding)
        .or_else(|| oci_tar_encoding(&media_type))
        .or_else(|| ferry_spec::kitfile::parse_layer_media_type(&media_type).map(|(_, e)| e))
        // ORAS marks the directories it packs as archives to unpack,
        // whatever media type the user gave them.
        .or_else(|| {
            (annotations.get(ann::ORAS_UNPACK).map(String::as_str) == Some("true"))
                .then_some(Encoding::Tar)
        });
    match encoding {
        Some(Encoding::Raw) | None => match path_annotation {
            Some(path) if encoding.is_some() || !path.is_empty() => Ok(LayerPlacement::File(path)),
            _ => Err(StoreError::NoFilePath {
                digest: layer.digest().to_string(),
                media_type,
            }),
        },
        Some(tar) => Ok(LayerPlacement::Tar(tar)),
    }
}

fn oci_tar_encoding(media_type: &str) -> Option<Encoding> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Encoding::Tar),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Encoding::TarGzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Encoding::TarZstd),
        _ => None,
    }
}

/// Extracts the artifact named `input` into `dir`.
pub fn extract(
    store: &Store,
    input: &str,
    dir: &Path,
    options: &ExtractOptions,
) -> Result<Extracted> {
    let resolved = store.resolve(input)?;
    let manifest = store.read_manifest(resolved.descriptor.digest())?;
    let diff_ids = crate::decompress::diff_ids(store, &manifest)?;
    let limits = crate::decompress::Limits::from_env()?;
    let staging = Staging::begin(dir, options)?;
    let mut total = Extracted::default();
    for (i, layer) in manifest.layers().iter().enumerate() {
        let diff_id = diff_ids.as_ref().and_then(|ids| ids.get(i));
        let placed = place_layer_checked(store, layer, staging.root(), diff_id, &limits)?;
        total.entries += placed.entries;
        total.bytes += placed.bytes;
        total.files.extend(
            placed
                .files
                .into_iter()
                .map(|f| PlacedFile { layer: i, ..f }),
        );
    }
    staging.commit()?;
    Ok(total)
}

/// A target directory being filled: layers are placed in a staging
/// directory next to it, and only [`Staging::commit`] moves them in.
/// Dropped without a commit (a layer failed), the staging directory is
/// removed and the target is as it was.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    staging: tempfile::TempDir,
}

impl Staging {
    /// Checks the target (empty or absent, unless `force`) and creates the
    /// staging directory beside it.
    pub fn begin(dir: &Path, options: &ExtractOptions) -> Result<Staging> {
        // A file where the directory should be is refused, even with --force.
        if dir.exists() && !is_empty_dir(dir)? && !options.force {
            return Err(StoreError::NotEmpty(dir.to_path_buf()));
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).ctx("creating", &parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".ferry-extract-")
            .tempdir_in(&parent)
            .ctx("creating staging directory in", &parent)?;
        Ok(Staging {
            target: dir.to_path_buf(),
            staging,
        })
    }

    /// Where layers are placed until the commit.
    pub fn root(&self) -> &Path {
        self.staging.path()
    }

    /// Moves everything placed into the target directory.
    pub fn commit(self) -> Result<()> {
        move_into_place(self.staging.path(), &self.target)
    }
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Err(StoreError::NotADirectory(dir.to_path_buf()));
    }
    Ok(fs::read_dir(dir).ctx("reading", dir)?.next().is_none())
}

/// Writes one layer into `root`, verifying the blob's digest on the way.
pub fn place_layer(store: &Store, layer: &Descriptor, root: &Path) -> Result<Extracted> {
    let limits = crate::decompress::Limits::from_env()?;
    place_layer_checked(store, layer, root, None, &limits)
}

/// [`place_layer`] that also checks the uncompressed digest against
/// `diff_id` (from a ModelPack config) and applies `limits`.
pub fn place_layer_checked(
    store: &Store,
    layer: &Descriptor,
    root: &Path,
    diff_id: Option<&Digest>,
    limits: &crate::decompress::Limits,
) -> Result<Extracted> {
    let blob = store.open_blob(layer.digest())?;
    let placement = placement(layer)?;
    if let LayerPlacement::File(_) = &placement
        && let Some(expected) = diff_id
        && expected != layer.digest()
    {
        return Err(StoreError::DiffIdMismatch {
            layer: layer.digest().to_string(),
            actual: layer.digest().to_string(),
            expected: expected.to_string(),
        });
    }
    if let LayerPlacement::File(path) = &placement
        && let Some(bytes) = reflink_file(store, layer, root, path)?
    {
        return Ok(Extracted::one_file(path, bytes));
    }
    place_layer_verified(
        layer,
        io::BufReader::with_capacity(1 << 20, blob),
        root,
        diff_id,
        limits,
    )
}

/// Writes one layer whose bytes come from `reader` (a store blob, or a
/// registry response bridged from async) into `root`, hashing on the way.
/// At most the declared size plus one byte is read, so an endless source
/// is cut off the moment it passes the size, and a source that ends short
/// fails there; a digest that does not match the descriptor fails the
/// layer (the caller's [`Staging`] then discards what was placed).
/// Gzip and zstd tar layers are decompressed while they are read, within
/// the limits of `FERRY_MAX_RATIO` and `FERRY_MAX_UNPACKED`.
pub fn place_layer_from_reader(
    layer: &Descriptor,
    reader: impl Read,
    root: &Path,
) -> Result<Extracted> {
    let limits = crate::decompress::Limits::from_env()?;
    place_layer_verified(layer, reader, root, None, &limits)
}

/// [`place_layer_from_reader`] with the expected uncompressed digest (the
/// config's `diffIds` entry, for ModelPack artifacts) and explicit limits.
pub fn place_layer_verified(
    layer: &Descriptor,
    reader: impl Read,
    root: &Path,
    diff_id: Option<&Digest>,
    limits: &crate::decompress::Limits,
) -> Result<Extracted> {
    let placement = placement(layer)?;
    let sized = DeclaredSize::new(reader, layer.size());
    let size_check = sized.check();
    let mut reader = HashingReader::new(sized);
    let (placed, uncompressed) = place_from(layer, &placement, &mut reader, root, limits)
        .and_then(|placed| {
            io::copy(&mut reader, &mut io::sink())
                .ctx("reading blob", layer.digest().to_string())?;
            Ok(placed)
        })
        // Bytes that break their declared size are the cause, whatever
        // the decoder or tar parser made of the cut.
        .map_err(|e| size_check.get().map_or(e, |v| size_error(layer, *v)))?;
    let (digest, size) = reader.finish();
    verify(layer, &digest, size)?;
    if let Some(expected) = diff_id {
        let actual = uncompressed.as_ref().unwrap_or(&digest);
        if actual != expected {
            return Err(StoreError::DiffIdMismatch {
                layer: layer.digest().to_string(),
                actual: actual.to_string(),
                expected: expected.to_string(),
            });
        }
    }
    Ok(placed)
}

/// Writes the layer's files from `reader` as `placement` says; returns
/// them and, for a compressed layer, the digest of its uncompressed bytes.
fn place_from(
    layer: &Descriptor,
    placement: &LayerPlacement,
    reader: &mut dyn Read,
    root: &Path,
    limits: &crate::decompress::Limits,
) -> Result<(Extracted, Option<Digest>)> {
    Ok(match placement {
        LayerPlacement::File(path) => {
            let bytes = write_file(root, path, file_mode(layer), reader)?;
            (Extracted::one_file(path, bytes), None)
        }
        LayerPlacement::Tar(Encoding::Tar | Encoding::Raw) => (unpack_tar(root, reader)?, None),
        LayerPlacement::Tar(encoding) => {
            let (placed, digest) =
                crate::decompress::unpack_compressed(layer, *encoding, reader, root, limits)?;
            (placed, Some(digest))
        }
    })
}

fn size_error(layer: &Descriptor, violation: SizeViolation) -> StoreError {
    let digest = layer.digest().to_string();
    match violation {
        SizeViolation::Longer => StoreError::LongerThanDeclared {
            digest,
            expected: layer.size(),
        },
        SizeViolation::Shorter { actual } => StoreError::SizeMismatch {
            digest,
            actual,
            expected: layer.size(),
        },
    }
}

/// The permission bits a raw layer's file gets: from its
/// `org.cncf.model.file.metadata+json` annotation (or modctl's legacy
/// `org.cnai` one), else 0644.
pub fn file_mode(layer: &Descriptor) -> u32 {
    layer
        .annotations()
        .as_ref()
        .and_then(ann::file_metadata_json)
        .and_then(|json| serde_json::from_str::<FileMetadata>(json).ok())
        .map(|m| m.mode & 0o777)
        .unwrap_or(0o644)
}

/// Clones a raw blob into place where the filesystem supports reflinks (no
/// data copied), then hashes the clone: a blob corrupted at rest must fail
/// here as it does on the copy path. `None` when the filesystem cannot
/// reflink; the caller then copies and verifies.
fn reflink_file(store: &Store, layer: &Descriptor, root: &Path, rel: &str) -> Result<Option<u64>> {
    let parts = safe_components(rel)?;
    let path = prepare_parent(root, &parts)?;
    clear(&path)?;
    let blob = store.blob_path(layer.digest());
    if reflink_copy::reflink(&blob, &path).is_err() {
        let _ = fs::remove_file(&path);
        return Ok(None);
    }
    let (digest, size) =
        ferry_spec::digest::hash_file(&path, layer.digest().algorithm()).ctx("reading", &path)?;
    verify(layer, &digest, size)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(file_mode(layer)))
        .ctx("setting mode of", &path)?;
    Ok(Some(size))
}

fn verify(layer: &Descriptor, digest: &Digest, size: u64) -> Result<()> {
    if digest != layer.digest() {
        return Err(StoreError::DigestMismatch {
            digest: layer.digest().to_string(),
            actual: digest.to_string(),
        });
    }
    if size > layer.size() {
        return Err(StoreError::LongerThanDeclared {
            digest: layer.digest().to_string(),
            expected: layer.size(),
        });
    }
    if size != layer.size() {
        return Err(StoreError::SizeMismatch {
            digest: layer.digest().to_string(),
            actual: size,
            expected: layer.size(),
        });
    }
    Ok(())
}

/// Splits a relative path into safe components or refuses it. `.` and
/// empty components are dropped (`./a`, `a/./b`, `a//b` are `a` and
/// `a/b`), so every check and every placement sees one spelling.
pub fn safe_components(path: &str) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| StoreError::NonUtf8Path(PathBuf::from(path)))?
                    .to_string(),
            ),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(StoreError::unsafe_entry(
                    format!("path {path:?}"),
                    "contains '..'",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(StoreError::unsafe_entry(
                    format!("path {path:?}"),
                    "it is absolute",
                ));
            }
        }
    }
    if parts.is_empty() {
        return Err(StoreError::unsafe_entry(
            format!("path {path:?}"),
            "it is empty",
        ));
    }
    Ok(parts)
}

/// Creates the parent directories of `parts` under `root`, refusing to pass
/// through anything that is not a real directory; returns the full path.
fn prepare_parent(root: &Path, parts: &[String]) -> Result<PathBuf> {
    let mut current = root.to_path_buf();
    for part in &parts[..parts.len() - 1] {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::unsafe_entry(
                    format!("path {:?}", parts.join("/")),
                    format!("{part} is not a directory"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&current) {
                Ok(()) => {}
                // Layers at disjoint paths are placed in parallel and may
                // share a parent: whoever creates it first, it must be a
                // directory now (never a link someone slipped in).
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs::symlink_metadata(&current).ctx("reading", &current)?;
                    if !meta.is_dir() {
                        return Err(StoreError::unsafe_entry(
                            format!("path {:?}", parts.join("/")),
                            format!("{part} is not a directory"),
                        ));
                    }
                }
                Err(e) => return Err(e).ctx("creating", &current),
            },
            Err(e) => return Err(e).ctx("reading", &current),
        }
    }
    current.push(&parts[parts.len() - 1]);
    Ok(current)
}

/// Removes whatever is at `path` (a later layer's file wins).
fn clear(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).ctx("replacing", path),
        Ok(_) => fs::remove_file(path).ctx("replacing", path),
        Err(_) => Ok(()),
    }
}

fn write_file(root: &Path, rel: &str, mode: u32, content: &mut dyn Read) -> Result<u64> {
    let parts = safe_components(rel)?;
    let path = prepare_parent(root, &parts)?;
    clear(&path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .ctx("creating", &path)?;
    let bytes = copy_large(content, &mut file).ctx("writing", &path)?;
    file.set_permissions(fs::Permissions::from_mode(mode & 0o777))
        .ctx("setting mode of", &path)?;
    Ok(bytes)
}

/// Copies with a 1 MiB buffer: `io::copy`'s 8 KiB one turns a multi-GiB
/// weight into hundreds of thousands of write calls.
fn copy_large(reader: &mut dyn Read, writer: &mut fs::File) -> io::Result<u64> {
    use std::io::Write;
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        writer.write_all(&buffer[..filled])?;
        total += filled as u64;
        if filled < buffer.len() {
            return Ok(total);
        }
    }
}

/// Unpacks a tar stream into `root` after checking every entry.
pub fn unpack_tar(root: &Path, reader: &mut dyn Read) -> Result<Extracted> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Extracted::default();
    let entries = archive.entries().map_err(|source| StoreError::InvalidTar {
        part: "layer".into(),
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| StoreError::InvalidTar {
            part: "layer".into(),
            source,
        })?;
        let raw_path = entry
            .path()
            .map_err(|source| StoreError::InvalidTar {
                part: "entry path".into(),
                source,
            })?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        if kind.is_dir()
            && Path::new(&raw_path)
                .components()
                .all(|c| c == Component::CurDir)
        {
            continue; // the root itself
        }
        let parts = safe_components(&raw_path)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                out.bytes += write_file(root, &raw_path, mode, &mut entry)?;
            }
            tar::EntryType::Directory => {
                let path = prepare_parent(root, &parts)?;
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        clear(&path)?;
                        fs::create_dir(&path).ctx("creating", &path)?;
                    }
                    Err(_) => fs::create_dir(&path).ctx("creating", &path)?,
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))
                    .ctx("setting mode of", &path)?;
            }
            tar::EntryType::Symlink => {
                let target = link_name(&entry, &raw_path)?;
                check_symlink_target(&parts, &target, &raw_path)?;
                let path = prepare_parent(root, &parts)?;
                clear(&path)?;
                std::os::unix::fs::symlink(&target, &path).ctx("creating symlink", &path)?;
            }
            tar::EntryType::Link => {
                let target = link_name(&entry, &raw_path)?;
                let target_parts = safe_components(&target).map_err(|_| {
                    StoreError::unsafe_entry(
                        format!("hardlink {raw_path:?}"),
                        format!("target {target:?} escapes the root"),
                    )
                })?;
                let target_path = root.join(target_parts.join("/"));
                let meta = fs::symlink_metadata(&target_path).map_err(|_| {
                    StoreError::unsafe_entry(
                        format!("hardlink {raw_path:?}"),
                        format!("target {target:?} does not exist"),
                    )
                })?;
                if !meta.is_file() {
                    return Err(StoreError::unsafe_entry(
                        format!("hardlink {raw_path:?}"),
                        format!("target {target:?} is not a regular file"),
                    ));
                }
                // The target's parents must be real directories as well.
                prepare_parent(root, &target_parts)?;
                let path = prepare_parent(root, &parts)?;
                clear(&path)?;
                fs::hard_link(&target_path, &path).ctx("creating hardlink", &path)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(StoreError::unsafe_entry(
                    format!("tar entry {raw_path:?}"),
                    format!(
                        "unsupported type {other:?} (device nodes, fifos and sockets are not allowed)"
                    ),
                ));
            }
        }
        if !kind.is_dir() {
            out.files.push(PlacedFile {
                path: parts.join("/"),
                layer: 0,
            });
        }
        out.entries += 1;
    }
    Ok(out)
}

fn link_name<R: Read>(entry: &tar::Entry<R>, raw_path: &str) -> Result<String> {
    entry
        .link_name()
        .map_err(|source| StoreError::InvalidTar {
            part: format!("link in {raw_path:?}"),
            source,
        })?
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| StoreError::unsafe_entry(format!("link {raw_path:?}"), "it has no target"))
}

/// A symlink may only point inside the root, judged lexically from its directory.
fn check_symlink_target(parts: &[String], target: &str, raw_path: &str) -> Result<()> {
    if target.starts_with('/') {
        return Err(StoreError::unsafe_entry(
            format!("symlink {raw_path:?}"),
            format!("absolute target {target:?}"),
        ));
    }
    let mut depth: Vec<&str> = parts[..parts.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    let mut descended = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                // `..` after a name could climb out through a symlinked
                // directory (`a -> .` makes `a/..` the root's parent).
                if descended || depth.pop().is_none() {
                    return Err(StoreError::unsafe_entry(
                        format!("symlink {raw_path:?}"),
                        format!("target {target:?} escapes the root"),
                    ));
                }
            }
            other => {
                descended = true;
                depth.push(other);
            }
        }
    }
    Ok(())
}

/// Moves the staged tree into `dir`: a rename when `dir` does not exist,
/// else a merge that replaces existing entries.
fn move_into_place(staging: &Path, dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::rename(staging, dir).ctx("moving extracted files to", dir)?;
        // Keep the TempDir drop from failing loudly: recreate an empty dir for it.
        let _ = fs::create_dir(staging);
        return Ok(());
    }
    merge(staging, dir)
}

fn merge(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).ctx("reading", from)? {
        let entry = entry.ctx("reading", from)?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let source_is_dir = entry.file_type().ctx("reading", &source)?.is_dir();
        let target_meta = fs::symlink_metadata(&target).ok();
        match target_meta {
            Some(meta) if meta.is_dir() && source_is_dir => merge(&source, &target)?,
            Some(_) => {
                clear(&target)?;
                fs::rename(&source, &target).ctx("moving extracted file to", &target)?;
            }
            None => fs::rename(&source, &target).ctx("moving extracted file to", &target)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_components("../x").is_err());
        assert!(safe_components("/etc/passwd").is_err());
        assert!(safe_components("a/../../x").is_err());
        assert!(safe_components("").is_err());
        assert_eq!(safe_components("./a/b").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn layers_placed_in_parallel_may_share_parents() {
        // Many placements racing to create the same parents: each must
        // find a directory there, whoever made it.
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let root = dir.path().join(round.to_string());
            fs::create_dir(&root).unwrap();
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                for file in 0..8 {
                    let (root, barrier) = (&root, &barrier);
                    scope.spawn(move || {
                        let parts: Vec<String> = ["shards", "deep", "dir", &format!("f{file}")]
                            .map(String::from)
                            .to_vec();
                        barrier.wait();
                        prepare_parent(root, &parts).unwrap();
                    });
                }
            });
            assert!(root.join("shards/deep/dir").is_dir());
        }
    }

    #[test]
    fn one_path_has_one_spelling() {
        for spelling in ["a/b", "./a/b", "a/./b", "a//b", ".//a/b/", "././a/b"] {
            assert_eq!(
                safe_components(spelling).unwrap(),
                vec!["a", "b"],
                "{spelling}"
            );
        }
        assert!(safe_components("./").is_err(), "the root is no file");
        assert!(safe_components("/./a").is_err());
    }

    #[test]
    fn symlink_targets_are_judged_from_their_directory() {
        let parts = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        assert!(check_symlink_target(&parts("a/b/link"), "../c", "l").is_ok());
        assert!(check_symlink_target(&parts("a/link"), "../c", "l").is_ok());
        assert!(check_symlink_target(&parts("link"), "../c", "l").is_err());
        assert!(check_symlink_target(&parts("a/link"), "../../c", "l").is_err());
        assert!(check_symlink_target(&parts("link"), "/etc", "l").is_err());
        assert!(check_symlink_target(&parts("a/link"), "b/../../c", "l").is_err());
    }
}
