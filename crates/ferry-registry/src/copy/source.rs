//! Where a copy reads: a registry (through its mirrors), an OCI layout, or
//! a layout archive (never unpacked).

use bytes::Bytes;
use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST;
use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::StoreError;
use ferry_store::layout::{LayoutDir, find_entry};

use super::{Location, descriptor_of, media_type_of};
use crate::api::FetchedManifest;
use crate::archive::ArchiveReader;
use crate::bridge::{self, BlobStream};
use crate::client::{Client, Endpoint};
use crate::download::blob_stream;
use crate::error::{ClientError, Result, join_error};
use crate::progress::TransferProgress;
use crate::referrers::list_referrers;
use crate::sources::ReadSources;
use crate::transfer::reference_tail;

/// Where an artifact is read.
pub(super) enum Source {
    Registry {
        /// The origin's mirrors and the origin, from the one that served the root.
        sources: ReadSources,
    },
    Layout {
        layout: LayoutDir,
    },
    Archive {
        archive: Box<ArchiveReader>,
    },
}

impl Source {
    /// Opens the source and resolves its root manifest.
    pub(super) async fn open(
        client: &Client,
        location: &Location,
    ) -> Result<(Source, FetchedManifest)> {
        match location {
            Location::Registry(reference) => {
                let all = client.read_sources(&Endpoint::of(reference));
                let (position, root) = all
                    .first(async |endpoint| registry_root(client, endpoint, reference).await)
                    .await?;
                let sources = all.from_position(position);
                Ok((Source::Registry { sources }, root))
            }
            Location::Layout { path, tag } => {
                let layout = LayoutDir::open(path)?;
                let entry = layout.find(tag.as_deref())?;
                let source = Source::Layout { layout };
                let root = source.manifest(client, &entry).await?;
                Ok((source, root))
            }
            Location::Archive { path, tag } => {
                let owned = path.clone();
                let archive = tokio::task::spawn_blocking(move || ArchiveReader::open(&owned))
                    .await
                    .map_err(join_error("reading", path.display()))??;
                let where_ = format!("oci-archive:{}", path.display());
                let entry = find_entry(archive.entries(), tag.as_deref(), &where_)?;
                let source = Source::Archive {
                    archive: Box::new(archive),
                };
                let root = source.manifest(client, &entry).await?;
                Ok((source, root))
            }
        }
    }

    /// The registry repository read, when the source is one.
    pub(super) fn registry(&self) -> Option<&Endpoint> {
        match self {
            Source::Registry { sources } => Some(sources.origin()),
            _ => None,
        }
    }

    /// A manifest by descriptor, verified against its digest and size.
    pub(super) async fn manifest(
        &self,
        client: &Client,
        descriptor: &Descriptor,
    ) -> Result<FetchedManifest> {
        let digest = descriptor.digest();
        let fetched = match self {
            Source::Registry { sources } => {
                sources
                    .first(async |endpoint| client.manifest(endpoint, digest.as_ref()).await)
                    .await?
                    .1
            }
            Source::Layout { layout } => {
                let bytes = layout.store().read_document(digest).map_err(|e| match e {
                    StoreError::DigestMismatch { actual, .. } => ClientError::Integrity {
                        what: format!("manifest {digest} in {}", layout.path().display()),
                        reason: format!("content hashes to {actual}"),
                    },
                    other => ClientError::Store(other),
                })?;
                FetchedManifest {
                    media_type: media_type_of(&bytes, Some(descriptor)),
                    bytes: Bytes::from(bytes),
                    digest: digest.clone(),
                }
            }
            Source::Archive { archive } => {
                let bytes = archive.read_document(descriptor)?;
                FetchedManifest {
                    media_type: media_type_of(&bytes, Some(descriptor)),
                    bytes: Bytes::from(bytes),
                    digest: digest.clone(),
                }
            }
        };
        if fetched.bytes.len() as u64 != descriptor.size() {
            return Err(ClientError::Integrity {
                what: format!("manifest {digest}"),
                reason: format!(
                    "{} bytes, the descriptor says {}",
                    fetched.bytes.len(),
                    descriptor.size()
                ),
            });
        }
        Ok(fetched)
    }

