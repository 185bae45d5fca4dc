//! `ferry pack`: a model directory becomes a ModelPack artifact in the store.
//!
//! Steps: walk and filter the directory; classify each file (Modelfile globs
//! first, then the heuristic classifier); plan one layer per file (or one tar
//! per category for small files with `bundle_small`); write the layers in
//! parallel, hashing while copying; write the config and manifest as
//! canonical JSON; name the manifest in `index.json`.

pub mod generic;
pub mod hf_cache;
pub mod kitignore;
pub mod layer;
pub mod recipe;
pub mod walk;
pub mod wasm;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use ferry_spec::Reference;
use ferry_spec::annotations::{self as ann, FileMetadata};
use ferry_spec::config::{
    ModelDescriptor, ModelFs, ModelFsType, ModelPackConfig, ModelProperties, rfc3339_from_unix,
};
use ferry_spec::kitfile::KitMetadata;
use ferry_spec::media::{self, Category, Encoding};
use ferry_spec::modelfile::ModelFacts;
use ferry_spec::oci::{Descriptor, Digest, ImageManifestBuilder, MediaType};

use crate::detect;
use crate::error::{IoContext, Result, StoreError};
use crate::lock::LockGuard;
use crate::store::Store;
pub use layer::PackedFile;
use layer::{EntryMetadata, RawMethod, WrittenBlob};
use walk::{Filter, Reach, SourceFile, SymlinkMode};

/// Reports packing progress; the binary draws it, libraries stay quiet.
pub trait Progress: Sync {
    /// Called once with the total bytes and file count.
    fn start(&self, _total_bytes: u64, _files: usize) {}
    /// Called as bytes are read.
    fn advance(&self, _bytes: u64) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Metadata given on the command line; each value overrides the Modelfile
/// and what was detected.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Name, architecture, family, format, parameter count, precision,
    /// quantization.
    pub facts: ModelFacts,
    /// Version.
    pub version: Option<String>,
    /// SPDX licenses.
    pub licenses: Vec<String>,
    /// Authors.
    pub authors: Vec<String>,
}

/// Everything `pack` can be told.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Extra include globs (override the default skips).
    pub include: Vec<String>,
    /// Exclude globs.
    pub exclude: Vec<String>,
    /// A Modelfile outside the directory (`-f`); else `DIR/Modelfile` if present.
    pub modelfile: Option<PathBuf>,
    /// Metadata overrides.
    pub metadata: Metadata,
    /// `Raw` (default) or `Tar` single-file layers.
    pub layer_format: Encoding,
    /// Files smaller than this are bundled into one tar layer per category.
    pub bundle_small: Option<u64>,
    /// Keep uid, gid and mtime from disk instead of fixed values.
    pub preserve_metadata: bool,
    /// Creation time (RFC 3339), only from `SOURCE_DATE_EPOCH` or `--created`.
    pub created: Option<String>,
    /// Hardlink raw files into the store instead of copying them.
    pub link: bool,
    /// Where symbolic links may lead (`--follow-symlinks`: anywhere).
    pub link_reach: Reach,
    /// The packed files are to be signed (`--sign-key`): a symbolic link
    /// kept as a link is refused before anything is written.
    pub refuse_symlinks: bool,
    /// Layer compression (`--compress`, `--level`, `--compress-weights`, `--min-saving`).
    pub compress: crate::compress::CompressOptions,
    /// With a Kitfile recipe, leave out what `DIR/.kitignore` names (a
    /// conversion turns this off: a ModelKit's files were chosen already).
    pub kitignore: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            modelfile: None,
            metadata: Metadata::default(),
            layer_format: Encoding::Raw,
            bundle_small: None,
            preserve_metadata: false,
            created: None,
            link: false,
            link_reach: Reach::Contained,
            refuse_symlinks: false,
            compress: crate::compress::CompressOptions::default(),
            kitignore: true,
        }
    }
}

/// What a pack produced.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The normalized reference it was stored under.
    pub reference: String,
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// The manifest descriptor (as recorded in the index).
    pub manifest: Descriptor,
    /// Number of layers.
    pub layers: usize,
    /// Bytes of model content read.
    pub content_bytes: u64,
    /// Every packed path with its SHA-256 as read while packing, in layer
    /// order (what `--sign-key` signs without reading the files again).
    pub files: Vec<PackedFile>,
}

