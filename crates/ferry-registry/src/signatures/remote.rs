//! Signatures on a registry: found through the mirrors, written to the
//! origin.

use bytes::Bytes;
use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST;
use ferry_spec::oci::{Descriptor, Digest};
use ferry_spec::signature::{BUNDLE_MEDIA_TYPE, signature_tag};

use super::formats::{
    self, LegacyLayer, bundle_annotations, check_count, holds_layer, legacy_layers,
    parse_sig_manifest, with_layers,
};
use super::{MAX_BUNDLE_BYTES, MAX_PAYLOAD_BYTES, SignatureCandidate};
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::progress::NoProgress;
use crate::referrers::attach::{LayerContent, ReferrerArtifact, attach_artifact};
use crate::referrers::fallback::{
    FallbackPolicy, TagUpdate, put_manifest_through_blob_races, update_tag_until_it_stays,
};
use crate::referrers::list_referrers;
use crate::sources::ReadSources;
use crate::upload::BlobSource;

/// Every signature candidate of `manifest` in `repository` (read from its
/// mirrors or the registry): bundle referrers, then the layers of the
/// `.sig` tag (a missing tag is no signature, not an error). Malformed
/// referrers and layers that are not signatures are skipped; limits
/// exceeded are errors.
pub async fn find_signatures(
    client: &Client,
    repository: &Endpoint,
    manifest: &Digest,
) -> Result<Vec<SignatureCandidate>> {
    let sources = client.read_sources(repository);
    let mut found = find_bundles(client, &sources, manifest).await?;
    let legacy = find_legacy(client, &sources, manifest, found.len()).await?;
    found.extend(legacy);
    Ok(found)
}

/// The bundle referrers of `manifest`.
async fn find_bundles(
    client: &Client,
    sources: &ReadSources,
    manifest: &Digest,
) -> Result<Vec<SignatureCandidate>> {
    let listed = list_referrers(client, sources.origin(), manifest, Some(BUNDLE_MEDIA_TYPE))
        .await?
        .descriptors;
    check_count(listed.len(), manifest)?;
    let mut found = Vec::with_capacity(listed.len());
    for referrer in listed {
        let digest = referrer.digest();
        // A fallback tag can list a referrer deleted since: skip it.
        let Some((position, fetched)) = sources
            .first_optional(async |endpoint| client.manifest(endpoint, digest.as_ref()).await)
            .await?
        else {
            tracing::warn!("referrer {digest} of {manifest} is listed but missing");
            continue;
        };
        let layer = match formats::bundle_layer_of(&fetched.bytes, manifest) {
            Ok(layer) => layer,
            Err(reason) => {
                tracing::warn!("referrer {digest} of {manifest} is skipped: {reason}");
                continue;
            }
        };
        let (_, bytes) = sources
            .from_position(position)
            .first(async |endpoint| {
                client
                    .blob_document_within(endpoint, &layer, MAX_BUNDLE_BYTES)
                    .await
            })
            .await?;
        found.push(SignatureCandidate::Bundle {
            referrer: digest.clone(),
            bytes,
            predicate_type: formats::announced_predicate_type(&fetched.bytes),
        });
    }
    Ok(found)
}

/// The legacy signatures under `manifest`'s `.sig` tag; `already` counts
/// the candidates found before.
async fn find_legacy(
    client: &Client,
    sources: &ReadSources,
    manifest: &Digest,
    already: usize,
) -> Result<Vec<SignatureCandidate>> {
    let Some(tag) = signature_tag(manifest) else {
        return Ok(Vec::new());
    };
    let Some((position, fetched)) = sources
        .first_optional(async |endpoint| client.manifest(endpoint, &tag).await)
        .await?
    else {
        return Ok(Vec::new());
    };
    let document = parse_sig_manifest(&fetched.bytes, &fetched.media_type).map_err(|reason| {
        ClientError::Invalid {
            registry: sources.origin().registry.clone(),
            reason: format!("signature tag {tag}: {reason}"),
        }
    })?;
    let layers = legacy_layers(&document);
    check_count(already + layers.len(), manifest)?;
    let origin = sources.origin();
    let tag_repository = format!("{}/{}", origin.registry, origin.repository);
    let sources = sources.from_position(position);
    let mut found = Vec::with_capacity(layers.len());
    for LegacyLayer {
        descriptor,
        signature_b64,
        ..
    } in layers
    {
        let (_, payload) = sources
            .first(async |endpoint| {
                client
                    .blob_document_within(endpoint, &descriptor, MAX_PAYLOAD_BYTES)
                    .await
            })
            .await?;
        found.push(SignatureCandidate::Legacy {
            layer: descriptor.digest().clone(),
            payload,
            signature_b64,
            tag_repository: tag_repository.clone(),
        });
    }
    Ok(found)
}

