//! `ferry copy`: an artifact moves between registries, OCI image layouts
//! (`oci:PATH[:TAG]`) and layout tarballs (`oci-archive:FILE[:TAG]`).
//!
//! The walk is the same for every pair: the root manifest (an index brings
//! its child manifests), every blob streamed from source to destination and
//! verified on the way, child manifests before their parents, the root last
//! under its name; with `recursive`, then the root's referrers (and theirs).
//! Between two repositories of one registry, blobs are mounted, not sent.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::{MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ferry_spec::oci::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
use ferry_store::StoreError;
use ferry_store::index::normalize_reference;
use ferry_store::layout::{LayoutDir, find_entry, split_path_and_tag};

use crate::api::FetchedManifest;
use crate::archive::{ArchiveReader, ArchiveWriter};
use crate::bridge::{self, ByteStream, consume_blocking};
use crate::client::{Access, Client, Endpoint, Request, status_error};
use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;
use crate::referrers::{
    FallbackPolicy, FallbackStore, add_to_fallback_index, fallback_tag, list_referrers,
    read_fallback,
};
use crate::transfer::{is_foreign, is_index, reference_tail};
use crate::upload::BlobOutcome;

/// Levels of referrers-of-referrers a recursive copy follows.
pub const MAX_REFERRER_DEPTH: usize = 8;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository on a registry (`host/repo:tag`, `host/repo@sha256:...`).
    Registry(Reference),
    /// An OCI image layout directory; the tag is a `ref.name` annotation.
    Layout {
        /// The layout's root.
        path: PathBuf,
        /// The name of the manifest in `index.json`.
        tag: Option<String>,
    },
    /// A tar of an OCI image layout.
    Archive {
        /// The tar file.
        path: PathBuf,
        /// The name of the manifest in its `index.json`.
        tag: Option<String>,
    },
}

impl Location {
    /// Parses `oci:PATH[:TAG]`, `oci-archive:FILE[:TAG]` or a registry
    /// reference (optionally prefixed `docker://`).
    pub fn parse(input: &str) -> Result<Location> {
        let local = |rest: &str, kind: &str| -> Result<(PathBuf, Option<String>)> {
            let (path, tag) = split_path_and_tag(rest);
            if path.as_os_str().is_empty() {
                return Err(ClientError::Config(format!(
                    "{input:?}: {kind} needs a path ({kind}PATH[:TAG])"
                )));
            }
            Ok((path, tag))
        };
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = local(rest, "oci-archive:")?;
            return Ok(Location::Archive { path, tag });
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (path, tag) = local(rest, "oci:")?;
            return Ok(Location::Layout { path, tag });
        }
        let reference = input.strip_prefix("docker://").unwrap_or(input);
        Ok(Location::Registry(normalize_reference(reference)?))
    }

    /// The name the artifact has here, if any.
    pub fn tag(&self) -> Option<String> {
        match self {
            Location::Registry(reference) => reference.tag().map(str::to_string),
            Location::Layout { tag, .. } | Location::Archive { tag, .. } => tag.clone(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local =
            |f: &mut fmt::Formatter<'_>, kind: &str, path: &PathBuf, tag: &Option<String>| {
                write!(f, "{kind}:{}", path.display())?;
                match tag {
                    Some(tag) => write!(f, ":{tag}"),
                    None => Ok(()),
                }
            };
        match self {
            Location::Registry(reference) => f.write_str(&reference.whole()),
            Location::Layout { path, tag } => local(f, "oci", path, tag),
            Location::Archive { path, tag } => local(f, "oci-archive", path, tag),
        }
    }
}

/// What `copy` is told.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Also copy referrers (signatures, SBOMs), recursively.
    pub recursive: bool,
    /// Blobs moved at once (an archive destination takes one at a time).
    pub concurrency: usize,
}

