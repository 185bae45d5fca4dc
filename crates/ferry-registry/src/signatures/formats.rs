//! The documents of both formats, without I/O: the `.sig` manifest (read,
//! and rebuilt with layers appended) and the bundle referrer (built, and
//! checked before its layer is read).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};

use ferry_spec::media::{
    MEDIA_TYPE_DOCKER_IMAGE_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST, is_image_manifest,
};
use ferry_spec::oci::{Descriptor, Digest, MediaType};
use ferry_spec::signature::{
    BUNDLE_CONTENT, BUNDLE_CONTENT_DSSE, BUNDLE_MEDIA_TYPE, BUNDLE_PREDICATE_TYPE,
    COSIGN_SIGNATURE, SIMPLESIGNING_MEDIA_TYPE,
};

use super::{MAX_BUNDLE_BYTES, MAX_PAYLOAD_BYTES, MAX_SIGNATURES};
use crate::error::{ClientError, Result};

/// The manifest annotations of a bundle referrer signing a statement of
/// `predicate_type` (cosign's, or a model signature's).
pub(super) fn bundle_annotations(predicate_type: &str) -> BTreeMap<String, String> {
    [
        (BUNDLE_CONTENT, BUNDLE_CONTENT_DSSE),
        (BUNDLE_PREDICATE_TYPE, predicate_type),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The predicate type a bundle referrer's manifest announces, unverified:
/// it only routes the bundle to a verifier, which checks the signed one.
pub(super) fn announced_predicate_type(manifest: &[u8]) -> Option<String> {
    let document: Value = serde_json::from_slice(manifest).ok()?;
    let announced = document.get("annotations")?.get(BUNDLE_PREDICATE_TYPE)?;
    announced.as_str().map(str::to_string)
}

/// The layer descriptor of a bundle, refusing one over the limit.
pub(super) fn bundle_layer(bundle: &[u8]) -> Result<Descriptor> {
    if bundle.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(ClientError::invalid_input(format!(
            "a bundle of {} bytes is more than the {MAX_BUNDLE_BYTES} bytes ferry stores",
            bundle.len()
        )));
    }
    Ok(Descriptor::new(
        MediaType::from(BUNDLE_MEDIA_TYPE),
        bundle.len() as u64,
        ferry_spec::digest::sha256_digest(bundle),
    ))
}

/// The bundle layer of a referrer manifest of `subject`; `None` (with the
/// reason) when the manifest is not a cosign bundle referrer of it.
pub(super) fn bundle_layer_of(bytes: &[u8], subject: &Digest) -> Result<Descriptor, String> {
    let document: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if document.get("artifactType").and_then(Value::as_str) != Some(BUNDLE_MEDIA_TYPE) {
        return Err("its artifactType is not a sigstore bundle".into());
    }
    let named = document
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(Value::as_str);
    if named != Some(subject.as_ref()) {
        return Err(format!("its subject is not {subject}"));
    }
    let layers: Vec<&Value> = document
        .get("layers")
        .and_then(Value::as_array)
        .map(|layers| {
            layers
                .iter()
                .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(BUNDLE_MEDIA_TYPE))
                .collect()
        })
        .unwrap_or_default();
    match layers.as_slice() {
        [layer] => serde_json::from_value((*layer).clone()).map_err(|e| format!("its layer: {e}")),
        other => Err(format!("{} bundle layers, not one", other.len())),
    }
}

/// Refuses more signatures than [`MAX_SIGNATURES`].
pub(super) fn check_count(count: usize, manifest: &Digest) -> Result<()> {
    if count > MAX_SIGNATURES {
        return Err(ClientError::Integrity {
            what: format!("signatures of {manifest}"),
            reason: format!("more than {MAX_SIGNATURES}"),
        });
    }
    Ok(())
}

/// A legacy signature layer of a `.sig` manifest.
pub(super) struct LegacyLayer {
    /// The payload's descriptor.
    pub descriptor: Descriptor,
    /// The base64 signature annotation.
    pub signature_b64: String,
    /// The layer as the manifest has it (every field kept).
    pub raw: Value,
}

