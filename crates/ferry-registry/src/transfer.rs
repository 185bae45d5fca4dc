//! Moving artifacts between the local store and a registry: `pull` (from
//! the mirrors or the origin, blobs before the manifest before the name)
//! and `push` (blobs, then the manifest).

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use ferry_spec::Reference;
use ferry_spec::oci::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
use ferry_store::Store;

use crate::api::FetchedManifest;
use crate::client::{Access, Client, Endpoint};
use crate::download::{Downloaded, download_blob, install_all};
use crate::error::{ClientError, Missing, Result, join_error};
use crate::platform::{Platform, choose};
use crate::progress::TransferProgress;
use crate::signatures::{SignaturesMoved, push_signatures};
use crate::sources::ReadSources;
use crate::upload::BlobSource;

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Normalized reference.
    pub reference: String,
    /// Manifest digest (the platform's manifest when the tag was an index).
    pub digest: Digest,
    /// Blobs downloaded (not already present).
    pub downloaded: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// What a push sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Destination reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had (or mounted).
    pub skipped: usize,
    /// The local signatures of the manifest that went with it.
    pub signatures: SignaturesMoved,
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// The tag or digest to ask a registry for.
pub(crate) fn reference_tail(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// Non-distributable layers are never moved.
pub(crate) fn is_foreign(descriptor: &Descriptor) -> bool {
    let media_type = descriptor.media_type().to_string();
    media_type.contains(".nondistributable.") || media_type.contains(".foreign.")
}

/// The config and layers of a manifest, each once, without foreign layers.
pub(crate) fn blobs_of(manifest: &ImageManifest) -> Vec<Descriptor> {
    let mut seen = HashSet::new();
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .filter(|d| !is_foreign(d) && seen.insert(d.digest().clone()))
        .cloned()
        .collect()
}

/// Resolves `reference` to an image manifest from the first source that has
/// it, choosing a platform from an index; returns the sources from that one
/// on (where its blobs are read).
pub(crate) async fn resolve_manifest(
    client: &Client,
    sources: &ReadSources,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<(ReadSources, FetchedManifest, ImageManifest)> {
    let (position, (fetched, manifest)) = sources
        .first(async |endpoint| resolve_at(client, endpoint, reference, platform).await)
        .await?;
    Ok((sources.from_position(position), fetched, manifest))
}

/// [`resolve_manifest`] at one registry.
async fn resolve_at(
    client: &Client,
    endpoint: &Endpoint,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<(FetchedManifest, ImageManifest)> {
    let mut fetched = client
        .manifest(endpoint, &reference_tail(reference))
        .await?;
    if is_index(&fetched.media_type) {
        let index: ImageIndex =
            serde_json::from_slice(&fetched.bytes).map_err(|e| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("index: {e}"),
            })?;
        let wanted = platform.cloned().unwrap_or_else(Platform::host);
        let chosen = choose(index.manifests(), &wanted).ok_or_else(|| {
            ClientError::NotFound(Missing::Other(format!(
                "a manifest of {} for platform {wanted}",
                reference.whole()
            )))
        })?;
        fetched = client.manifest(endpoint, chosen.digest().as_ref()).await?;
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&fetched.bytes).map_err(|e| ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: format!("manifest: {e}"),
        })?;
    Ok((fetched, manifest))
}

/// Pulls `reference` into the store: blobs first (verified), then the
/// manifest, then the name. An interrupted pull resumes where it stopped.
pub async fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    platform: Option<&Platform>,
    concurrency: usize,
    progress: &dyn TransferProgress,
) -> Result<Pulled> {
    let sources = client.read_sources(&Endpoint::of(reference));
    let (sources, fetched, manifest) =
        resolve_manifest(client, &sources, reference, platform).await?;
    let ingest_store = store.clone();
    let _ingest = tokio::task::spawn_blocking(move || ingest_store.lock_ingest())
        .await
        .map_err(join_error("locking", store.root().display()))??;
    let blobs = blobs_of(&manifest);
    let mut downloads = stream::iter(blobs.iter())
        .map(|descriptor| download_blob(client, &sources, store, descriptor, progress))
        .buffer_unordered(concurrency.max(1));
    let mut results: Vec<Downloaded> = Vec::new();
    let mut failed = None;
    while let Some(result) = downloads.next().await {
        match result {
            Ok(downloaded) => results.push(downloaded),
            Err(error) => {
                failed = Some(error);
                break;
            }
        }
    }
    drop(downloads);
    let downloaded = results.iter().filter(|d| d.verified.is_some()).count();
    let fetched_bytes = results.iter().map(|d| d.bytes).sum();
    // Every blob durable under its name before the manifest names them;
    // the verified ones are kept when another failed (the next pull needs
    // them).
    install_all(
        store,
        results.into_iter().filter_map(|d| d.verified).collect(),
    )
    .await?;
    if let Some(error) = failed {
        return Err(error);
    }
    let mut descriptor = Descriptor::new(
        MediaType::from(fetched.media_type.as_str()),
        fetched.bytes.len() as u64,
        fetched.digest.clone(),
    );
    descriptor.set_artifact_type(manifest.artifact_type().clone());
    let name = local_name(reference);
    let (owned_store, bytes, expected, owned_name) = (
        store.clone(),
        fetched.bytes.clone(),
        fetched.digest.clone(),
        name.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let stored = owned_store.put_document(&bytes)?;
        if stored != expected {
            return Err(ClientError::Integrity {
                what: owned_name.whole(),
                reason: format!("manifest stored as {stored}, fetched as {expected}"),
            });
        }
        owned_store.set_reference(&owned_name, &descriptor)?;
        Ok(())
    })
    .await
    .map_err(join_error("writing", store.root().display()))??;
    Ok(Pulled {
        reference: name.whole(),
        digest: fetched.digest,
        downloaded,
        bytes: fetched_bytes,
    })
}

