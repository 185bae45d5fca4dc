//! `ferry convert`: a KitOps ModelKit becomes a ModelPack artifact, and any
//! artifact becomes a plain directory, with a line per file saying what
//! happened to it.
//!
//! A ModelKit is converted by unpacking it (verified, as `extract` does)
//! into a directory under the store's `tmp/` and packing that directory
//! with the ModelKit's own Kitfile as the recipe, files hardlinked into the
//! store rather than copied: the conversion writes each byte once, and the
//! result is exactly what `ferry pack -f Kitfile` gives for the same files.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ferry_spec::Reference;
use ferry_spec::kitfile::{self, Kitfile};
use ferry_spec::media::{self, Encoding};
use ferry_spec::oci::{Descriptor, ImageManifest};

use crate::error::{IoContext, Result, StoreError};
use crate::extract::{self, ExtractOptions, Extracted, LayerPlacement, PlacedFile};
use crate::pack::{self, PackOptions, Packed};
use crate::store::Store;

/// What an artifact is, as far as conversion cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceShape {
    /// A KitOps ModelKit (its config is a Kitfile).
    ModelKit,
    /// A ModelPack model (`vnd.cncf.model`, or modctl's older `vnd.cnai.model`).
    ModelPack,
    /// Any other artifact whose layers are files or tars.
    Files,
}

impl SourceShape {
    /// Reads the shape from the manifest's config and layer media types.
    pub fn of(manifest: &ImageManifest) -> SourceShape {
        let config = manifest.config().media_type().to_string();
        let layers = manifest.layers();
        if config == kitfile::MEDIA_TYPE_MODELKIT_CONFIG {
            SourceShape::ModelKit
        } else if config == media::MEDIA_TYPE_MODEL_CONFIG
            || config == media::MEDIA_TYPE_LEGACY_MODEL_CONFIG
            || (!layers.is_empty()
                && layers
                    .iter()
                    .all(|l| media::parse_layer_media_type(l.media_type().as_ref()).is_some()))
        {
            SourceShape::ModelPack
        } else {
            SourceShape::Files
        }
    }

    /// How it is named in output.
    pub fn name(self) -> &'static str {
        match self {
            SourceShape::ModelKit => "KitOps ModelKit",
            SourceShape::ModelPack => "ModelPack",
            SourceShape::Files => "OCI artifact",
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedFile {
    /// Its path relative to the root.
    pub path: String,
    /// The media type of the layer it came from.
    pub from: String,
    /// The media type of the layer it went into (a conversion to ModelPack).
    pub to: Option<String>,
    /// What was done: copied, unpacked, decompressed, a link followed.
    pub action: String,
}

/// A conversion into a directory.
#[derive(Debug, Clone)]
pub struct ToDirectory {
    /// What the source was.
    pub source: SourceShape,
    /// What was written.
    pub extracted: Extracted,
    /// One line per file, in path order.
    pub files: Vec<ConvertedFile>,
}

/// A conversion into a ModelPack artifact in the store.
#[derive(Debug, Clone)]
pub struct ToModelPack {
    /// What the source was.
    pub source: SourceShape,
    /// The new artifact.
    pub packed: Packed,
    /// One line per file, in path order.
    pub files: Vec<ConvertedFile>,
    /// Kitfile fields with no ModelPack field, kept only in the
    /// `ml.kitops.modelkit.kitfile` annotation.
    pub kept_in_annotation: Vec<String>,
}

/// Writes the files of the artifact `input` into `dir`, as `extract`
/// does, and says for each where it came from and what was done.
pub fn to_directory(
    store: &Store,
    input: &str,
    dir: &Path,
    options: &ExtractOptions,
) -> Result<ToDirectory> {
    let (digest, manifest) = read_manifest(store, input)?;
    // By digest: the files are those of the manifest read, even if the
    // tag moves meanwhile.
    let extracted = extract::extract(store, &digest, dir, options)?;
    let files = report(&manifest, &extracted.files, dir, None)?;
    Ok(ToDirectory {
        source: SourceShape::of(&manifest),
        extracted,
        files,
    })
}

/// Converts the ModelKit `input` into a ModelPack artifact named
/// `reference`. `options` are pack's (compression, layer format,
/// metadata flags, which win over the Kitfile's).
pub fn to_modelpack(
    store: &Store,
    input: &str,
    reference: &Reference,
    options: &PackOptions,
) -> Result<ToModelPack> {
    let (digest, manifest) = read_manifest(store, input)?;
    let source = SourceShape::of(&manifest);
    if source != SourceShape::ModelKit {
        return Err(StoreError::NotConvertible {
            input: input.to_string(),
            shape: source.name(),
        });
    }
    let config = store.read_document(manifest.config().digest())?;
    let kitfile = Kitfile::from_json(&config).map_err(|source| StoreError::Kitfile {
        path: format!("{input} (config)").into(),
        source,
    })?;

    // Held while the unpacked files sit in tmp/, so `prune` (which takes
    // the collect lock) does not take them for debris, and by the pack
    // below: one ingest, so a failed pack can clean up after itself.
    let mut ingest = pack::Ingest::start(store)?;
    let tmp = store.tmp_dir();
    fs::create_dir_all(&tmp).ctx("creating", &tmp)?;
    let work = tempfile::Builder::new()
        .prefix("convert-")
        .tempdir_in(&tmp)
        .ctx("creating a directory in", &tmp)?;
    let context = work.path().join("context");
    let extracted = extract::extract(store, &digest, &context, &ExtractOptions::default())?;
    check_layers_hold_their_paths(&manifest, &kitfile, &extracted.files)?;
    let recipe = work.path().join("Kitfile");
    fs::write(&recipe, kitfile.annotation_json()).ctx("writing", &recipe)?;

    let mut options = options.clone();
    options.modelfile = Some(recipe);
    // The files are this process's own copies: hardlinking them into the
    // store moves them rather than writing them twice.
    options.link = true;
    // The ModelKit's files were chosen when it was packed: a .kitignore
    // among them is content, not a rule.
    options.kitignore = false;
    let packed = pack::pack_ingesting(store, &context, reference, &options, &mut ingest)?;
    let packed_manifest = store.read_manifest(&packed.manifest_digest)?;
    let mut files = report(
        &manifest,
        &extracted.files,
        &context,
        Some(&packed_manifest),
    )?;
    files.extend(empty_directories(&context)?);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ToModelPack {
        source,
        packed,
        files,
        kept_in_annotation: kitfile.unmapped_fields(),
    })
}

/// Each layer of a ModelKit holds the one Kitfile path it was packed from
/// (`kit pack` writes a layer per path) and no path is placed twice: a
/// layer that strays would put its files under another entry's category,
/// or outside every entry where the recipe would leave them behind.
fn check_layers_hold_their_paths(
    manifest: &ImageManifest,
    kitfile: &Kitfile,
    placed: &[PlacedFile],
) -> Result<()> {
    let layers = manifest.layers();
    let paths = kitfile.manifest_layer_paths(manifest);
    let mut placed_by: BTreeMap<&str, usize> = BTreeMap::new();
    for file in placed {
        let digest = layers
            .get(file.layer)
            .ok_or(StoreError::Internal("a placed file names no layer"))?
            .digest()
            .to_string();
        let Some(Some(listed)) = paths.get(file.layer) else {
            return Err(StoreError::ModelKitLayerUnlisted { layer: digest });
        };
        if !pack::recipe::below(&file.path, &listed.path) {
            return Err(StoreError::ModelKitLayerStrays {
                layer: digest,
                field: listed.field.clone(),
                listed: listed.path.clone(),
                path: file.path.clone(),
            });
        }
        if let Some(first) = placed_by.insert(&file.path, file.layer)
            && first != file.layer
        {
            return Err(StoreError::ModelKitPathTwice {
                path: file.path.clone(),
                first: layers[first].digest().to_string(),
                second: digest,
            });
        }
    }
    Ok(())
}

/// Empty directories of an unpacked ModelKit: ModelPack layers hold files,
/// so these are not carried over, and the report says so.
fn empty_directories(root: &Path) -> Result<Vec<ConvertedFile>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            StoreError::Io {
                action: "reading",
                path,
                source: e.into(),
            }
        })?;
        if entry.file_type().is_dir()
            && fs::read_dir(entry.path())
                .ctx("reading", entry.path())?
                .next()
                .is_none()
        {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            out.push(ConvertedFile {
                path: format!("{}/", rel.to_string_lossy()),
                from: String::new(),
                to: None,
                action: "an empty directory: not carried over (ModelPack layers hold files)"
                    .to_string(),
            });
        }
    }
    Ok(out)
}

