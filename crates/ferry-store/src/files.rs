//! The files an artifact shows a user (what `extract` writes and a mount
//! shows), by path and SHA-256, computed from its layers without writing
//! anything: a raw layer's file is its blob, whose digest is the file's; a
//! tar layer is read (decompressed within the limits) and each regular file
//! hashed. Model signatures are compared with this.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferry_spec::digest::HashingReader;
use ferry_spec::media::Encoding;
use ferry_spec::oci::{Descriptor, Digest, DigestAlgorithm, ImageManifest};

use crate::decompress::{Bounded, CountingReader, Limits, bomb_error, decoder};
use crate::error::{IoContext, Result, StoreError};
use crate::extract::{LayerPlacement, placement, safe_components};
use crate::sized::DeclaredSize;
use crate::store::Store;

/// One path of an artifact's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactEntry {
    /// A regular file with this SHA-256.
    File(Digest),
    /// A symbolic link to this target.
    Symlink(String),
}

/// Path ('/'-separated, relative to the root) to entry; a later layer's
/// entry replaces an earlier one's, as extraction does. Directories are
/// left out.
pub type ArtifactFiles = BTreeMap<String, ArtifactEntry>;

/// True when the files of `layer` are known without reading it: a single
/// file whose blob digest is a SHA-256.
pub fn known_without_reading(layer: &Descriptor) -> Result<bool> {
    Ok(matches!(placement(layer)?, LayerPlacement::File(_))
        && *layer.digest().algorithm() == DigestAlgorithm::Sha256)
}

/// Adds the file of a layer [`known_without_reading`] to `files`.
pub fn add_file_layer(layer: &Descriptor, files: &mut ArtifactFiles) -> Result<()> {
    let LayerPlacement::File(path) = placement(layer)? else {
        return Err(StoreError::Internal("a tar layer has no single file"));
    };
    place(
        files,
        safe_components(&path)?.join("/"),
        Some(ArtifactEntry::File(layer.digest().clone())),
    )
}

/// Records `entry` at `path` (`None`: a directory) as extraction and an
/// overlay would leave it: a file or link replaces whatever was there,
/// a directory under it included; a directory replaces a file or link and
/// keeps what is under it; a path under a file or link is refused, as
/// extraction refuses it.
fn place(files: &mut ArtifactFiles, path: String, entry: Option<ArtifactEntry>) -> Result<()> {
    for (end, _) in path.match_indices('/') {
        let parent = &path[..end];
        if files.contains_key(parent) {
            return Err(StoreError::unsafe_entry(
                format!("path {path:?}"),
                format!("{parent} is not a directory"),
            ));
        }
    }
    match entry {
        None => {
            files.remove(&path);
        }
        Some(entry) => {
            let below = format!("{path}/");
            let replaced: Vec<String> = files
                .range(below.clone()..)
                .take_while(|(name, _)| name.starts_with(&below))
                .map(|(name, _)| name.clone())
                .collect();
            for name in replaced {
                files.remove(&name);
            }
            files.insert(path, entry);
        }
    }
    Ok(())
}

/// The files of the store's artifact `manifest`.
pub fn artifact_files(store: &Store, manifest: &ImageManifest) -> Result<ArtifactFiles> {
    let limits = Limits::from_env()?;
    let mut files = ArtifactFiles::new();
    for layer in manifest.layers() {
        if known_without_reading(layer)? {
            add_file_layer(layer, &mut files)?;
        } else {
            let blob = store.open_blob(layer.digest())?;
            add_layer_from_reader(layer, blob, &limits, &mut files)?;
        }
    }
    Ok(files)
}

/// Reads one layer (its blob bytes, as stored) into `files`, checking its
/// size and digest as extraction does.
pub fn add_layer_from_reader(
    layer: &Descriptor,
    reader: impl Read,
    limits: &Limits,
    files: &mut ArtifactFiles,
) -> Result<()> {
    let placement = placement(layer)?;
    let mut hashing = HashingReader::new(DeclaredSize::new(reader, layer.size()));
    let digest = layer.digest().to_string();
    match placement {
        LayerPlacement::File(path) => {
            let (sha256, _) =
                ferry_spec::digest::hash_reader(&mut hashing, &DigestAlgorithm::Sha256)
                    .ctx("reading blob", &digest)?;
            place(
                files,
                safe_components(&path)?.join("/"),
                Some(ArtifactEntry::File(sha256)),
            )?;
        }
        LayerPlacement::Tar(encoding) => {
            add_tar_entries(&mut hashing, encoding, &digest, limits, files)?;
            // The tar's end marker is not the blob's end: hash the rest.
            io::copy(&mut hashing, &mut io::sink()).ctx("reading blob", &digest)?;
        }
    }
    let (actual, size) = hashing.finish();
    if &actual != layer.digest() || size != layer.size() {
        return Err(StoreError::DigestMismatch {
            digest,
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn add_tar_entries(
    reader: &mut dyn Read,
    encoding: Encoding,
    digest: &str,
    limits: &Limits,
    files: &mut ArtifactFiles,
) -> Result<()> {
    let counting = CountingReader::new(reader);
    let compressed = counting.count();
    let decoded = decoder(encoding, counting, limits).map_err(|source| StoreError::Decode {
        digest: digest.to_string(),
        encoding: encoding.suffix(),
        source,
    })?;
    let bounded = Bounded::new(decoded, *limits, Arc::clone(&compressed));
    let tripped = bounded.tripped();
    let result = tar_entries(bounded, files);
    if tripped.load(Ordering::SeqCst) {
        return Err(bomb_error(
            digest,
            compressed.load(Ordering::Relaxed),
            limits,
        ));
    }
    result
}

fn tar_entries(reader: impl Read, files: &mut ArtifactFiles) -> Result<()> {
    let invalid = |part: &str| {
        let part = part.to_string();
        move |source| StoreError::InvalidTar { part, source }
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(invalid("layer"))? {
        let mut entry = entry.map_err(invalid("layer"))?;
        let raw_path = entry
            .path()
            .map_err(invalid("entry path"))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir()
            && Path::new(&raw_path)
                .components()
                .all(|c| c == Component::CurDir)
        {
            continue; // the root itself
        }
        let path = safe_components(&raw_path)?.join("/");
        if kind.is_dir() {
            place(files, path, None)?;
            continue;
        }
        let link_target = || -> Result<String> {
            Ok(entry
                .link_name()
                .map_err(invalid("link target"))?
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default())
        };
        let found = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (sha256, _) =
                    ferry_spec::digest::hash_reader(&mut entry, &DigestAlgorithm::Sha256)
                        .map_err(invalid(&raw_path))?;
                ArtifactEntry::File(sha256)
            }
            tar::EntryType::Symlink => ArtifactEntry::Symlink(link_target()?),
            // A hard link shows its target's content.
            tar::EntryType::Link => {
                let target = safe_components(&link_target()?)?.join("/");
                match files.get(&target) {
                    Some(found @ ArtifactEntry::File(_)) => found.clone(),
                    _ => {
                        return Err(StoreError::unsafe_entry(
                            format!("hardlink {raw_path:?}"),
                            format!("target {target:?} is not a file before it"),
                        ));
                    }
                }
            }
            // Extended headers are metadata of the next entry.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => continue,
            other => {
                return Err(StoreError::unsafe_entry(
                    format!("{raw_path:?}"),
                    format!("entry type {other:?} is not a file, link or directory"),
                ));
            }
        };
        place(files, path, Some(found))?;
    }
    Ok(())
}
