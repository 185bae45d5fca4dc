//! Signatures of OCI manifests, in cosign's two forms: the v3 bundle (a
//! DSSE-signed in-toto statement, stored as a referrer) and the legacy
//! simple-signing payload (stored under the `sha256-<hex>.sig` tag).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ferry_spec::digest::parse_digest;
use ferry_spec::oci::Digest;
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::dsse::Envelope;
use crate::error::{Result, SignError};
use crate::keys::{KeyDescription, PrivateKey, PublicKey};
use crate::media::{COSIGN_SIGN_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, SIMPLE_SIGNING_TYPE};
use crate::statement::{Statement, Subject};

/// Which form a verified signature had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// A Sigstore bundle (cosign v3, OCI referrer).
    Bundle,
    /// A simple-signing payload (cosign's `.sig` tag).
    Legacy,
}

/// What a valid signature says. The caller compares it with what it
/// resolved ([`VerifiedSignature::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedSignature {
    /// The key that verified it.
    pub key: KeyDescription,
    /// The manifest digest it signs.
    pub manifest_digest: Digest,
    /// The image reference it names, when it names one.
    pub docker_reference: Option<String>,
    /// The signed annotations (non-string values as JSON text).
    pub annotations: BTreeMap<String, String>,
    /// Bundle or legacy.
    pub format: SignatureFormat,
}

impl VerifiedSignature {
    /// Requires the signature to cover `expected_digest` and to carry every
    /// annotation of `wanted_annotations` with the same value.
    pub fn check(
        &self,
        expected_digest: &Digest,
        wanted_annotations: &BTreeMap<String, String>,
    ) -> Result<()> {
        if &self.manifest_digest != expected_digest {
            return Err(SignError::DigestMismatch {
                signed: self.manifest_digest.clone(),
                expected: expected_digest.clone(),
            });
        }
        for (key, wanted) in wanted_annotations {
            let found = self.annotations.get(key);
            if found != Some(wanted) {
                return Err(SignError::AnnotationMismatch {
                    key: key.clone(),
                    wanted: wanted.clone(),
                    found: found.cloned(),
                });
            }
        }
        Ok(())
    }
}

/// A cosign v3 bundle signing `manifest_digest`: an in-toto statement whose
/// subject is the digest with `annotations` (where cosign puts `-a`), an
/// empty `https://sigstore.dev/cosign/sign/v1` predicate, and the docker
/// reference as the subject's name (cosign leaves the name empty).
pub fn sign_manifest_bundle(
    key: &PrivateKey,
    manifest_digest: &Digest,
    docker_reference: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let subject = Subject {
        name: docker_reference.unwrap_or_default().to_string(),
        digest: BTreeMap::from([(
            manifest_digest.algorithm().to_string(),
            manifest_digest.digest().to_string(),
        )]),
        annotations: (!annotations.is_empty()).then(|| {
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        }),
    };
    let statement = Statement::new(
        vec![subject],
        COSIGN_SIGN_PREDICATE_TYPE,
        serde_json::Value::Object(serde_json::Map::new()),
    );
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), key);
    Bundle::new(envelope, &key.public_key().description().fingerprint).to_json()
}

/// Verifies a cosign bundle with `keys` and requires it to sign
/// `expected_digest`. A valid signature of another digest is a
/// [`SignError::DigestMismatch`].
pub fn verify_manifest_bundle(
    bundle: &[u8],
    keys: &[PublicKey],
    expected_digest: &Digest,
) -> Result<VerifiedSignature> {
    let bundle = Bundle::from_json(bundle)?;
    let envelope = &bundle.dsse_envelope;
    let key = envelope.verify(IN_TOTO_PAYLOAD_TYPE, keys)?;
    // Only signed bytes are parsed from here on.
    let statement = Statement::from_json(&envelope.payload)?;
    statement.expect_predicate_type(COSIGN_SIGN_PREDICATE_TYPE)?;
    let mut digests = Vec::new();
    for subject in &statement.subject {
        for (algorithm, hex) in &subject.digest {
            let digest = parse_digest(&format!("{algorithm}:{hex}"))
                .map_err(|e| SignError::malformed("statement subject digest", e))?;
            digests.push((digest, subject));
        }
    }
    let (digest, subject) = match digests.iter().position(|(d, _)| d == expected_digest) {
        Some(index) => digests.swap_remove(index),
        None => match digests.into_iter().next() {
            Some((signed, _)) => {
                return Err(SignError::DigestMismatch {
                    signed,
                    expected: expected_digest.clone(),
                });
            }
            None => {
                return Err(SignError::malformed(
                    "in-toto statement",
                    "subject without digest",
                ));
            }
        },
    };
    Ok(VerifiedSignature {
        key: key.description(),
        manifest_digest: digest,
        docker_reference: (!subject.name.is_empty()).then(|| subject.name.clone()),
        annotations: subject
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), annotation_text(v)))
            .collect(),
        format: SignatureFormat::Bundle,
    })
}