/// One layer to build: a single file, or a tar of several.
pub struct PlannedLayer<'a> {
    category: Category,
    encoding: Encoding,
    /// `org.cncf.model.filepath` of the layer.
    filepath: String,
    files: Vec<&'a SourceFile>,
    untested: bool,
    /// Set for a compressed tar layer.
    codec: Option<crate::compress::Codec>,
}

impl PlannedLayer<'_> {
    /// The layer's `org.cncf.model.filepath`.
    pub fn filepath(&self) -> &str {
        &self.filepath
    }

    /// Raw file bytes or a tar archive (compressed or not).
    pub fn encoding(&self) -> Encoding {
        self.codec.map_or(self.encoding, |c| c.encoding)
    }

    /// Like [`PlannedLayer::write_to`], compressing when the layer is
    /// compressed: the bytes `pack` stores. Returns the uncompressed side
    /// of a compressed layer (`None`: the bytes written are the layer).
    pub fn write_encoded_to(
        &self,
        writer: &mut dyn std::io::Write,
        preserve_metadata: bool,
        progress: &dyn Progress,
    ) -> Result<Option<crate::compress::Uncompressed>> {
        match self.codec {
            Some(codec) => crate::compress::stream_compressed_tar(
                writer,
                &self.files,
                preserve_metadata,
                codec,
                progress,
            )
            .map(Some),
            None => self
                .write_to(writer, preserve_metadata, progress)
                .map(|_| None),
        }
    }

    /// The ModelPack category.
    pub fn category(&self) -> Category {
        self.category
    }

    /// Bytes of file content the layer holds.
    pub fn content_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.metadata.len()).sum()
    }

    /// Streams the layer's bytes into `writer`: exactly the bytes the store
    /// path keeps as the blob (the file, or the deterministic tar). Every
    /// file is read once; a file that changes while it is read fails the
    /// layer. Returns the number of bytes written.
    pub fn write_to(
        &self,
        writer: &mut dyn std::io::Write,
        preserve_metadata: bool,
        progress: &dyn Progress,
    ) -> Result<u64> {
        match (self.encoding, self.files.as_slice()) {
            (Encoding::Raw, [file]) => layer::stream_raw(file, writer, progress),
            _ => layer::stream_tar(writer, &self.files, preserve_metadata, progress),
        }
    }
}

/// A model directory read, filtered and classified: what is needed to plan
/// its layers and build its config and manifest, wherever the layer bytes
/// go (the store, or a registry while they are hashed).
pub struct Prepared {
    files: Vec<SourceFile>,
    recipe: Option<recipe::Recipe>,
    detected: detect::Detected,
    /// Set when the directory is a Hugging Face cache snapshot of a model.
    origin: Option<hf_cache::Origin>,
}

/// The config and manifest of a packed artifact, as canonical bytes.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The config blob.
    pub config_bytes: Vec<u8>,
    /// Its descriptor.
    pub config: Descriptor,
    /// The manifest.
    pub manifest_bytes: Vec<u8>,
    /// The manifest's descriptor (with `artifactType`), as an index names it.
    pub manifest: Descriptor,
}

/// Reads `dir` for packing as `reference`: options checked, Modelfile
/// parsed, files walked and filtered, metadata detected. Nothing is written.
pub fn prepare(dir: &Path, reference: &Reference, options: &PackOptions) -> Result<Prepared> {
    if reference.digest().is_some() {
        return Err(StoreError::InvalidReference {
            input: reference.whole(),
            reason: "pack needs a tag, not a digest".into(),
        });
    }
    options.compress.validate()?;
    if !matches!(options.layer_format, Encoding::Raw | Encoding::Tar) {
        // write_tar writes plain tar: a compressed media type would lie.
        return Err(StoreError::UnsupportedLayerFormat(
            options.layer_format.suffix(),
        ));
    }
    let mut found = recipe::find(
        dir,
        options.modelfile.as_deref(),
        options.link_reach,
        options.kitignore,
    )?;
    let mut filter = Filter::new(&options.include, &options.exclude)?;
    let mut kitfile = false;
    if let Some(found) = &found
        && let Some(scope) = found.kit_scope()?
    {
        // KitOps packs every file below a listed path (hidden ones too)
        // but what .kitignore names; --exclude still applies. Nothing else
        // is walked, so links elsewhere in DIR are not judged.
        filter = filter.within(scope);
        kitfile = true;
    }
    let symlinks = if options.layer_format == Encoding::Raw {
        SymlinkMode::Follow
    } else {
        SymlinkMode::Keep
    };
    let mut skip: Vec<String> = found.iter().filter_map(|f| f.rel.clone()).collect();
    if kitfile && options.kitignore {
        // Read as packing instructions, not packed (as the Kitfile).
        skip.push(kitignore::KITIGNORE_NAME.to_string());
    }
    let mut files = walk::collect_files(dir, &filter, &skip, symlinks, options.link_reach)?;
    if let Some(found) = &mut found {
        found.apply(&mut files)?;
    }
    if options.refuse_symlinks
        && let Some(link) = files.iter().find(|f| f.link_target.is_some())
    {
        return Err(StoreError::UnsignableSymlink(dir.join(&link.rel)));
    }
    let rel_paths: Vec<String> = files.iter().map(|f| f.rel.clone()).collect();
    let detected = detect::detect_metadata(dir, &rel_paths).unwrap_or_else(|e| {
        tracing::warn!("metadata detection skipped: {e}");
        detect::Detected::default()
    });
    let origin = hf_cache::Snapshot::of_dir(dir)?.and_then(|s| s.origin());
    Ok(Prepared {
        files,
        recipe: found.map(|f| f.recipe),
        detected,
        origin,
    })
}

