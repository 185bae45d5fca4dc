//! Sigstore bundle v0.3 with a DSSE envelope and a public-key hint, as cosign
//! (key mode, no transparency log) and model_signing write it.

use serde::{Deserialize, Serialize};

use crate::dsse::Envelope;
use crate::error::{Result, SignError};
use crate::media::{ACCEPTED_BUNDLE_MEDIA_TYPES, BUNDLE_MEDIA_TYPE};

/// Bundles are a few kilobytes; larger input is refused unparsed.
pub const MAX_BUNDLE_SIZE: usize = 1024 * 1024;

/// A Sigstore bundle holding a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bundle {
    /// One of [`ACCEPTED_BUNDLE_MEDIA_TYPES`].
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The key hint and (empty) transparency log entries.
    #[serde(rename = "verificationMaterial")]
    pub verification_material: VerificationMaterial,
    /// The signed envelope.
    #[serde(rename = "dsseEnvelope")]
    pub dsse_envelope: Envelope,
}

/// What a verifier may use to find the key; ferry never selects keys by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VerificationMaterial {
    /// The public key's hint.
    #[serde(rename = "publicKey", default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<KeyHint>,
    /// Transparency log entries (ferry writes none and reads none).
    #[serde(rename = "tlogEntries", default)]
    pub tlog_entries: Vec<serde_json::Value>,
}

/// A public key identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyHint {
    /// Informational: formats differ between tools.
    #[serde(default)]
    pub hint: String,
}

/// The shape read, before the checks that give clear errors.
#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "mediaType")]
    media_type: String,
    #[serde(rename = "verificationMaterial", default)]
    verification_material: VerificationMaterial,
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: Option<Envelope>,
    #[serde(rename = "messageSignature")]
    message_signature: Option<serde_json::Value>,
}

impl Bundle {
    /// A bundle of `envelope` with `hint` as the key hint.
    pub fn new(envelope: Envelope, hint: &str) -> Self {
        Bundle {
            media_type: BUNDLE_MEDIA_TYPE.to_string(),
            verification_material: VerificationMaterial {
                public_key: Some(KeyHint {
                    hint: hint.to_string(),
                }),
                tlog_entries: Vec::new(),
            },
            dsse_envelope: envelope,
        }
    }

    /// Parses bundle JSON of at most [`MAX_BUNDLE_SIZE`] bytes holding a
    /// DSSE envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_BUNDLE_SIZE {
            return Err(SignError::TooLarge {
                what: "signature bundle",
                size: bytes.len(),
                limit: MAX_BUNDLE_SIZE,
            });
        }
        let raw: RawBundle =
            serde_json::from_slice(bytes).map_err(|e| SignError::malformed("bundle JSON", e))?;
        if !ACCEPTED_BUNDLE_MEDIA_TYPES.contains(&raw.media_type.as_str()) {
            return Err(SignError::Unexpected {
                what: "bundle mediaType",
                found: raw.media_type,
                expected: ACCEPTED_BUNDLE_MEDIA_TYPES.join(" or "),
            });
        }
        let Some(dsse_envelope) = raw.dsse_envelope else {
            let why = if raw.message_signature.is_some() {
                "it holds a messageSignature; ferry verifies DSSE envelopes only"
            } else {
                "no dsseEnvelope"
            };
            return Err(SignError::malformed("bundle JSON", why));
        };
        Ok(Bundle {
            media_type: raw.media_type,
            verification_material: raw.verification_material,
            dsse_envelope,
        })
    }

    /// Compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and byte arrays only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
