//! `ferry pack --generic`: any directory as a plain OCI artifact.
//!
//! One raw layer per file (`application/octet-stream` unless told
//! otherwise), titled with its path relative to the directory, in the walk's
//! fixed order; the config is a given file or the empty descriptor, in
//! which case `artifactType` is REQUIRED (image spec). No timestamps unless
//! asked for, canonical JSON: the same directory gives the same digest.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use ferry_spec::Reference;
use ferry_spec::annotations as ann;
use ferry_spec::oci::{Descriptor, Digest, ImageManifestBuilder, MediaType};

use super::layer::{self, PackedFile, RawMethod, WrittenBlob};
use ferry_spec::media::{DEFAULT_LAYER_MEDIA_TYPE, EMPTY_CONFIG};

use super::walk::{self, Filter, SymlinkMode};
use super::{Ingest, NoProgress, Packed, Progress};
use crate::error::{IoContext, Result, StoreError};
use crate::store::{MAX_DOCUMENT_SIZE, Store};

/// A config file and its media type (`--config FILE:MEDIATYPE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// Its media type.
    pub media_type: String,
}

impl std::str::FromStr for ConfigFile {
    type Err = String;

    /// `FILE:MEDIATYPE`, split at the last colon (media types have none).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.rsplit_once(':') {
            Some((path, media_type))
                if !path.is_empty() && media_type.split_once('/').is_some() =>
            {
                Ok(ConfigFile {
                    path: PathBuf::from(path),
                    media_type: media_type.to_string(),
                })
            }
            _ => Err(format!(
                "invalid config {value:?} (expected FILE:MEDIATYPE, e.g. module.json:application/vnd.wasm.config.v0+json)"
            )),
        }
    }
}

/// What `pack --generic` is told.
#[derive(Debug, Clone, Default)]
pub struct GenericOptions {
    /// The manifest's `artifactType`; required without `config`.
    pub artifact_type: Option<String>,
    /// A config blob; default: the empty descriptor.
    pub config: Option<ConfigFile>,
    /// Layer media type; default `application/octet-stream`.
    pub layer_media_type: Option<String>,
    /// Extra include globs (override the default skips).
    pub include: Vec<String>,
    /// Exclude globs.
    pub exclude: Vec<String>,
    /// `org.opencontainers.image.created` (RFC 3339), only when given.
    pub created: Option<String>,
    /// Hardlink files into the store instead of copying them.
    pub link: bool,
    /// Where symbolic links may lead (`--follow-symlinks`: anywhere).
    pub link_reach: super::walk::Reach,
}

/// Packs every file under `dir` into the store as a generic artifact named `reference`.
pub fn pack_generic(
    store: &Store,
    dir: &Path,
    reference: &Reference,
    options: &GenericOptions,
) -> Result<Packed> {
    pack_generic_with_progress(store, dir, reference, options, &NoProgress)
}

/// [`pack_generic`] with a progress reporter.
pub fn pack_generic_with_progress(
    store: &Store,
    dir: &Path,
    reference: &Reference,
    options: &GenericOptions,
    progress: &dyn Progress,
) -> Result<Packed> {
    require_tag(reference)?;
    if let Some(artifact_type) = &options.artifact_type {
        check_media_type("artifact type", artifact_type)?;
    } else if options.config.is_none() {
        return Err(StoreError::MissingArtifactType);
    }
    let layer_media_type = options
        .layer_media_type
        .as_deref()
        .unwrap_or(DEFAULT_LAYER_MEDIA_TYPE);
    check_media_type("layer media type", layer_media_type)?;
    let config_bytes = match &options.config {
        Some(config) => {
            check_media_type("config media type", &config.media_type)?;
            Some(read_config(&config.path)?)
        }
        None => None,
    };
    let filter = Filter::new(&options.include, &options.exclude)?;
    // A config file inside the directory is the config, not a layer.
    let skip: Vec<String> = options
        .config
        .as_ref()
        .and_then(|c| relative_inside(dir, &c.path))
        .into_iter()
        .collect();
    let files = walk::collect_files(dir, &filter, &skip, SymlinkMode::Follow, options.link_reach)?;
    let total: u64 = files.iter().map(|f| f.metadata.len()).sum();
    progress.start(total, files.len());

    store.read_index()?;
    let mut ingest = Ingest::start(store)?;
    let method = if options.link {
        RawMethod::Hardlink
    } else {
        RawMethod::CopyOrReflink
    };
    let written: Vec<WrittenBlob> = files
        .par_iter()
        .map(|file| layer::write_raw(store, file, method, progress))
        .collect::<Result<_>>()?;
    let layers: Vec<Descriptor> = files
        .iter()
        .zip(&written)
        .map(|(file, blob)| titled_layer(layer_media_type, blob, &file.rel))
        .collect();

    let config = match (&options.config, &config_bytes) {
        (Some(config), Some(bytes)) => Descriptor::new(
            MediaType::from(config.media_type.as_str()),
            bytes.len() as u64,
            store.put_document(bytes)?,
        ),
        _ => Descriptor::new(
            MediaType::EmptyJSON,
            EMPTY_CONFIG.len() as u64,
            store.put_document(EMPTY_CONFIG)?,
        ),
    };
    let artifact_type = options.artifact_type.as_deref().map(MediaType::from);
    let (manifest_digest, descriptor) = store_manifest(
        store,
        reference,
        config,
        layers,
        artifact_type,
        options.created.as_deref(),
    )?;
    ingest.succeeded();
    Ok(Packed {
        reference: reference.whole(),
        manifest_digest,
        manifest: descriptor,
        layers: files.len(),
        content_bytes: total,
        files: files
            .iter()
            .zip(&written)
            .map(|(file, blob)| PackedFile {
                path: file.rel.clone(),
                sha256: Some(blob.digest.clone()),
            })
            .collect(),
    })
}