/// The simple-signing payload (compact JSON, cosign's field order).
#[derive(Serialize, Deserialize)]
struct SimpleSigning {
    critical: Critical,
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    signature_type: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// cosign's legacy payload: `{"critical":{"identity":{"docker-reference":..},
/// "image":{"docker-manifest-digest":..},"type":"cosign container image
/// signature"},"optional":..}` with `annotations` in `optional` (`null`
/// when there are none).
pub fn simple_signing_payload(
    docker_reference: &str,
    manifest_digest: &Digest,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let payload = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_string(),
            },
            image: Image {
                docker_manifest_digest: manifest_digest.to_string(),
            },
            signature_type: SIMPLE_SIGNING_TYPE.to_string(),
        },
        optional: (!annotations.is_empty()).then(|| {
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        }),
    };
    // Strings only: serializing cannot fail.
    let json = serde_json::to_string(&payload).unwrap_or_default();
    go_html_escape(&json).into_bytes()
}

/// Escapes `<`, `>`, `&`, U+2028 and U+2029 as Go's `encoding/json` does
/// (cosign marshals the payload with it), so ferry's payload bytes equal
/// cosign's for any annotation. Outside strings JSON has none of these.
fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out
}

/// The base64 DER signature of `payload`: the value of the layer annotation
/// `dev.cosignproject.cosign/signature`.
pub fn sign_legacy(key: &PrivateKey, payload: &[u8]) -> String {
    STANDARD.encode(key.sign(payload))
}

/// Payloads are a few hundred bytes; larger ones are refused unparsed.
pub const MAX_PAYLOAD_SIZE: usize = 64 * 1024;

/// Verifies a legacy signature over the exact `payload` bytes, then parses
/// the payload. The caller checks the digest ([`VerifiedSignature::check`]).
pub fn verify_legacy(
    payload: &[u8],
    signature_b64: &str,
    keys: &[PublicKey],
) -> Result<VerifiedSignature> {
    if payload.len() > MAX_PAYLOAD_SIZE {
        return Err(SignError::TooLarge {
            what: "simple-signing payload",
            size: payload.len(),
            limit: MAX_PAYLOAD_SIZE,
        });
    }
    let signature = STANDARD
        .decode(signature_b64.trim().as_bytes())
        .map_err(|e| SignError::malformed("signature base64", e))?;
    let mut problems = Vec::new();
    let key = keys
        .iter()
        .find(|key| match key.verify(payload, &signature) {
            Ok(()) => true,
            Err(SignError::Malformed { reason, .. }) => {
                problems.push(reason);
                false
            }
            Err(_) => false,
        });
    let Some(key) = key else {
        problems.dedup();
        if problems.is_empty() {
            problems.push(if keys.is_empty() {
                "no key was given".to_string()
            } else {
                "the signature was made by none of the keys".to_string()
            });
        }
        return Err(SignError::NoValidSignature {
            keys: keys.len(),
            problems,
        });
    };
    let parsed: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|e| SignError::malformed("simple-signing payload", e))?;
    if parsed.critical.signature_type != SIMPLE_SIGNING_TYPE {
        return Err(SignError::Unexpected {
            what: "simple-signing critical.type",
            found: parsed.critical.signature_type,
            expected: SIMPLE_SIGNING_TYPE.to_string(),
        });
    }
    let digest = parse_digest(&parsed.critical.image.docker_manifest_digest)
        .map_err(|e| SignError::malformed("simple-signing docker-manifest-digest", e))?;
    Ok(VerifiedSignature {
        key: key.description(),
        manifest_digest: digest,
        docker_reference: Some(parsed.critical.identity.docker_reference),
        annotations: parsed
            .optional
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), annotation_text(v)))
            .collect(),
        format: SignatureFormat::Legacy,
    })
}

/// A string annotation as is; other JSON values as their JSON text.
fn annotation_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_escape_html_characters_as_go_does() {
        let digest = ferry_spec::digest::sha256_digest(b"m");
        let annotations = BTreeMap::from([("note".to_string(), "a<b>&c\u{2028}".to_string())]);
        let payload = simple_signing_payload("r.example/m", &digest, &annotations);
        let text = String::from_utf8(payload.clone()).unwrap();
        assert!(
            text.ends_with(r#""optional":{"note":"a\u003cb\u003e\u0026c\u2028"}}"#),
            "{text}"
        );
        // Still JSON that reads back to the same annotation.
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["optional"]["note"], "a<b>&c\u{2028}");
    }
}
