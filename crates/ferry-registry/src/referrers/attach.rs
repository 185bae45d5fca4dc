//! `ferry attach`: files pushed as an artifact whose `subject` is a
//! manifest on the registry, listed by the registry or in the fallback tag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use ferry_spec::Reference;
use ferry_spec::annotations::TITLE;
use ferry_spec::media::{EMPTY_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST};
use ferry_spec::oci::{Descriptor, Digest, ImageManifestBuilder, MediaType};

use super::fallback::{
    FallbackPolicy, RegistryTag, add_to_fallback_index, put_manifest_through_blob_races,
};
use super::{descriptor_of_manifest, fallback_tag};
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result, io_error, join_error};
use crate::progress::TransferProgress;
use crate::transfer::reference_tail;
use crate::upload::{BlobOutcome, BlobSource};

/// What `ferry attach` is told.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// The referrer's `artifactType` (REQUIRED: its config is the empty descriptor).
    pub artifact_type: String,
    /// Files, one layer each, titled with their file name.
    pub files: Vec<PathBuf>,
    /// Media type of every layer.
    pub layer_media_type: String,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Blobs pushed at once.
    pub concurrency: usize,
    /// How the fallback tag is maintained.
    pub fallback: FallbackPolicy,
}

/// What an attach pushed.
#[derive(Debug, Clone)]
pub struct Attached {
    /// `registry/repository@digest` of the referrer.
    pub reference: String,
    /// The subject's descriptor.
    pub subject: Descriptor,
    /// The referrer's descriptor as referrer lists show it.
    pub descriptor: Descriptor,
    /// Set when the registry did not index the subject and ferry updated the
    /// fallback tag instead.
    pub fallback: Option<FallbackUpdate>,
}

/// A fallback tag update.
#[derive(Debug, Clone)]
pub struct FallbackUpdate {
    /// The tag (`sha256-<hex>`).
    pub tag: String,
    /// Read-modify-write attempts it took.
    pub attempts: u32,
}

/// Pushes `options.files` as an artifact whose `subject` is the manifest
/// `subject` names, then makes sure it is listed: by the registry (it
/// answered `OCI-Subject`) or in the fallback tag. Everything, the subject's
/// resolution included, goes to the registry itself (never a mirror).
pub async fn attach(
    client: &Client,
    subject: &Reference,
    options: &AttachOptions,
    progress: &dyn TransferProgress,
) -> Result<Attached> {
    check_media_type("artifact type", &options.artifact_type)?;
    check_media_type("layer media type", &options.layer_media_type)?;
    if options.files.is_empty() {
        return Err(ClientError::invalid_input("attach needs at least one file"));
    }
    let titles = titles(&options.files)?;
    let mut layers = Vec::with_capacity(options.files.len());
    for (path, title) in options.files.iter().zip(titles) {
        let (digest, size) = hash_file(path).await?;
        let mut layer = Descriptor::new(
            MediaType::from(options.layer_media_type.as_str()),
            size,
            digest,
        );
        layer.set_annotations(Some([(TITLE.to_string(), title)].into_iter().collect()));
        layers.push((layer, LayerContent::File(path.clone())));
    }
    let artifact = ReferrerArtifact {
        artifact_type: &options.artifact_type,
        layers,
        annotations: &options.annotations,
    };
    attach_artifact(
        client,
        subject,
        artifact,
        options.concurrency,
        &options.fallback,
        progress,
    )
    .await
}

/// A layer's bytes on their way up.
pub(crate) enum LayerContent {
    /// A file holding exactly the layer.
    File(PathBuf),
    /// The layer in memory.
    Bytes(Bytes),
}

/// What a referrer carries, its subject apart.
pub(crate) struct ReferrerArtifact<'a> {
    /// Its `artifactType`.
    pub artifact_type: &'a str,
    /// Its layers and where their bytes are.
    pub layers: Vec<(Descriptor, LayerContent)>,
    /// Manifest annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

/// A referrer manifest as built: its exact bytes and its descriptor as
/// referrer lists show it.
pub(crate) struct BuiltReferrer {
    pub bytes: Vec<u8>,
    pub descriptor: Descriptor,
}