    /// A blob's bytes; the consumer verifies them.
    pub(super) async fn blob<'a>(
        &self,
        client: &'a Client,
        descriptor: &'a Descriptor,
        progress: &'a dyn TransferProgress,
    ) -> Result<BlobStream<'a>> {
        match self {
            Source::Registry { sources } => {
                let (_, stream) = sources
                    .first(async |endpoint| {
                        blob_stream(client, endpoint.clone(), descriptor, progress).await
                    })
                    .await?;
                Ok(stream)
            }
            Source::Layout { layout } => {
                let path = layout.store().blob_path(descriptor.digest());
                // One byte more than declared, so a longer file is noticed.
                let stream = bridge::file_stream(&path, 0, descriptor.size().saturating_add(1));
                Ok(stream.await?)
            }
            Source::Archive { archive } => Ok(archive.blob_stream(descriptor).await?),
        }
    }

    /// The manifest under the cosign signature tag `tag` of the artifact
    /// (named `name` in a layout), if there is one.
    pub(super) async fn signature_manifest(
        &self,
        client: &Client,
        tag: &str,
        name: &str,
    ) -> Result<Option<(FetchedManifest, Descriptor)>> {
        let entry = match self {
            Source::Registry { sources } => {
                let found = sources
                    .first_optional(async |endpoint| client.manifest(endpoint, tag).await)
                    .await?;
                return Ok(found.map(|(_, fetched)| {
                    let descriptor = descriptor_of(&fetched);
                    (fetched, descriptor)
                }));
            }
            Source::Layout { layout } => find_entry(&layout.entries()?, Some(name), ""),
            Source::Archive { archive } => find_entry(archive.entries(), Some(name), ""),
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let fetched = self.manifest(client, &entry).await?;
        Ok(Some((fetched, entry)))
    }

    /// The referrers of `subject` (API, fallback tag, or the manifests in
    /// a layout's index that name it).
    pub(super) async fn referrers(
        &self,
        client: &Client,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>> {
        match self {
            Source::Registry { sources } => {
                Ok(list_referrers(client, sources.origin(), subject, None)
                    .await?
                    .descriptors)
            }
            Source::Layout { layout } => {
                let entries = layout.entries()?;
                self.referrers_among(client, &entries, subject).await
            }
            Source::Archive { archive } => {
                let entries = archive.entries().to_vec();
                self.referrers_among(client, &entries, subject).await
            }
        }
    }

    async fn referrers_among(
        &self,
        client: &Client,
        entries: &[Descriptor],
        subject: &Digest,
    ) -> Result<Vec<Descriptor>> {
        let mut found = Vec::new();
        for entry in entries {
            if entry.media_type().to_string() != MEDIA_TYPE_IMAGE_MANIFEST
                || entry.digest() == subject
            {
                continue;
            }
            let document = self.manifest(client, entry).await?;
            let value: Value = match serde_json::from_slice(&document.bytes) {
                Ok(value) => value,
                Err(_) => continue,
            };
            let names_subject = value
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(Value::as_str)
                == Some(subject.as_ref());
            if names_subject {
                let mut descriptor = descriptor_of(&document);
                let annotations = value
                    .get("annotations")
                    .and_then(|a| serde_json::from_value(a.clone()).ok());
                descriptor.set_annotations(annotations);
                found.push(descriptor);
            }
        }
        Ok(found)
    }
}

/// The root manifest at one registry.
async fn registry_root(
    client: &Client,
    endpoint: &Endpoint,
    reference: &Reference,
) -> Result<FetchedManifest> {
    client.manifest(endpoint, &reference_tail(reference)).await
}