/// Parses a `.sig` manifest; `media_type` is what the registry or the
/// index said.
pub(super) fn parse_sig_manifest(bytes: &[u8], media_type: &str) -> Result<Value, String> {
    if !is_image_manifest(media_type) {
        return Err(format!("holds a {media_type}, not an image manifest"));
    }
    let document: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if !document.get("layers").is_some_and(Value::is_array) {
        return Err("a manifest without a layers array".into());
    }
    Ok(document)
}

/// The simple-signing layers of a `.sig` manifest that carry a signature;
/// other layers are skipped (another tool's, or not signatures).
pub(super) fn legacy_layers(document: &Value) -> Vec<LegacyLayer> {
    let Some(layers) = document.get("layers").and_then(Value::as_array) else {
        return Vec::new();
    };
    layers
        .iter()
        .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(SIMPLESIGNING_MEDIA_TYPE))
        .filter_map(|layer| {
            let signature_b64 = layer
                .get("annotations")
                .and_then(|a| a.get(COSIGN_SIGNATURE))
                .and_then(Value::as_str)?
                .to_string();
            match serde_json::from_value::<Descriptor>(layer.clone()) {
                Ok(descriptor) => Some(LegacyLayer {
                    descriptor,
                    signature_b64,
                    raw: layer.clone(),
                }),
                Err(e) => {
                    tracing::warn!("skipping an invalid signature layer: {e}");
                    None
                }
            }
        })
        .collect()
}

/// The layer of a new legacy signature, checking what can be checked
/// without cryptography.
pub(super) fn new_legacy_layer(payload: &[u8], signature_b64: &str) -> Result<Value> {
    if payload.len() as u64 > MAX_PAYLOAD_BYTES {
        return Err(ClientError::invalid_input(format!(
            "a signed payload of {} bytes is more than the {MAX_PAYLOAD_BYTES} bytes ferry stores",
            payload.len()
        )));
    }
    match base64::engine::general_purpose::STANDARD.decode(signature_b64) {
        Ok(decoded) if !decoded.is_empty() => {}
        _ => {
            return Err(ClientError::invalid_input(
                "the signature is not non-empty standard base64",
            ));
        }
    }
    Ok(json!({
        "mediaType": SIMPLESIGNING_MEDIA_TYPE,
        "digest": ferry_spec::digest::sha256_digest(payload).to_string(),
        "size": payload.len(),
        "annotations": {COSIGN_SIGNATURE: signature_b64},
    }))
}

/// True when `document` has a layer with `layer`'s digest and signature.
pub(super) fn holds_layer(document: &Value, layer: &Value) -> bool {
    let key = |l: &Value| {
        (
            l.get("digest").cloned(),
            l.get("annotations")
                .and_then(|a| a.get(COSIGN_SIGNATURE))
                .cloned(),
        )
    };
    let wanted = key(layer);
    document
        .get("layers")
        .and_then(Value::as_array)
        .is_some_and(|layers| layers.iter().any(|l| key(l) == wanted))
}

/// A `.sig` manifest to write, with its config.
pub(super) struct SigManifest {
    pub manifest: Vec<u8>,
    pub media_type: String,
    pub config: Vec<u8>,
    pub config_descriptor: Descriptor,
}