/// The name a pulled artifact gets in the store: the reference without a digest
/// when it has a tag, else as given.
fn local_name(reference: &Reference) -> Reference {
    match (reference.tag(), reference.digest()) {
        (Some(tag), Some(_)) => Reference::with_tag(
            reference.registry().to_string(),
            reference.repository().to_string(),
            tag.to_string(),
        ),
        _ => reference.clone(),
    }
}

/// Pushes an artifact from the store to `destination`. Blobs the registry
/// has are skipped; when the local name is another repository of the same
/// registry, blobs are mounted from there instead of uploaded. The
/// manifest's local signatures go with it (see
/// [`crate::signatures::push_signatures`]), also when the registry had the
/// manifest already.
pub async fn push(
    client: &Client,
    store: &Store,
    local: &str,
    destination: &Reference,
    concurrency: usize,
    progress: &dyn TransferProgress,
) -> Result<Pushed> {
    let resolved = store.resolve(local)?;
    let digest = resolved.descriptor.digest().clone();
    let local_name: Option<Reference> = resolved
        .reference
        .as_deref()
        .and_then(|name| name.parse().ok());
    let bytes = Bytes::from(store.read_document(&digest)?);
    let media_type = resolved.descriptor.media_type().to_string();
    let endpoint = Endpoint::of(destination);
    let tail = reference_tail(destination);
    // An unchanged artifact: the registry already has this exact manifest.
    if client
        .manifest_digest(&endpoint, &tail, Access::Push)
        .await?
        .is_some_and(|d| d == digest)
    {
        let signatures = push_signatures(
            client,
            store,
            local_name.as_ref(),
            destination,
            &digest,
            progress,
        )
        .await?;
        return Ok(Pushed {
            reference: destination.whole(),
            digest,
            uploaded: 0,
            skipped: 0,
            signatures,
        });
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid {
            registry: "local store".into(),
            reason: format!("manifest {digest}: {e}"),
        })?;
    let mount_from = same_registry_source(&resolved, destination);
    let blobs = blobs_of(&manifest);
    let outcomes: Vec<crate::upload::BlobOutcome> = stream::iter(blobs.iter())
        .map(|descriptor| {
            let source = BlobSource::File(store.blob_path(descriptor.digest()));
            client.push_blob(
                &endpoint,
                descriptor,
                source,
                mount_from.as_deref(),
                progress,
            )
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    client
        .put_manifest(&endpoint, &tail, &media_type, bytes)
        .await?;
    let uploaded = outcomes
        .iter()
        .filter(|o| matches!(o, crate::upload::BlobOutcome::Sent(_)))
        .count();
    let signatures = push_signatures(
        client,
        store,
        local_name.as_ref(),
        destination,
        &digest,
        progress,
    )
    .await?;
    Ok(Pushed {
        reference: destination.whole(),
        digest,
        uploaded,
        skipped: outcomes.len() - uploaded,
        signatures,
    })
}

/// When the local name of an artifact is another repository of the
/// destination's registry, its blobs can be mounted from there.
fn same_registry_source(
    resolved: &ferry_store::index::Resolved,
    destination: &Reference,
) -> Option<String> {
    let name = resolved.reference.as_deref()?;
    let source: Reference = name.parse().ok()?;
    (source.registry() == destination.registry() && source.repository() != destination.repository())
        .then(|| source.repository().to_string())
}