/// What a copy moved.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The source, as given.
    pub source: String,
    /// The destination, as given.
    pub destination: String,
    /// Digest of the root manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Manifests written (root, children of an index, referrers).
    pub manifests: usize,
    /// Referrers copied.
    pub referrers: usize,
    /// Blobs whose bytes were sent.
    pub sent: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Blobs the destination already had.
    pub present: usize,
    /// Bytes sent.
    pub bytes: u64,
}

/// Copies the artifact at `source` to `destination`.
pub async fn copy(
    client: &Client,
    source: &Location,
    destination: &Location,
    options: &CopyOptions,
    progress: &dyn TransferProgress,
) -> Result<Copied> {
    let src = Source::open(source).await?;
    // The source must resolve before anything is created at the destination.
    let root = src.root(client).await?;
    if let Location::Registry(reference) = destination
        && let Some(wanted) = reference.digest()
        && wanted != root.digest.as_ref()
    {
        return Err(ClientError::Integrity {
            what: destination.to_string(),
            reason: format!("the source manifest is {}", root.digest),
        });
    }
    let dst = Destination::open(destination).await?;
    let mount_from = match (&src, &dst) {
        (Source::Registry { endpoint: from, .. }, Destination::Registry { endpoint: to, .. })
            if from.registry == to.registry && from.repository != to.repository =>
        {
            Some(from.repository.clone())
        }
        _ => None,
    };
    let concurrency = match dst {
        Destination::Archive(_) => 1,
        _ => options.concurrency.max(1),
    };
    let run = Run {
        client,
        src: &src,
        dst: &dst,
        mount_from,
        concurrency,
        progress,
        seen: Mutex::new(std::collections::HashSet::new()),
        stats: Mutex::new(Stats::default()),
    };
    let root_descriptor = descriptor_of(&root);
    run.seen_first(root.digest.clone());
    run.copy_tree(&root).await?;
    let name = destination.tag().or_else(|| source.tag());
    dst.put_root(client, &root, &root_descriptor, name.as_deref())
        .await?;
    run.stats().manifests += 1;
    if options.recursive {
        run.copy_referrers(root.digest.clone(), 0).await?;
    }
    let stats = run.stats().clone();
    drop(run);
    dst.finish().await?;
    Ok(Copied {
        source: source.to_string(),
        destination: destination.to_string(),
        digest: root.digest,
        media_type: root.media_type,
        manifests: stats.manifests,
        referrers: stats.referrers,
        sent: stats.sent,
        mounted: stats.mounted,
        present: stats.present,
        bytes: stats.bytes,
    })
}

#[derive(Debug, Clone, Default)]
struct Stats {
    manifests: usize,
    referrers: usize,
    sent: usize,
    mounted: usize,
    present: usize,
    bytes: u64,
}

/// The descriptor of a fetched manifest, with its `artifactType`.
fn descriptor_of(document: &FetchedManifest) -> Descriptor {
    let mut descriptor = Descriptor::new(
        MediaType::from(document.media_type.as_str()),
        document.bytes.len() as u64,
        document.digest.clone(),
    );
    let artifact_type = serde_json::from_slice::<Value>(&document.bytes)
        .ok()
        .and_then(|v| v.get("artifactType")?.as_str().map(str::to_string));
    descriptor.set_artifact_type(artifact_type.map(|t| MediaType::from(t.as_str())));
    descriptor
}

/// The media type of manifest bytes: their `mediaType`, else the
/// descriptor's, else an image manifest.
fn media_type_of(bytes: &[u8], descriptor: Option<&Descriptor>) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .or_else(|| descriptor.map(|d| d.media_type().to_string()))
        .unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string())
}

// ---------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------

/// Where an artifact is read.
enum Source {
    Registry {
        endpoint: Endpoint,
        reference: Reference,
    },
    Layout {
        layout: LayoutDir,
        tag: Option<String>,
    },
    Archive {
        archive: Box<ArchiveReader>,
        tag: Option<String>,
    },
}