/// Refuses a reference by digest: pack names what it writes with a tag.
pub(super) fn require_tag(reference: &Reference) -> Result<()> {
    if reference.digest().is_some() {
        return Err(StoreError::InvalidReference {
            input: reference.whole(),
            reason: "pack needs a tag, not a digest".into(),
        });
    }
    Ok(())
}

/// A layer descriptor titled `title`: ORAS-style clients write the layer to
/// a file of that name.
pub(super) fn titled_layer(media_type: &str, blob: &WrittenBlob, title: &str) -> Descriptor {
    let mut descriptor =
        Descriptor::new(MediaType::from(media_type), blob.size, blob.digest.clone());
    descriptor.set_annotations(Some(HashMap::from([(
        ann::TITLE.to_string(),
        title.to_string(),
    )])));
    descriptor
}

/// Writes the image manifest of `config` and `layers` (blobs already in
/// the store) as canonical JSON and names it `reference`. `created` becomes
/// the manifest's `org.opencontainers.image.created`. Returns the manifest's
/// digest and its descriptor as the index records it.
pub(super) fn store_manifest(
    store: &Store,
    reference: &Reference,
    config: Descriptor,
    layers: Vec<Descriptor>,
    artifact_type: Option<MediaType>,
    created: Option<&str>,
) -> Result<(Digest, Descriptor)> {
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.clone())
        .layers(layers);
    if let Some(artifact_type) = &artifact_type {
        builder = builder.artifact_type(artifact_type.clone());
    }
    if let Some(created) = created {
        builder = builder.annotations(HashMap::from([(
            ann::CREATED.to_string(),
            created.to_string(),
        )]));
    }
    let manifest = builder.build().map_err(StoreError::BuildManifest)?;
    let manifest_bytes =
        ferry_spec::json::canonical_json(&manifest).map_err(|source| StoreError::Serialize {
            what: "manifest",
            source,
        })?;
    let manifest_digest = store.put_document(&manifest_bytes)?;
    let mut descriptor = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        manifest_digest.clone(),
    );
    // A descriptor's artifactType: the manifest's, else its config's media type.
    descriptor.set_artifact_type(Some(
        artifact_type.unwrap_or_else(|| config.media_type().clone()),
    ));
    store.set_reference(reference, &descriptor)?;
    Ok((manifest_digest, descriptor))
}

/// Rejects what cannot be a media type (`type/subtype`).
fn check_media_type(what: &'static str, value: &str) -> Result<()> {
    if ferry_spec::media::is_valid_media_type(value) {
        Ok(())
    } else {
        Err(StoreError::InvalidMediaType {
            what,
            value: value.to_string(),
        })
    }
}

fn read_config(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).ctx("reading config", path)?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut bytes)
        .ctx("reading config", path)?;
    if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
        return Err(StoreError::TooLarge {
            what: format!("config {}", path.display()),
            size: bytes.len() as u64,
            limit: MAX_DOCUMENT_SIZE,
        });
    }
    Ok(bytes)
}

/// `path` relative to `dir` (`/`-separated) when it lies inside it.
fn relative_inside(dir: &Path, path: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let path = path.canonicalize().ok()?;
    let rel = path.strip_prefix(&dir).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_flag_splits_at_the_last_colon() {
        let c: ConfigFile = "dir:x/module.json:application/vnd.wasm.config.v0+json"
            .parse()
            .unwrap();
        assert_eq!(c.path, PathBuf::from("dir:x/module.json"));
        assert_eq!(c.media_type, "application/vnd.wasm.config.v0+json");
        assert!("module.json".parse::<ConfigFile>().is_err());
        assert!(":application/json".parse::<ConfigFile>().is_err());
        assert!("m.json:json".parse::<ConfigFile>().is_err());
    }

    #[test]
    fn empty_config_without_artifact_type_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("files");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        let store = Store::open(root.path().join("store")).unwrap();
        let reference: Reference = "localhost/x:v1".parse().unwrap();
        let err = pack_generic(&store, &dir, &reference, &GenericOptions::default()).unwrap_err();
        assert!(err.to_string().contains("--artifact-type"), "{err}");
        assert!(store.entries().unwrap().is_empty());
    }

    #[test]
    fn config_inside_the_directory_is_not_a_layer() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("files");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("module.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.join("sub/data.bin"), b"data").unwrap();
        std::fs::write(dir.join("module.json"), b"{\"a\":1}").unwrap();
        let store = Store::open(root.path().join("store")).unwrap();
        let reference: Reference = "localhost/wasm:v1".parse().unwrap();
        let options = GenericOptions {
            config: Some(ConfigFile {
                path: dir.join("module.json"),
                media_type: "application/vnd.wasm.config.v0+json".into(),
            }),
            ..GenericOptions::default()
        };
        let packed = pack_generic(&store, &dir, &reference, &options).unwrap();
        let manifest = store.read_manifest(&packed.manifest_digest).unwrap();
        let titles: Vec<String> = manifest
            .layers()
            .iter()
            .map(|l| l.annotations().as_ref().unwrap()[ann::TITLE].clone())
            .collect();
        assert_eq!(titles, vec!["module.wasm", "sub/data.bin"]);
        assert_eq!(
            manifest.config().media_type().to_string(),
            "application/vnd.wasm.config.v0+json"
        );
        assert!(manifest.artifact_type().is_none());
        assert_eq!(
            packed
                .manifest
                .artifact_type()
                .as_ref()
                .map(|t| t.to_string()),
            Some("application/vnd.wasm.config.v0+json".to_string())
        );
    }
}