impl Prepared {
    /// Bytes of content in the files to pack.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.metadata.len()).sum()
    }

    /// The files to pack, in order (what `ferry pack` scans first).
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Number of files to pack.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The layers, in manifest order.
    pub fn plan(&self, options: &PackOptions) -> Vec<PlannedLayer<'_>> {
        plan_layers(&self.files, self.recipe.as_ref(), options)
    }

    /// Builds the config and manifest once every layer of `plan` is
    /// written (`written[i]` is the blob of `plan[i]`).
    pub fn assemble(
        &self,
        reference: &Reference,
        options: &PackOptions,
        plan: &[PlannedLayer<'_>],
        written: &[WrittenBlob],
    ) -> Result<Assembled> {
        if plan.len() != written.len() {
            return Err(StoreError::Internal(
                "the number of layers written differs from the plan",
            ));
        }
        let layers: Vec<Descriptor> = plan
            .iter()
            .zip(written)
            .map(|(layer, blob)| layer_descriptor(layer, blob, options.preserve_metadata))
            .collect::<Result<_>>()?;
        let config = build_config(
            reference,
            &self.detected,
            self.recipe.as_ref(),
            self.origin.as_ref(),
            options,
            written.iter().map(|b| b.diff_id.clone()).collect(),
        );
        let config_bytes = serde_json::to_vec(&config).map_err(|source| StoreError::Serialize {
            what: "config",
            source,
        })?;
        config.validate()?;
        let config_descriptor = Descriptor::new(
            MediaType::Other(media::MEDIA_TYPE_MODEL_CONFIG.into()),
            config_bytes.len() as u64,
            ferry_spec::digest::sha256_digest(&config_bytes),
        );

        let mut annotations = HashMap::new();
        if let Some(recipe) = &self.recipe {
            let (key, value) = recipe.annotation();
            annotations.insert(key.to_string(), value);
        }
        if let Some(created) = &options.created {
            annotations.insert(ann::CREATED.to_string(), created.clone());
        }
        if let Some(origin) = &self.origin {
            annotations.insert(ann::REVISION.to_string(), origin.revision.clone());
            annotations.insert(ann::SOURCE.to_string(), origin.source_url.clone());
        }
        let mut builder = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::Other(media::ARTIFACT_TYPE_MODEL.into()))
            .config(config_descriptor.clone())
            .layers(layers);
        if !annotations.is_empty() {
            builder = builder.annotations(annotations);
        }
        let manifest = builder.build().map_err(StoreError::BuildManifest)?;
        let manifest_bytes = ferry_spec::json::canonical_json(&manifest).map_err(|source| {
            StoreError::Serialize {
                what: "manifest",
                source,
            }
        })?;
        let mut descriptor = Descriptor::new(
            MediaType::ImageManifest,
            manifest_bytes.len() as u64,
            ferry_spec::digest::sha256_digest(&manifest_bytes),
        );
        descriptor.set_artifact_type(Some(MediaType::Other(media::ARTIFACT_TYPE_MODEL.into())));
        Ok(Assembled {
            config_bytes,
            config: config_descriptor,
            manifest_bytes,
            manifest: descriptor,
        })
    }
}