/// Builds the manifest of a referrer of `subject` with the empty config.
pub(crate) fn referrer_manifest(
    subject: &Descriptor,
    artifact_type: &str,
    layers: Vec<Descriptor>,
    annotations: &BTreeMap<String, String>,
) -> Result<BuiltReferrer> {
    let artifact_type = MediaType::from(artifact_type);
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(artifact_type.clone())
        .config(empty_config_descriptor())
        .layers(layers)
        .subject(subject.clone());
    if !annotations.is_empty() {
        builder = builder.annotations(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    let manifest = builder
        .build()
        .map_err(|e| ClientError::encode("the referrer manifest", e))?;
    let bytes = ferry_spec::json::canonical_json(&manifest)
        .map_err(|e| ClientError::encode("the referrer manifest", e))?;
    let digest = ferry_spec::digest::sha256_digest(&bytes);
    let mut descriptor = Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest);
    descriptor.set_artifact_type(Some(artifact_type));
    if !annotations.is_empty() {
        descriptor.set_annotations(manifest.annotations().clone());
    }
    Ok(BuiltReferrer { bytes, descriptor })
}

/// Pushes `artifact` as a referrer of the manifest `subject` names (see
/// [`attach`]), `concurrency` layers at once.
pub(crate) async fn attach_artifact(
    client: &Client,
    subject: &Reference,
    artifact: ReferrerArtifact<'_>,
    concurrency: usize,
    fallback_policy: &FallbackPolicy,
    progress: &dyn TransferProgress,
) -> Result<Attached> {
    let endpoint = Endpoint::of(subject);
    let subject_descriptor =
        descriptor_of_manifest(&client.manifest(&endpoint, &reference_tail(subject)).await?);
    client
        .push_blob(
            &endpoint,
            &empty_config_descriptor(),
            BlobSource::Bytes(Bytes::from_static(EMPTY_CONFIG)),
            None,
            progress,
        )
        .await?;
    stream::iter(artifact.layers.iter())
        .map(|(layer, content)| {
            let source = match content {
                LayerContent::File(path) => BlobSource::File(path.clone()),
                LayerContent::Bytes(bytes) => BlobSource::Bytes(bytes.clone()),
            };
            client.push_blob(&endpoint, layer, source, None, progress)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<BlobOutcome>>()
        .await?;
    let layers = artifact.layers.into_iter().map(|(d, _)| d).collect();
    let built = referrer_manifest(
        &subject_descriptor,
        artifact.artifact_type,
        layers,
        artifact.annotations,
    )?;
    let digest = built.descriptor.digest().clone();
    let pushed = put_manifest_through_blob_races(
        client,
        &endpoint,
        digest.as_ref(),
        MEDIA_TYPE_IMAGE_MANIFEST,
        Bytes::from(built.bytes),
        &fallback_policy.backoff,
    )
    .await?;
    let fallback = if pushed.subject_indexed {
        None
    } else {
        let tag = fallback_tag(subject_descriptor.digest());
        let store = RegistryTag::new(client, &endpoint, &tag);
        let entry = serde_json::to_value(&built.descriptor)
            .map_err(|e| ClientError::encode("the referrer descriptor", e))?;
        let attempts = add_to_fallback_index(&store, &tag, &entry, fallback_policy).await?;
        Some(FallbackUpdate { tag, attempts })
    };
    Ok(Attached {
        reference: format!("{}/{}@{digest}", endpoint.registry, endpoint.repository),
        subject: subject_descriptor,
        descriptor: built.descriptor,
        fallback,
    })
}

/// The empty descriptor (`{}`): the config of artifacts that have none.
pub(crate) fn empty_config_descriptor() -> Descriptor {
    Descriptor::new(
        MediaType::EmptyJSON,
        EMPTY_CONFIG.len() as u64,
        ferry_spec::digest::sha256_digest(EMPTY_CONFIG),
    )
}

/// Rejects what cannot be a media type (`type/subtype`).
fn check_media_type(what: &str, value: &str) -> Result<()> {
    if ferry_spec::media::is_valid_media_type(value) {
        Ok(())
    } else {
        Err(ClientError::invalid_input(format!(
            "{what} {value:?} is not a media type (type/subtype)"
        )))
    }
}

/// The title of each file (its name), refusing two files with one name.
fn titles(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    files
        .iter()
        .map(|path| {
            let title = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    ClientError::invalid_input(format!(
                        "{} has no UTF-8 file name to use as a title",
                        path.display()
                    ))
                })?
                .to_string();
            if !seen.insert(title.clone()) {
                return Err(ClientError::invalid_input(format!(
                    "two files are named {title:?}: layer titles must be unique"
                )));
            }
            Ok(title)
        })
        .collect()
}

/// The sha256 digest and size of a regular file (on a blocking thread).
async fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&owned).map_err(io_error("reading", owned.display()))?;
        if !file
            .metadata()
            .map_err(io_error("reading", owned.display()))?
            .is_file()
        {
            return Err(ClientError::invalid_input(format!(
                "{} is not a regular file",
                owned.display()
            )));
        }
        ferry_spec::digest::hash_reader(file, &ferry_spec::oci::DigestAlgorithm::Sha256)
            .map_err(io_error("reading", owned.display()))
    })
    .await
    .map_err(join_error("hashing", path.display()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_descriptor_matches_the_spec() {
        let d = empty_config_descriptor();
        assert_eq!(
            d.digest().to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(d.size(), 2);
        assert_eq!(
            d.media_type().to_string(),
            "application/vnd.oci.empty.v1+json"
        );
    }

    #[test]
    fn media_types_and_titles_are_checked() {
        assert!(check_media_type("t", "application/vnd.example+json").is_ok());
        for bad in ["", "application", "a/b/c", "/x", "a b/c"] {
            assert!(check_media_type("t", bad).is_err(), "{bad:?} accepted");
        }
        let ok = titles(&[PathBuf::from("/a/x.json"), PathBuf::from("/b/y.json")]).unwrap();
        assert_eq!(ok, vec!["x.json", "y.json"]);
        let err = titles(&[PathBuf::from("/a/x.json"), PathBuf::from("/b/x.json")]).unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
