//! Signatures in the local store: bundle referrers as unnamed index
//! entries naming their subject (as the store keeps every referrer), the
//! `.sig` tag as the named entry `host/repo:<alg>-<hex>.sig`.

use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::{EMPTY_CONFIG, MEDIA_TYPE_IMAGE_MANIFEST, is_image_manifest};
use ferry_spec::oci::{Descriptor, Digest, MediaType};
use ferry_spec::signature::{BUNDLE_MEDIA_TYPE, signature_tag};
use ferry_store::index::ref_name;
use ferry_store::{Store, StoreError};

use super::formats::{
    self, LegacyLayer, bundle_annotations, check_count, legacy_layers, parse_sig_manifest,
    with_layers,
};
use super::{MAX_BUNDLE_BYTES, MAX_PAYLOAD_BYTES, SignatureCandidate};
use crate::error::{ClientError, Result};
use crate::referrers::attach::referrer_manifest;

/// Read-modify-write attempts on a local `.sig` name before giving up.
const LOCAL_ATTEMPTS: u32 = 20;

/// Stores a bundle signing a statement of `predicate_type` (cosign's, or a
/// model signature's) as a referrer of the store's manifest `subject`
/// (which must be in the store). Returns the referrer's digest.
pub fn store_bundle_referrer(
    store: &Store,
    subject: &Digest,
    bundle: &[u8],
    predicate_type: &str,
) -> Result<Digest> {
    let layer = formats::bundle_layer(bundle)?;
    let subject_bytes = store.read_document(subject)?;
    let subject_descriptor = Descriptor::new(
        MediaType::from(media_type_of(&subject_bytes).as_str()),
        subject_bytes.len() as u64,
        subject.clone(),
    );
    let built = referrer_manifest(
        &subject_descriptor,
        BUNDLE_MEDIA_TYPE,
        vec![layer],
        &bundle_annotations(predicate_type),
    )?;
    let _ingest = store.lock_ingest()?;
    store.put_document(bundle)?;
    store.put_document(EMPTY_CONFIG)?;
    store.put_document(&built.bytes)?;
    store.add_unnamed(&built.descriptor)?;
    Ok(built.descriptor.digest().clone())
}

/// Appends a legacy signature of `manifest` to its `.sig` name in the
/// repository of `reference`, keeping the signatures there; an identical
/// one is not added twice.
pub fn store_legacy_signature(
    store: &Store,
    reference: &Reference,
    manifest: &Digest,
    payload: &[u8],
    signature_b64: &str,
) -> Result<()> {
    let layer = formats::new_legacy_layer(payload, signature_b64)?;
    let _ingest = store.lock_ingest()?;
    store.put_document(payload)?;
    add_to_local_signature_tag(store, &signature_name(reference, manifest)?, &[layer])
}

/// Adds `layers` (whose payloads the store has) to the `.sig` manifest
/// named `name`. The caller holds the ingest lock.
pub(super) fn add_to_local_signature_tag(
    store: &Store,
    name: &Reference,
    layers: &[Value],
) -> Result<()> {
    for _ in 0..LOCAL_ATTEMPTS {
        let current = read_local_sig(store, name)?;
        let Some(built) = with_layers(current.as_ref().map(|(_, d)| d), layers)? else {
            return Ok(());
        };
        store.put_document(&built.config)?;
        let digest = store.put_document(&built.manifest)?;
        let descriptor = Descriptor::new(
            MediaType::from(built.media_type.as_str()),
            built.manifest.len() as u64,
            digest,
        );
        let expected = current.as_ref().map(|(d, _)| d);
        if store.compare_and_set_reference(name, expected, &descriptor)? {
            return Ok(());
        }
    }
    Err(ClientError::Contended {
        what: name.whole(),
        attempts: LOCAL_ATTEMPTS,
    })
}