impl Source {
    async fn open(location: &Location) -> Result<Source> {
        Ok(match location {
            Location::Registry(reference) => Source::Registry {
                endpoint: Endpoint::of(reference),
                reference: reference.clone(),
            },
            Location::Layout { path, tag } => Source::Layout {
                layout: LayoutDir::open(path)?,
                tag: tag.clone(),
            },
            Location::Archive { path, tag } => {
                let owned = path.clone();
                let archive = tokio::task::spawn_blocking(move || ArchiveReader::open(&owned))
                    .await
                    .map_err(|e| ClientError::Io {
                        action: "reading",
                        path: path.display().to_string(),
                        source: std::io::Error::other(e.to_string()),
                    })??;
                Source::Archive {
                    archive: Box::new(archive),
                    tag: tag.clone(),
                }
            }
        })
    }

    async fn root(&self, client: &Client) -> Result<FetchedManifest> {
        match self {
            Source::Registry {
                endpoint,
                reference,
            } => client.manifest(endpoint, &reference_tail(reference)).await,
            Source::Layout { layout, tag } => {
                let entry = layout.find(tag.as_deref())?;
                self.manifest(client, &entry).await
            }
            Source::Archive { archive, tag } => {
                let location = format!("oci-archive:{}", archive.path().display());
                let entry = find_entry(archive.entries(), tag.as_deref(), &location)?;
                self.manifest(client, &entry).await
            }
        }
    }