/// `existing` (or a new manifest) with the `new` layers it lacks appended,
/// every other layer and field kept as read, and the config cosign writes
/// (its `diff_ids` list every layer); `None` when nothing is missing.
pub(super) fn with_layers(existing: Option<&Value>, new: &[Value]) -> Result<Option<SigManifest>> {
    let mut document = existing.cloned().unwrap_or_else(|| {
        json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
            "layers": [],
        })
    });
    let missing: Vec<&Value> = new.iter().filter(|l| !holds_layer(&document, l)).collect();
    if missing.is_empty() {
        return Ok(None);
    }
    if legacy_layers(&document).len() + missing.len() > MAX_SIGNATURES {
        return Err(ClientError::invalid_input(format!(
            "the signature tag would hold more than {MAX_SIGNATURES} signatures"
        )));
    }
    let media_type = document
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(MEDIA_TYPE_IMAGE_MANIFEST)
        .to_string();
    let Some(layers) = document.get_mut("layers").and_then(Value::as_array_mut) else {
        return Err(ClientError::invalid_input(
            "a signature manifest without layers",
        ));
    };
    layers.extend(missing.into_iter().cloned());
    let diff_ids: Vec<Value> = layers
        .iter()
        .filter_map(|l| l.get("digest").cloned())
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .map_err(|e| ClientError::encode("the signature config", e))?;
    let config_type = if media_type == MEDIA_TYPE_DOCKER_MANIFEST {
        MEDIA_TYPE_DOCKER_IMAGE_CONFIG
    } else {
        MEDIA_TYPE_IMAGE_CONFIG
    };
    let config_descriptor = Descriptor::new(
        MediaType::from(config_type),
        config.len() as u64,
        ferry_spec::digest::sha256_digest(&config),
    );
    document["config"] = serde_json::to_value(&config_descriptor)
        .map_err(|e| ClientError::encode("the signature config descriptor", e))?;
    let manifest = serde_json::to_vec(&document)
        .map_err(|e| ClientError::encode("the signature manifest", e))?;
    Ok(Some(SigManifest {
        manifest,
        media_type,
        config,
        config_descriptor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_keeps_layers_in_order_and_skips_what_is_there() {
        let one = new_legacy_layer(b"p1", "c2ln").unwrap();
        let two = new_legacy_layer(b"p2", "c2ln").unwrap();
        let first = with_layers(None, std::slice::from_ref(&one))
            .unwrap()
            .unwrap();
        let document: Value = serde_json::from_slice(&first.manifest).unwrap();
        assert_eq!(first.media_type, MEDIA_TYPE_IMAGE_MANIFEST);
        assert!(
            with_layers(Some(&document), std::slice::from_ref(&one))
                .unwrap()
                .is_none()
        );
        let second = with_layers(Some(&document), &[two.clone(), one.clone()])
            .unwrap()
            .unwrap();
        let document: Value = serde_json::from_slice(&second.manifest).unwrap();
        let digests: Vec<&str> = document["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [
                one["digest"].as_str().unwrap(),
                two["digest"].as_str().unwrap()
            ]
        );
        let config: Value = serde_json::from_slice(&second.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(
            document["config"]["digest"],
            second.config_descriptor.digest().to_string()
        );
        // The same payload with another signature is another signature.
        let resigned = new_legacy_layer(b"p1", "b3RoZXI=").unwrap();
        assert!(with_layers(Some(&document), &[resigned]).unwrap().is_some());
    }

    #[test]
    fn bad_signatures_and_payloads_are_refused() {
        assert!(new_legacy_layer(b"p", "not base64!").is_err());
        assert!(new_legacy_layer(b"p", "").is_err());
        let big = vec![b'x'; MAX_PAYLOAD_BYTES as usize + 1];
        let error = new_legacy_layer(&big, "c2ln").unwrap_err();
        assert!(error.to_string().contains("65536"), "{error}");
    }

    #[test]
    fn only_bundle_referrers_of_the_subject_have_a_bundle_layer() {
        let subject = ferry_spec::digest::sha256_digest(b"m");
        let layer = bundle_layer(b"{}").unwrap();
        let manifest = |artifact_type: &str, subject: &Digest, layers: Vec<&Descriptor>| {
            serde_json::to_vec(&json!({
                "artifactType": artifact_type,
                "subject": {"digest": subject.to_string()},
                "layers": layers,
            }))
            .unwrap()
        };
        let good = manifest(BUNDLE_MEDIA_TYPE, &subject, vec![&layer]);
        assert_eq!(bundle_layer_of(&good, &subject).unwrap(), layer);
        let other = ferry_spec::digest::sha256_digest(b"other");
        assert!(
            bundle_layer_of(&manifest(BUNDLE_MEDIA_TYPE, &other, vec![&layer]), &subject).is_err()
        );
        assert!(
            bundle_layer_of(&manifest("application/x", &subject, vec![&layer]), &subject).is_err()
        );
        let two = manifest(BUNDLE_MEDIA_TYPE, &subject, vec![&layer, &layer]);
        assert!(
            bundle_layer_of(&two, &subject)
                .unwrap_err()
                .contains("2 bundle layers")
        );
    }
}
