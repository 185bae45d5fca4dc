//! Signatures travelling with their artifact: `push` carries the local
//! ones to the registry, a pull brings the registry's into the store.
//! Bundle referrers travel verbatim; legacy signatures are merged into the
//! `.sig` tag at the other end, so signatures already there are kept.

use bytes::Bytes;
use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST;
use ferry_spec::oci::{Descriptor, Digest, ImageManifest};
use ferry_spec::signature::{BUNDLE_MEDIA_TYPE, signature_tag};
use ferry_store::Store;

use super::formats::{
    LegacyLayer, bundle_layer_of, check_count, legacy_layers, parse_sig_manifest,
};
use super::local::{add_to_local_signature_tag, local_bundle_referrers, signature_name};
use super::remote::add_to_signature_tag;
use super::{MAX_BUNDLE_BYTES, MAX_PAYLOAD_BYTES};
use crate::client::{Client, Endpoint};
use crate::download::download_and_install;
use crate::error::{ClientError, Result, join_error};
use crate::progress::{NoProgress, TransferProgress};
use crate::referrers::fallback::{
    FallbackPolicy, RegistryTag, add_to_fallback_index, put_manifest_through_blob_races,
};
use crate::referrers::{fallback_tag, list_referrers};
use crate::transfer::blobs_of;
use crate::upload::BlobSource;

/// What moved with an artifact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignaturesMoved {
    /// Bundle referrers written.
    pub bundles: usize,
    /// Legacy signatures the other end's `.sig` tag holds now (0 when the
    /// tag was not touched).
    pub legacy: usize,
}

/// Pushes the store's signatures of `manifest` (stored under the local name
/// `local`, `host/repo:tag`) to `destination`'s repository: its bundle
/// referrers (with the fallback tag where the registry lacks the referrers
/// API) and the legacy signatures of its `.sig` name, added to the
/// registry's `.sig` tag. Without local signatures nothing is sent.
pub async fn push_signatures(
    client: &Client,
    store: &Store,
    local: Option<&Reference>,
    destination: &Reference,
    manifest: &Digest,
    progress: &dyn TransferProgress,
) -> Result<SignaturesMoved> {
    let endpoint = Endpoint::of(destination);
    let (owned, digest) = (store.clone(), manifest.clone());
    let referrers = tokio::task::spawn_blocking(move || local_bundle_referrers(&owned, &digest))
        .await
        .map_err(join_error("reading", store.root().display()))??;
    let mut moved = SignaturesMoved::default();
    for (descriptor, _) in referrers {
        let bytes = store.read_document(descriptor.digest())?;
        push_referrer(
            client,
            store,
            &endpoint,
            manifest,
            &descriptor,
            bytes,
            progress,
        )
        .await?;
        moved.bundles += 1;
    }
    let Some(local) = local else {
        return Ok(moved);
    };
    let name = signature_name(local, manifest)?;
    let resolved = match store.resolve(&name.whole()) {
        Ok(resolved) => resolved,
        Err(ferry_store::StoreError::NotFound(_)) => return Ok(moved),
        Err(error) => return Err(error.into()),
    };
    let bytes = store.read_document(resolved.descriptor.digest())?;
    let document = parse_sig_manifest(&bytes, resolved.descriptor.media_type().as_ref())
        .map_err(|reason| ClientError::invalid_input(format!("{}: {reason}", name.whole())))?;
    let layers = legacy_layers(&document);
    if layers.is_empty() {
        return Ok(moved);
    }
    for LegacyLayer { descriptor, .. } in &layers {
        client
            .push_blob(
                &endpoint,
                descriptor,
                BlobSource::File(store.blob_path(descriptor.digest())),
                None,
                progress,
            )
            .await?;
    }
    let values: Vec<Value> = layers.into_iter().map(|l| l.raw).collect();
    moved.legacy = values.len();
    add_to_signature_tag(client, &endpoint, manifest, values).await?;
    Ok(moved)
}