/// The digest `input` names now, and its manifest.
fn read_manifest(store: &Store, input: &str) -> Result<(String, ImageManifest)> {
    let resolved = store.resolve(input)?;
    let digest = resolved.descriptor.digest();
    Ok((digest.to_string(), store.read_manifest(digest)?))
}

/// One line per placed path (the last layer to place a path wins, as on
/// disk), with the destination layer when there is one.
fn report(
    source: &ImageManifest,
    placed: &[PlacedFile],
    root: &Path,
    packed: Option<&ImageManifest>,
) -> Result<Vec<ConvertedFile>> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for file in placed {
        last.insert(&file.path, file.layer);
    }
    let destination: BTreeMap<String, &Descriptor> = packed
        .map(|m| {
            m.layers()
                .iter()
                .filter_map(|l| Some((crate::select::layer_path(l)?, l)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(last.len());
    for (path, layer) in last {
        let Some(from) = source.layers().get(layer) else {
            return Err(StoreError::Internal("a placed file names no layer"));
        };
        let is_link = fs::symlink_metadata(root.join(path)).is_ok_and(|m| m.is_symlink());
        let mut action = match extract::placement(from)? {
            LayerPlacement::File(_) => "copied from a raw layer".to_string(),
            LayerPlacement::Tar(Encoding::Tar | Encoding::Raw) => {
                "unpacked from a tar layer".to_string()
            }
            LayerPlacement::Tar(Encoding::TarGzip) => "gunzipped and unpacked".to_string(),
            LayerPlacement::Tar(Encoding::TarZstd) => "zstd-decompressed and unpacked".to_string(),
        };
        let to = destination.get(path).map(|l| l.media_type().to_string());
        if is_link {
            action.push_str(if packed.is_some() {
                "; a symlink, packed as its target's bytes"
            } else {
                "; a symlink, kept as a link"
            });
        }
        if packed.is_some() && to.is_none() {
            action.push_str("; not carried over (no layer of the new artifact holds it)");
        }
        out.push(ConvertedFile {
            path: path.to_string(),
            from: from.media_type().to_string(),
            to,
            action,
        });
    }
    Ok(out)
}
