//! Where a copy writes: a registry (the origin, never a mirror), an OCI
//! layout (the store's blob writer: temp file, verify, fsync, rename), or a
//! layout archive. File work runs on blocking threads.

use ferry_spec::Reference;
use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::StoreError;
use ferry_store::layout::LayoutDir;

use super::Location;
use super::walk::Run;
use crate::api::FetchedManifest;
use crate::archive::ArchiveWriter;
use crate::bridge::consume_blocking;
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result, join_error};
use crate::referrers::fallback::{FallbackPolicy, RegistryTag, add_to_fallback_index};
use crate::referrers::fallback_tag;
use crate::transfer::reference_tail;
use crate::upload::{BlobOutcome, BlobSource};

/// Where an artifact is written.
pub(super) enum Destination {
    Registry {
        endpoint: Endpoint,
        reference: Reference,
    },
    Layout(LayoutDir),
    Archive(ArchiveWriter),
}

impl Destination {
    pub(super) async fn open(location: &Location) -> Result<Destination> {
        Ok(match location {
            Location::Registry(reference) => Destination::Registry {
                endpoint: Endpoint::of(reference),
                reference: reference.clone(),
            },
            Location::Layout { path, .. } => {
                let owned = path.clone();
                let layout = tokio::task::spawn_blocking(move || LayoutDir::create(&owned))
                    .await
                    .map_err(join_error("creating", path.display()))??;
                Destination::Layout(layout)
            }
            Location::Archive { path, .. } => {
                let owned = path.clone();
                let archive = tokio::task::spawn_blocking(move || ArchiveWriter::create(&owned))
                    .await
                    .map_err(join_error("creating", path.display()))??;
                Destination::Archive(archive)
            }
        })
    }

    /// The registry repository written, when the destination is one.
    pub(super) fn registry(&self) -> Option<&Endpoint> {
        match self {
            Destination::Registry { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }

    pub(super) async fn put_blob(
        &self,
        run: &Run<'_>,
        descriptor: &Descriptor,
    ) -> Result<BlobOutcome> {
        let client = run.client;
        let digest = descriptor.digest();
        match self {
            Destination::Registry { endpoint, .. } => {
                let source = BlobSource::Stream(Box::new(|| {
                    Box::pin(run.src.blob(client, descriptor, run.progress))
                }));
                client
                    .push_blob(
                        endpoint,
                        descriptor,
                        source,
                        run.mount_from.as_deref(),
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
                let stream = run.src.blob(client, descriptor, run.progress).await?;
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
                let stream = run.src.blob(client, descriptor, run.progress).await?;
                archive.put_blob(descriptor, stream, run.progress).await
            }
        }
    }

    /// Writes a manifest that is not the root: by digest, plus, for a
    /// referrer, whatever lists it (an unnamed index entry in a layout, the
    /// fallback tag on a registry that did not index its subject).
    pub(super) async fn put_manifest(
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
                    let entry = serde_json::to_value(descriptor)
                        .map_err(|e| ClientError::encode("a referrer descriptor", e))?;
                    let store = RegistryTag::new(client, endpoint, &tag);
                    add_to_fallback_index(&store, &tag, &entry, &FallbackPolicy::default()).await?;
                }
                Ok(())
            }
            Destination::Layout(layout) => {
                let name = referrer_of.is_some().then_some(None);
                layout_put(layout, document, descriptor, name).await
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

    /// Writes a cosign signature manifest under `tag` on a registry, or
    /// named `name` in a layout or archive (replacing what was there).
    pub(super) async fn put_signature_tag(
        &self,
        client: &Client,
        document: &FetchedManifest,
        descriptor: &Descriptor,
        tag: &str,
        name: &str,
    ) -> Result<()> {
        match self {
            Destination::Registry { endpoint, .. } => {
                client
                    .put_manifest(endpoint, tag, &document.media_type, document.bytes.clone())
                    .await?;
                Ok(())
            }
            Destination::Layout(layout) => {
                layout_put(layout, document, descriptor, Some(Some(name.to_string()))).await
            }
            Destination::Archive(archive) => {
                archive.put_document(descriptor, &document.bytes).await?;
                archive.set_entry(Some(name), descriptor)?;
                Ok(())
            }
        }
    }

    /// Writes the root manifest under its name.
    pub(super) async fn put_root(
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
                layout_put(layout, document, descriptor, Some(name.map(str::to_string))).await
            }
            Destination::Archive(archive) => {
                archive.put_document(descriptor, &document.bytes).await?;
                archive.set_entry(name, descriptor)?;
                Ok(())
            }
        }
    }

    pub(super) async fn finish(self) -> Result<()> {
        if let Destination::Archive(archive) = self {
            archive.finish().await?;
        }
        Ok(())
    }
}

/// Stores a manifest in a layout (on a blocking thread: it is fsynced) and,
/// with `entry`, lists it in `index.json` under that name (or unnamed).
async fn layout_put(
    layout: &LayoutDir,
    document: &FetchedManifest,
    descriptor: &Descriptor,
    entry: Option<Option<String>>,
) -> Result<()> {
    let (layout, bytes, expected, descriptor) = (
        layout.clone(),
        document.bytes.clone(),
        document.digest.clone(),
        descriptor.clone(),
    );
    let path = layout.path();
    tokio::task::spawn_blocking(move || {
        let stored = layout.store().put_document(&bytes)?;
        if stored != expected {
            return Err(ClientError::Integrity {
                what: format!("manifest {expected}"),
                reason: format!("stored as {stored}"),
            });
        }
        if let Some(name) = entry {
            layout.set_entry(name.as_deref(), &descriptor)?;
        }
        Ok(())
    })
    .await
    .map_err(join_error("writing", path.display()))?
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