/// Pushes one bundle referrer verbatim: its blobs, then its manifest by
/// digest, then the fallback tag when the registry did not index it.
async fn push_referrer(
    client: &Client,
    store: &Store,
    endpoint: &Endpoint,
    subject: &Digest,
    descriptor: &Descriptor,
    bytes: Vec<u8>,
    progress: &dyn TransferProgress,
) -> Result<()> {
    let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| {
        ClientError::invalid_input(format!(
            "referrer {} in the store: {e}",
            descriptor.digest()
        ))
    })?;
    for blob in blobs_of(&manifest) {
        let source = BlobSource::File(store.blob_path(blob.digest()));
        client
            .push_blob(endpoint, &blob, source, None, progress)
            .await?;
    }
    let pushed = put_manifest_through_blob_races(
        client,
        endpoint,
        descriptor.digest().as_ref(),
        MEDIA_TYPE_IMAGE_MANIFEST,
        Bytes::from(bytes),
        &FallbackPolicy::default().backoff,
    )
    .await?;
    if !pushed.subject_indexed {
        let tag = fallback_tag(subject);
        let entry = serde_json::to_value(descriptor)
            .map_err(|e| ClientError::encode("a referrer descriptor", e))?;
        let fallback = RegistryTag::new(client, endpoint, &tag);
        add_to_fallback_index(&fallback, &tag, &entry, &FallbackPolicy::default()).await?;
    }
    Ok(())
}

/// Brings the registry's signatures of `manifest` (in `reference`'s
/// repository, read through its mirrors) into the store: bundle referrers
/// as unnamed entries, legacy signatures added to the local `.sig` name.
/// Limits are those of [`super::find_signatures`].
pub async fn pull_signatures(
    client: &Client,
    store: &Store,
    reference: &Reference,
    manifest: &Digest,
) -> Result<SignaturesMoved> {
    let endpoint = Endpoint::of(reference);
    let sources = client.read_sources(&endpoint);
    let ingest_store = store.clone();
    let _ingest = tokio::task::spawn_blocking(move || ingest_store.lock_ingest())
        .await
        .map_err(join_error("locking", store.root().display()))??;
    let mut moved = SignaturesMoved::default();
    let listed = list_referrers(client, &endpoint, manifest, Some(BUNDLE_MEDIA_TYPE))
        .await?
        .descriptors;
    check_count(listed.len(), manifest)?;
    for referrer in listed {
        let digest = referrer.digest();
        let (_, fetched) = sources
            .first(async |at| client.manifest(at, digest.as_ref()).await)
            .await?;
        if let Err(reason) = bundle_layer_of(&fetched.bytes, manifest) {
            tracing::warn!("referrer {digest} of {manifest} is skipped: {reason}");
            continue;
        }
        let parsed: ImageManifest =
            serde_json::from_slice(&fetched.bytes).map_err(|e| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("referrer {digest}: {e}"),
            })?;
        for blob in blobs_of(&parsed) {
            check_size(&blob, MAX_BUNDLE_BYTES)?;
            download_and_install(client, &sources, store, &blob, &NoProgress).await?;
        }
        let mut descriptor = referrer.clone();
        descriptor.set_artifact_type(parsed.artifact_type().clone());
        descriptor.set_annotations(parsed.annotations().clone());
        let (owned, bytes) = (store.clone(), fetched.bytes.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            owned.put_document(&bytes)?;
            owned.add_unnamed(&descriptor)?;
            Ok(())
        })
        .await
        .map_err(join_error("writing", store.root().display()))??;
        moved.bundles += 1;
    }
    let Some(tag) = signature_tag(manifest) else {
        return Ok(moved);
    };
    let Some((position, fetched)) = sources
        .first_optional(async |at| client.manifest(at, &tag).await)
        .await?
    else {
        return Ok(moved);
    };
    let document = parse_sig_manifest(&fetched.bytes, &fetched.media_type).map_err(|reason| {
        ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: format!("signature tag {tag}: {reason}"),
        }
    })?;
    let layers = legacy_layers(&document);
    check_count(moved.bundles + layers.len(), manifest)?;
    let sources = sources.from_position(position);
    for LegacyLayer { descriptor, .. } in &layers {
        check_size(descriptor, MAX_PAYLOAD_BYTES)?;
        download_and_install(client, &sources, store, descriptor, &NoProgress).await?;
    }
    let values: Vec<Value> = layers.into_iter().map(|l| l.raw).collect();
    moved.legacy = values.len();
    let name = signature_name(reference, manifest)?;
    let owned = store.clone();
    tokio::task::spawn_blocking(move || add_to_local_signature_tag(&owned, &name, &values))
        .await
        .map_err(join_error("writing", store.root().display()))??;
    Ok(moved)
}

/// Refuses a signature blob over `limit` before it is fetched.
fn check_size(descriptor: &Descriptor, limit: u64) -> Result<()> {
    if descriptor.size() > limit {
        return Err(ClientError::Integrity {
            what: format!("blob {}", descriptor.digest()),
            reason: format!(
                "{} bytes is more than the {limit} bytes such a document may be",
                descriptor.size()
            ),
        });
    }
    Ok(())
}