/// The `.sig` manifest under `tag` at one registry, or `None` when the tag
/// does not exist.
pub(super) async fn read_sig_manifest(
    client: &Client,
    endpoint: &Endpoint,
    tag: &str,
) -> Result<Option<Value>> {
    let fetched = match client.manifest(endpoint, tag).await {
        Ok(fetched) => fetched,
        Err(ClientError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    parse_sig_manifest(&fetched.bytes, &fetched.media_type)
        .map(Some)
        .map_err(|reason| ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: format!("signature tag {tag}: {reason}"),
        })
}

/// Attaches a bundle signing a statement of `predicate_type` to the
/// manifest `subject` names, as cosign v3 does: a referrer with the bundle
/// as its one layer (the fallback tag is kept where the registry has no
/// referrers API). Returns the referrer's digest; attaching the same bundle
/// again changes nothing.
pub async fn attach_bundle(
    client: &Client,
    subject: &Reference,
    bundle: &[u8],
    predicate_type: &str,
) -> Result<Digest> {
    let layer = formats::bundle_layer(bundle)?;
    let annotations = bundle_annotations(predicate_type);
    let artifact = ReferrerArtifact {
        artifact_type: BUNDLE_MEDIA_TYPE,
        layers: vec![(layer, LayerContent::Bytes(Bytes::copy_from_slice(bundle)))],
        annotations: &annotations,
    };
    let attached = attach_artifact(
        client,
        subject,
        artifact,
        1,
        &FallbackPolicy::default(),
        &NoProgress,
    )
    .await?;
    Ok(attached.descriptor.digest().clone())
}

/// Appends a legacy signature of `manifest` to its `.sig` tag in
/// `repository` (the origin): the signatures there are kept, an identical
/// one (same payload, same signature) is not added twice.
pub async fn append_legacy_signature(
    client: &Client,
    repository: &Endpoint,
    manifest: &Digest,
    payload: &[u8],
    signature_b64: &str,
) -> Result<()> {
    let layer = formats::new_legacy_layer(payload, signature_b64)?;
    let descriptor: Descriptor = serde_json::from_value(layer.clone())
        .map_err(|e| ClientError::encode("the signature layer", e))?;
    client
        .push_blob(
            repository,
            &descriptor,
            BlobSource::Bytes(Bytes::copy_from_slice(payload)),
            None,
            &NoProgress,
        )
        .await?;
    add_to_signature_tag(client, repository, manifest, vec![layer]).await
}

/// Adds `layers` (whose payloads the registry has) to `manifest`'s `.sig`
/// tag in `repository`, confirming they stay.
pub(super) async fn add_to_signature_tag(
    client: &Client,
    repository: &Endpoint,
    manifest: &Digest,
    layers: Vec<Value>,
) -> Result<()> {
    let tag = signature_tag(manifest).ok_or_else(|| {
        ClientError::invalid_input(format!("{manifest} has no valid cosign signature tag"))
    })?;
    let update = SignatureTag {
        client,
        endpoint: repository,
        tag: &tag,
        layers,
    };
    update_tag_until_it_stays(&update, &tag, &FallbackPolicy::default()).await?;
    Ok(())
}

/// Layers to add to a `.sig` tag on a registry.
struct SignatureTag<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    tag: &'a str,
    layers: Vec<Value>,
}

impl TagUpdate for SignatureTag<'_> {
    async fn read(&self) -> Result<Option<Value>> {
        read_sig_manifest(self.client, self.endpoint, self.tag).await
    }

    fn holds(&self, document: &Value) -> bool {
        self.layers.iter().all(|layer| holds_layer(document, layer))
    }

    async fn write_added(&self, current: Option<Value>) -> Result<()> {
        let Some(built) = with_layers(current.as_ref(), &self.layers)? else {
            return Ok(());
        };
        self.client
            .push_blob(
                self.endpoint,
                &built.config_descriptor,
                BlobSource::Bytes(Bytes::from(built.config)),
                None,
                &NoProgress,
            )
            .await?;
        let media_type = if built.media_type.is_empty() {
            MEDIA_TYPE_IMAGE_MANIFEST.to_string()
        } else {
            built.media_type
        };
        put_manifest_through_blob_races(
            self.client,
            self.endpoint,
            self.tag,
            &media_type,
            Bytes::from(built.manifest),
            &FallbackPolicy::default().backoff,
        )
        .await?;
        Ok(())
    }
}