/// Packs `dir` into the store as `reference`.
pub fn pack(
    store: &Store,
    dir: &Path,
    reference: &Reference,
    options: &PackOptions,
) -> Result<Packed> {
    pack_with_progress(store, dir, reference, options, &NoProgress)
}

/// [`pack`] with a progress reporter.
pub fn pack_with_progress(
    store: &Store,
    dir: &Path,
    reference: &Reference,
    options: &PackOptions,
    progress: &dyn Progress,
) -> Result<Packed> {
    let prepared = prepare(dir, reference, options)?;
    progress.start(prepared.total_bytes(), prepared.file_count());

    // A corrupt index.json fails the pack before any blob is written.
    store.read_index()?;
    // Held for the whole pack so a concurrent prune never deletes blobs that
    // are written but not yet named in the index; a failed pack removes the
    // blobs it added.
    let mut ingest = Ingest::start(store)?;
    write_prepared(store, &prepared, reference, options, progress, &mut ingest)
}

/// Packs `dir` as [`pack_with_progress`] does, under an ingest the caller
/// already holds (a conversion holds it while its unpacked files sit in
/// `tmp/`; taking a second one would deadlock its own cleanup).
pub(crate) fn pack_ingesting(
    store: &Store,
    dir: &Path,
    reference: &Reference,
    options: &PackOptions,
    ingest: &mut Ingest<'_>,
) -> Result<Packed> {
    let prepared = prepare(dir, reference, options)?;
    store.read_index()?;
    write_prepared(store, &prepared, reference, options, &NoProgress, ingest)
}

/// Writes the layers, config and manifest of `prepared` and names them.
fn write_prepared(
    store: &Store,
    prepared: &Prepared,
    reference: &Reference,
    options: &PackOptions,
    progress: &dyn Progress,
    ingest: &mut Ingest<'_>,
) -> Result<Packed> {
    let plan = prepared.plan(options);
    let total = prepared.total_bytes();
    let method = if options.link {
        RawMethod::Hardlink
    } else {
        RawMethod::CopyOrReflink
    };
    let written: Vec<WrittenBlob> = plan
        .par_iter()
        .map(|layer| match (layer.codec, layer.encoding) {
            (Some(codec), _) => crate::compress::write_compressed_tar(
                store,
                &layer.files,
                options.preserve_metadata,
                codec,
                progress,
            ),
            (None, Encoding::Raw) => layer::write_raw(store, layer.files[0], method, progress),
            _ => layer::write_tar(store, &layer.files, options.preserve_metadata, progress),
        })
        .collect::<Result<_>>()?;

    let assembled = prepared.assemble(reference, options, &plan, &written)?;
    let config_digest = store.put_document(&assembled.config_bytes)?;
    let manifest_digest = store.put_document(&assembled.manifest_bytes)?;
    if &config_digest != assembled.config.digest()
        || &manifest_digest != assembled.manifest.digest()
    {
        return Err(StoreError::Internal(
            "config or manifest stored under an unexpected digest",
        ));
    }
    store.set_reference(reference, &assembled.manifest)?;
    ingest.succeeded();
    Ok(Packed {
        reference: reference.whole(),
        manifest_digest,
        manifest: assembled.manifest,
        layers: plan.len(),
        content_bytes: total,
        files: packed_files(&plan, &written),
    })
}

/// The files of every layer: a raw layer's is its blob.
fn packed_files(plan: &[PlannedLayer], written: &[WrittenBlob]) -> Vec<PackedFile> {
    plan.iter()
        .zip(written)
        .flat_map(|(layer, blob)| {
            if blob.files.is_empty() && layer.files.len() == 1 {
                vec![PackedFile {
                    path: layer.files[0].rel.clone(),
                    sha256: Some(blob.digest.clone()),
                }]
            } else {
                blob.files.clone()
            }
        })
        .collect()
}