/// The `.sig` manifest named `name` (its digest and document), if any.
fn read_local_sig(store: &Store, name: &Reference) -> Result<Option<(Digest, Value)>> {
    let resolved = match store.resolve(&name.whole()) {
        Ok(resolved) => resolved,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let digest = resolved.descriptor.digest().clone();
    let bytes = store.read_document(&digest)?;
    let media_type = resolved.descriptor.media_type().to_string();
    let document = parse_sig_manifest(&bytes, &media_type).map_err(|reason| {
        ClientError::Store(StoreError::InvalidDocument {
            what: "signature manifest",
            digest: digest.to_string(),
            reason,
        })
    })?;
    Ok(Some((digest, document)))
}

/// The store name of `manifest`'s `.sig` tag in `reference`'s repository.
pub(super) fn signature_name(reference: &Reference, manifest: &Digest) -> Result<Reference> {
    let tag = signature_tag(manifest).ok_or_else(|| {
        ClientError::invalid_input(format!("{manifest} has no valid cosign signature tag"))
    })?;
    Ok(Reference::with_tag(
        reference.registry().to_string(),
        reference.repository().to_string(),
        tag,
    ))
}

/// The bundle referrers of `manifest` in the store, as (descriptor,
/// bundle layer); manifests are read one at a time and not kept.
pub(super) fn local_bundle_referrers(
    store: &Store,
    manifest: &Digest,
) -> Result<Vec<(Descriptor, Descriptor)>> {
    let mut found = Vec::new();
    for entry in store.entries()? {
        let declared = entry.artifact_type().as_ref().map(|t| t.to_string());
        if ref_name(&entry).is_some()
            || entry.digest() == manifest
            || !is_image_manifest(entry.media_type().as_ref())
            || declared.is_some_and(|t| t != BUNDLE_MEDIA_TYPE)
        {
            continue;
        }
        let bytes = store.read_document(entry.digest())?;
        match formats::bundle_layer_of(&bytes, manifest) {
            Ok(layer) => {
                if found
                    .iter()
                    .any(|(d, _): &(Descriptor, _)| d.digest() == entry.digest())
                {
                    continue;
                }
                found.push((entry, layer));
                check_count(found.len(), manifest)?;
            }
            Err(reason) => {
                tracing::debug!("{} is not a bundle of {manifest}: {reason}", entry.digest())
            }
        }
    }
    Ok(found)
}

/// Every signature candidate of `manifest` in the store: its bundle
/// referrers, then the layers of its `.sig` name in `reference`'s
/// repository.
pub fn local_signatures(
    store: &Store,
    reference: &Reference,
    manifest: &Digest,
) -> Result<Vec<SignatureCandidate>> {
    let mut found = Vec::new();
    for (descriptor, layer) in local_bundle_referrers(store, manifest)? {
        let bytes = read_capped(store, &layer, MAX_BUNDLE_BYTES)?;
        let manifest_bytes = store.read_document(descriptor.digest())?;
        found.push(SignatureCandidate::Bundle {
            referrer: descriptor.digest().clone(),
            bytes,
            predicate_type: formats::announced_predicate_type(&manifest_bytes),
        });
    }
    let name = signature_name(reference, manifest)?;
    let Some((_, document)) = read_local_sig(store, &name)? else {
        return Ok(found);
    };
    let layers = legacy_layers(&document);
    check_count(found.len() + layers.len(), manifest)?;
    let tag_repository = format!("{}/{}", reference.registry(), reference.repository());
    for LegacyLayer {
        descriptor,
        signature_b64,
        ..
    } in layers
    {
        let payload = read_capped(store, &descriptor, MAX_PAYLOAD_BYTES)?;
        found.push(SignatureCandidate::Legacy {
            layer: descriptor.digest().clone(),
            payload,
            signature_b64,
            tag_repository: tag_repository.clone(),
        });
    }
    Ok(found)
}

/// A blob of at most `limit` bytes from the store, verified.
pub(super) fn read_capped(store: &Store, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>> {
    let digest = descriptor.digest();
    if descriptor.size() > limit {
        return Err(ClientError::Integrity {
            what: format!("blob {digest}"),
            reason: format!(
                "{} bytes is more than the {limit} bytes such a document may be",
                descriptor.size()
            ),
        });
    }
    let bytes = store.read_document(digest)?;
    if bytes.len() as u64 != descriptor.size() {
        return Err(ClientError::Integrity {
            what: format!("blob {digest}"),
            reason: format!(
                "{} bytes, the descriptor says {}",
                bytes.len(),
                descriptor.size()
            ),
        });
    }
    Ok(bytes)
}

/// The `mediaType` of manifest bytes, else an OCI image manifest.
fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string())
}