    /// A manifest by descriptor, verified against its digest and size.
    async fn manifest(&self, client: &Client, descriptor: &Descriptor) -> Result<FetchedManifest> {
        let digest = descriptor.digest();
        let fetched = match self {
            Source::Registry { endpoint, .. } => client.manifest(endpoint, digest.as_ref()).await?,
            Source::Layout { layout, .. } => {
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
            Source::Archive { archive, .. } => {
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
    async fn blob(&self, client: &Client, descriptor: &Descriptor) -> Result<ByteStream> {
        match self {
            Source::Registry { endpoint, .. } => {
                registry_blob_stream(client, endpoint, descriptor).await
            }
            Source::Layout { layout, .. } => {
                let path = layout.store().blob_path(descriptor.digest());
                // One byte more than declared, so a longer file is noticed.
                bridge::file_stream(&path, 0, descriptor.size().saturating_add(1)).await
            }
            Source::Archive { archive, .. } => archive.blob_stream(descriptor).await,
        }
    }

    /// The referrers of `subject` (API, fallback tag, or the manifests in
    /// a layout's index that name it).
    async fn referrers(&self, client: &Client, subject: &Digest) -> Result<Vec<Descriptor>> {
        match self {
            Source::Registry { endpoint, .. } => {
                Ok(list_referrers(client, endpoint, subject, None)
                    .await?
                    .descriptors)
            }
            Source::Layout { layout, .. } => {
                let entries = layout.entries()?;
                self.referrers_among(client, &entries, subject).await
            }
            Source::Archive { archive, .. } => {
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

/// `GET` a blob from a registry as a stream (not buffered, not stored).
pub async fn registry_blob_stream(
    client: &Client,
    endpoint: &Endpoint,
    descriptor: &Descriptor,
) -> Result<ByteStream> {
    let digest = descriptor.digest();
    let request = Request::new(
        Method::GET,
        format!("/v2/{}/blobs/{digest}", endpoint.repository),
        Access::Pull,
        format!("downloading {digest}"),
    );
    let response = client.send(endpoint, &request).await?;
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            return Err(ClientError::NotFound {
                what: format!(
                    "blob {digest} in {}/{}",
                    endpoint.registry, endpoint.repository
                ),
            });
        }
        _ => return Err(status_error(endpoint, &request.action, response).await),
    }
    if let Some(length) = response.content_length()
        && length != descriptor.size()
    {
        return Err(ClientError::Integrity {
            what: format!("blob {digest}"),
            reason: format!(
                "{} announces {length} bytes, the descriptor says {}",
                endpoint.registry,
                descriptor.size()
            ),
        });
    }
    let registry = endpoint.registry.clone();
    Ok(Box::pin(response.bytes_stream().map(move |chunk| {
        chunk.map_err(|e| std::io::Error::other(format!("{registry}: {e}")))
    })))
}

// ---------------------------------------------------------------------------
// Destinations
// ---------------------------------------------------------------------------

/// Where an artifact is written.
enum Destination {
    Registry {
        endpoint: Endpoint,
        reference: Reference,
    },
    Layout(LayoutDir),
    Archive(ArchiveWriter),
}

impl Destination {
    async fn open(location: &Location) -> Result<Destination> {
        Ok(match location {
            Location::Registry(reference) => Destination::Registry {
                endpoint: Endpoint::of(reference),
                reference: reference.clone(),
            },
            Location::Layout { path, .. } => Destination::Layout(LayoutDir::create(path)?),
            Location::Archive { path, .. } => Destination::Archive(ArchiveWriter::create(path)?),
        })
    }

    async fn put_blob(&self, run: &Run<'_>, descriptor: &Descriptor) -> Result<BlobOutcome> {
        let client = run.client;
        let digest = descriptor.digest();
        match self {
            Destination::Registry { endpoint, .. } => {
                client
                    .push_blob_stream(
                        endpoint,
                        descriptor,
                        run.mount_from.as_deref(),
                        || run.src.blob(client, descriptor),
                        run.progress,
                    )
                    .await
            }
            Destination::Layout(layout) => {
                if !ferry_spec::digest::is_sha256(digest) {
                    return Err(ClientError::Integrity {
                        what: digest.to_string(),
                        reason: "only sha256 blobs can be written to a layout by ferry".into(),
                    });
                }
                if layout.store().has_blob(digest) {
                    run.progress.skipped(digest, descriptor.size());
                    return Ok(BlobOutcome::Present);
                }
                let stream = run.src.blob(client, descriptor).await?;
                let store = layout.store().clone();
                let owned = descriptor.clone();
                run.progress.blob_started(digest, descriptor.size());
                consume_blocking(stream, digest, run.progress, move |reader| {
                    write_layout_blob(&store, &owned, reader)
                })
                .await?;
                run.progress.blob_done(digest);
                Ok(BlobOutcome::Sent(descriptor.size()))
            }
            Destination::Archive(archive) => {
                if archive.has_blob(digest) {
                    run.progress.skipped(digest, descriptor.size());
                    return Ok(BlobOutcome::Present);
                }
                let stream = run.src.blob(client, descriptor).await?;
                archive.put_blob(descriptor, stream, run.progress).await
            }
        }
    }

    /// Writes a manifest that is not the root: by digest, plus, for a
    /// referrer, whatever lists it (an unnamed index entry in a layout, the
    /// fallback tag on a registry that did not index its subject).
    async fn put_manifest(
        &self,
        client: &Client,
        document: &FetchedManifest,
        descriptor: &Descriptor,
        referrer_of: Option<&Digest>,
    ) -> Result<()> {
        match self {
            Destination::Registry { endpoint, .. } => {
                let pushed = client
                    .put_manifest(
                        endpoint,
                        document.digest.as_ref(),
                        &document.media_type,
                        document.bytes.clone(),
                    )
                    .await?;
                if let Some(subject) = referrer_of
                    && !pushed.subject_indexed
                {
                    let tag = fallback_tag(subject);
                    let entry = serde_json::to_value(descriptor).map_err(|e| {
                        ClientError::Config(format!("cannot serialize a referrer descriptor: {e}"))
                    })?;
                    let store = FallbackTag {
                        client,
                        endpoint,
                        tag: &tag,
                    };
                    add_to_fallback_index(&store, &tag, &entry, &FallbackPolicy::default()).await?;
                }
                Ok(())
            }
            Destination::Layout(layout) => {
                let stored = layout.store().put_document(&document.bytes)?;
                if stored != document.digest {
                    return Err(ClientError::Integrity {
                        what: format!("manifest {}", document.digest),
                        reason: format!("stored as {stored}"),
                    });
                }
                if referrer_of.is_some() {
                    layout.set_entry(None, descriptor)?;
                }
                Ok(())
            }
            Destination::Archive(archive) => {
                archive.put_document(descriptor, &document.bytes).await?;
                if referrer_of.is_some() {
                    archive.set_entry(None, descriptor)?;
                }
                Ok(())
            }
        }
    }

    /// Writes the root manifest under its name.
    async fn put_root(
        &self,
        client: &Client,
        document: &FetchedManifest,
        descriptor: &Descriptor,
        name: Option<&str>,
    ) -> Result<()> {
        match self {
            Destination::Registry {
                endpoint,
                reference,
            } => {
                client
                    .put_manifest(
                        endpoint,
                        &reference_tail(reference),
                        &document.media_type,
                        document.bytes.clone(),
                    )
                    .await?;
                Ok(())
            }
            Destination::Layout(layout) => {
                self.put_manifest(client, document, descriptor, None)
                    .await?;
                layout.set_entry(name, descriptor)?;
                Ok(())
            }
            Destination::Archive(archive) => {
                archive.put_document(descriptor, &document.bytes).await?;
                archive.set_entry(name, descriptor)?;
                Ok(())
            }
        }
    }

    async fn finish(self) -> Result<()> {
        if let Destination::Archive(archive) = self {
            archive.finish().await?;
        }
        Ok(())
    }
}

/// Writes a blob into a layout through the store's blob writer (temp file,
/// hash, verify, fsync, rename): a short, long or different source leaves
/// nothing behind.
fn write_layout_blob(
    store: &ferry_store::Store,
    descriptor: &Descriptor,
    reader: &mut dyn std::io::Read,
) -> Result<()> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    let integrity = |reason: String| ClientError::Integrity {
        what: format!("blob {digest}"),
        reason,
    };
    let mut writer = store.blob_writer()?;
    let temp = writer.temp_path().display().to_string();
    let copied = std::io::copy(
        &mut std::io::Read::take(&mut *reader, size.saturating_add(1)),
        &mut writer,
    )
    .map_err(crate::error::io_error("writing", &temp))?;
    if copied != size {
        return Err(integrity(format!(
            "the source sent {copied} bytes, the descriptor says {size}"
        )));
    }
    match writer.commit(Some(digest)) {
        Ok(_) => Ok(()),
        Err(StoreError::DigestMismatch { actual, .. }) => Err(integrity(format!(
            "the source's content hashes to {actual}"
        ))),
        Err(other) => Err(other.into()),
    }
}

/// The fallback tag of a subject on the destination registry.
struct FallbackTag<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    tag: &'a str,
}

impl FallbackStore for FallbackTag<'_> {
    async fn read(&self) -> Result<Option<Value>> {
        read_fallback(self.client, self.endpoint, self.tag).await
    }

    async fn write(&self, document: Vec<u8>) -> Result<()> {
        self.client
            .put_manifest(
                self.endpoint,
                self.tag,
                MEDIA_TYPE_IMAGE_INDEX,
                Bytes::from(document),
            )
            .await
            .map(|_| ())
    }
}

// ---------------------------------------------------------------------------
// The walk
// ---------------------------------------------------------------------------

struct Run<'a> {
    client: &'a Client,
    src: &'a Source,
    dst: &'a Destination,
    mount_from: Option<String>,
    concurrency: usize,
    progress: &'a dyn TransferProgress,
    /// Manifests already copied (or being copied).
    seen: Mutex<std::collections::HashSet<Digest>>,
    stats: Mutex<Stats>,
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

impl<'a> Run<'a> {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True the first time a manifest digest is seen.
    fn seen_first(&self, digest: Digest) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest)
    }

    /// Copies what `document` references (blobs, or child manifests with
    /// theirs); not `document` itself.
    fn copy_tree(&'a self, document: &'a FetchedManifest) -> Boxed<'a> {
        Box::pin(async move {
            let what = format!("manifest {}", document.digest);
            let invalid = |e: serde_json::Error| ClientError::Invalid {
                registry: "the source".into(),
                reason: format!("{what}: {e}"),
            };
            if is_index(&document.media_type) {
                let index: ImageIndex = serde_json::from_slice(&document.bytes).map_err(invalid)?;
                for child in index.manifests() {
                    if !self.seen_first(child.digest().clone()) {
                        continue;
                    }
                    let fetched = self.src.manifest(self.client, child).await?;
                    self.copy_tree(&fetched).await?;
                    self.dst
                        .put_manifest(self.client, &fetched, child, None)
                        .await?;
                    self.stats().manifests += 1;
                }
                return Ok(());
            }
            let manifest: ImageManifest =
                serde_json::from_slice(&document.bytes).map_err(invalid)?;
            let mut blobs: Vec<Descriptor> = vec![manifest.config().clone()];
            blobs.extend(manifest.layers().iter().cloned());
            blobs.retain(|d| !is_foreign(d));
            let mut unique = std::collections::HashSet::new();
            blobs.retain(|d| unique.insert(d.digest().clone()));
            let outcomes: Vec<BlobOutcome> = stream::iter(blobs.iter())
                .map(|descriptor| self.dst.put_blob(self, descriptor))
                .buffer_unordered(self.concurrency)
                .try_collect()
                .await?;
            let mut stats = self.stats();
            for outcome in outcomes {
                match outcome {
                    BlobOutcome::Sent(bytes) => {
                        stats.sent += 1;
                        stats.bytes += bytes;
                    }
                    BlobOutcome::Mounted => stats.mounted += 1,
                    BlobOutcome::Present => stats.present += 1,
                }
            }
            Ok(())
        })
    }