fn plan_layers<'a>(
    files: &'a [SourceFile],
    recipe: Option<&recipe::Recipe>,
    options: &PackOptions,
) -> Vec<PlannedLayer<'a>> {
    let declarations = recipe.map(recipe::Recipe::declarations);
    let mut by_category: Vec<(Category, bool, &SourceFile)> = files
        .iter()
        .map(
            |f| match declarations.as_ref().and_then(|d| d.category_for(&f.rel)) {
                Some(category) => (category, false, f),
                None => (ferry_spec::classify::classify(&f.rel), true, f),
            },
        )
        .collect();
    by_category.sort_by(|a, b| {
        let rank = |c: Category| Category::ALL.iter().position(|x| *x == c);
        rank(a.0).cmp(&rank(b.0)).then(a.2.rel.cmp(&b.2.rel))
    });
    let mut plan = Vec::new();
    for category in Category::ALL {
        let in_category = by_category.iter().filter(|(c, _, _)| *c == category);
        let (small, large): (Vec<_>, Vec<_>) = in_category.partition(|(_, _, f)| {
            options
                .bundle_small
                .is_some_and(|limit| f.metadata.len() < limit && f.link_target.is_none())
        });
        if small.len() > 1 {
            plan.push(PlannedLayer {
                category,
                encoding: Encoding::Tar,
                filepath: common_dir(small.iter().map(|(_, _, f)| f.rel.as_str())),
                files: small.iter().map(|(_, _, f)| *f).collect(),
                untested: small.iter().any(|(_, untested, _)| *untested),
                codec: small
                    .iter()
                    .map(|(_, _, f)| options.compress.choose(category, f))
                    .collect::<Option<Vec<_>>>()
                    .and_then(|codecs| codecs.first().copied()),
            });
        }
        let singles = if small.len() == 1 {
            small.into_iter().chain(large).collect::<Vec<_>>()
        } else {
            large
        };
        let mut singles = singles;
        singles.sort_by(|a, b| a.2.rel.cmp(&b.2.rel));
        for (_, untested, file) in singles {
            let encoding = if file.link_target.is_some() {
                Encoding::Tar
            } else {
                options.layer_format
            };
            plan.push(PlannedLayer {
                category,
                encoding,
                filepath: file.rel.clone(),
                files: vec![file],
                untested,
                codec: options.compress.choose(category, file),
            });
        }
    }
    plan
}