    /// Copies the referrers of `subject`, then theirs.
    fn copy_referrers(&'a self, subject: Digest, depth: usize) -> Boxed<'a> {
        Box::pin(async move {
            if depth >= MAX_REFERRER_DEPTH {
                tracing::warn!(
                    "referrers deeper than {MAX_REFERRER_DEPTH} levels below {subject} are not copied"
                );
                return Ok(());
            }
            for referrer in self.src.referrers(self.client, &subject).await? {
                if !self.seen_first(referrer.digest().clone()) {
                    continue;
                }
                let fetched = self.src.manifest(self.client, &referrer).await?;
                self.copy_tree(&fetched).await?;
                self.dst
                    .put_manifest(self.client, &fetched, &referrer, Some(&subject))
                    .await?;
                {
                    let mut stats = self.stats();
                    stats.manifests += 1;
                    stats.referrers += 1;
                }
                self.copy_referrers(referrer.digest().clone(), depth + 1)
                    .await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_each_kind() {
        assert_eq!(
            Location::parse("oci:/no/such/layout:v1").unwrap(),
            Location::Layout {
                path: "/no/such/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Location::parse("oci:/no/such/artifacts:localhost:5000/m:v1").unwrap(),
            Location::Layout {
                path: "/no/such/artifacts".into(),
                tag: Some("localhost:5000/m:v1".into())
            }
        );
        assert_eq!(
            Location::parse("oci-archive:/no/such/m.tar").unwrap(),
            Location::Archive {
                path: "/no/such/m.tar".into(),
                tag: None
            }
        );
        let Location::Registry(reference) =
            Location::parse("docker://localhost:5000/m:v2").unwrap()
        else {
            panic!("a registry reference");
        };
        assert_eq!(reference.whole(), "localhost:5000/m:v2");
        assert!(Location::parse("oci:").is_err());
        assert!(Location::parse("Not A Reference").is_err());
    }

    #[test]
    fn locations_print_as_they_parse() {
        for text in [
            "oci:/no/such/layout:v1",
            "oci-archive:/no/such/m.tar",
            "localhost:5000/m:v1",
        ] {
            assert_eq!(Location::parse(text).unwrap().to_string(), text);
        }
    }
}