/// The deepest directory containing every path, `.` for the root.
fn common_dir<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let mut common: Option<Vec<&str>> = None;
    for path in paths {
        let dirs: Vec<&str> = path.split('/').collect();
        let dirs = &dirs[..dirs.len() - 1];
        common = Some(match common {
            None => dirs.to_vec(),
            Some(prev) => prev
                .iter()
                .zip(dirs)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    match common {
        Some(parts) if !parts.is_empty() => parts.join("/"),
        _ => ".".to_string(),
    }
}

fn layer_descriptor(
    layer: &PlannedLayer,
    blob: &WrittenBlob,
    preserve: bool,
) -> Result<Descriptor> {
    let mut annotations = HashMap::new();
    annotations.insert(ann::FILEPATH.to_string(), layer.filepath.clone());
    annotations.insert(ann::TITLE.to_string(), layer.filepath.clone());
    if layer.untested {
        annotations.insert(ann::MEDIATYPE_UNTESTED.to_string(), "true".to_string());
    }
    let metadata = if let [file] = layer.files.as_slice() {
        let entry = EntryMetadata::of(&file.metadata, preserve);
        FileMetadata {
            name: file.rel.rsplit('/').next().unwrap_or(&file.rel).to_string(),
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            size: if file.link_target.is_some() {
                0
            } else {
                file.metadata.len()
            },
            mtime: rfc3339_from_unix(entry.mtime).unwrap_or_default(),
            typeflag: if file.link_target.is_some() {
                ann::TYPEFLAG_SYMLINK
            } else {
                ann::TYPEFLAG_REGULAR
            },
        }
    } else {
        FileMetadata {
            name: layer.filepath.rsplit('/').next().unwrap_or(".").to_string(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: layer.files.iter().map(|f| f.metadata.len()).sum(),
            mtime: rfc3339_from_unix(0).unwrap_or_default(),
            typeflag: ann::TYPEFLAG_DIRECTORY,
        }
    };
    let metadata_json =
        serde_json::to_string(&metadata).map_err(|source| StoreError::Serialize {
            what: "file metadata",
            source,
        })?;
    annotations.insert(ann::FILE_METADATA.to_string(), metadata_json);
    let mut descriptor = Descriptor::new(
        MediaType::Other(media::layer_media_type(layer.category, layer.encoding())),
        blob.size,
        blob.digest.clone(),
    );
    descriptor.set_annotations(Some(annotations));
    Ok(descriptor)
}

fn build_config(
    reference: &Reference,
    detected: &detect::Detected,
    recipe: Option<&recipe::Recipe>,
    origin: Option<&hf_cache::Origin>,
    options: &PackOptions,
    diff_ids: Vec<Digest>,
) -> ModelPackConfig {
    let flags = &options.metadata;
    // The artifact's name defaults to the hub's name of a cached model, else
    // to the repository's last component, not to the directory's name that
    // detection found (a snapshot's is a commit hash).
    let detected = ModelFacts {
        name: origin.map(|o| o.name.clone()).or_else(|| {
            reference
                .repository()
                .rsplit('/')
                .next()
                .map(str::to_string)
        }),
        ..detected.clone()
    };
    let (declared, kit) = match recipe {
        Some(recipe::Recipe::Modelfile { modelfile, .. }) => {
            (modelfile.facts.clone(), KitMetadata::default())
        }
        Some(recipe::Recipe::Kitfile { kitfile, .. }) => {
            let kit = kitfile.metadata();
            let facts = ModelFacts {
                name: kit.name.clone(),
                format: kit.format.clone(),
                ..ModelFacts::default()
            };
            (facts, kit)
        }
        None => (ModelFacts::default(), KitMetadata::default()),
    };
    let facts = flags
        .facts
        .clone()
        .or(declared)
        .or(detected)
        .without_empty();
    let given = |flag: &Vec<String>, recipe: Vec<String>| {
        let list = if flag.is_empty() {
            recipe
        } else {
            flag.clone()
        };
        (!list.is_empty()).then_some(list)
    };
    ModelPackConfig {
        descriptor: ModelDescriptor {
            created_at: options.created.clone(),
            authors: given(&flags.authors, kit.authors),
            family: facts.family,
            name: facts.name,
            version: flags.version.clone().or(kit.version),
            title: kit.title,
            description: kit.description,
            licenses: given(&flags.licenses, kit.licenses),
            revision: origin.map(|o| o.revision.clone()),
            source_url: origin.map(|o| o.source_url.clone()),
            ..Default::default()
        },
        config: ModelProperties {
            architecture: facts.arch,
            format: facts.format,
            param_size: facts.param_size,
            precision: facts.precision,
            quantization: facts.quantization,
            capabilities: None,
        },
        modelfs: ModelFs {
            fs_type: ModelFsType::Layers,
            diff_ids,
        },
    }
}

/// The ingest lock of one pack and the blob names present when it started.
/// Dropped without [`Ingest::succeeded`] (the pack failed), it releases the
/// lock, waits for the collect lock (so no other writer is mid-way) and
/// deletes the blobs added since that nothing in the index reaches.
pub(crate) struct Ingest<'a> {
    store: &'a Store,
    lock: Option<LockGuard>,
    before: HashSet<OsString>,
    succeeded: bool,
}

impl<'a> Ingest<'a> {
    pub(crate) fn start(store: &'a Store) -> Result<Ingest<'a>> {
        let lock = store.lock_ingest()?;
        let dir = store.blobs_dir("sha256");
        let mut before = HashSet::new();
        for entry in fs::read_dir(&dir).ctx("reading", &dir)? {
            before.insert(entry.ctx("reading", &dir)?.file_name());
        }
        Ok(Ingest {
            store,
            lock: Some(lock),
            before,
            succeeded: false,
        })
    }

    /// Keeps what was added: it is named in the index now.
    fn succeeded(&mut self) {
        self.succeeded = true;
    }

    fn remove_added(&self) -> Result<()> {
        let _collect = self.store.lock_collect()?;
        let reachable: HashSet<String> = self
            .store
            .reachable_blobs()?
            .into_keys()
            .map(|d| d.digest().to_string())
            .collect();
        let dir = self.store.blobs_dir("sha256");
        for entry in fs::read_dir(&dir).ctx("reading", &dir)? {
            let name = entry.ctx("reading", &dir)?.file_name();
            if self.before.contains(&name) || reachable.contains(&*name.to_string_lossy()) {
                continue;
            }
            let path = dir.join(&name);
            fs::remove_file(&path).ctx("removing", &path)?;
        }
        Ok(())
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        if !self.succeeded
            && let Err(e) = self.remove_added()
        {
            tracing::warn!("blobs of the failed pack are left for `ferry prune`: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::common_dir;

    #[test]
    fn common_dir_of_nested_and_root_files() {
        assert_eq!(common_dir(["a/b/c.txt", "a/b/d.txt"].into_iter()), "a/b");
        assert_eq!(common_dir(["a/b/c.txt", "a/x.txt"].into_iter()), "a");
        assert_eq!(common_dir(["c.txt", "a/x.txt"].into_iter()), ".");
    }
}
