//! DSSE envelopes: the pre-authentication encoding (PAE), signing, and
//! verification that accepts an envelope when any signature verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, SignError};
use crate::keys::{PrivateKey, PublicKey};

/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in decimal
/// bytes: what DSSE signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope (JSON: `payload` and `sig` in standard base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload bytes.
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    /// What the payload is (e.g. `application/vnd.in-toto+json`).
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures over the PAE of type and payload.
    #[serde(default)]
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The DER ECDSA signature.
    #[serde(with = "base64_bytes")]
    pub sig: Vec<u8>,
    /// The signer's key id; informational only, never used to pick a key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
}

impl Envelope {
    /// An envelope of `payload` signed by `key`.
    pub fn sign(payload_type: &str, payload: Vec<u8>, key: &PrivateKey) -> Self {
        let sig = key.sign(&pae(payload_type, &payload));
        Envelope {
            payload,
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                sig,
                keyid: String::new(),
            }],
        }
    }

    /// Checks the payload type, then tries every signature with every key:
    /// the first key that verifies one is returned. When none does, the
    /// error lists why each signature failed.
    pub fn verify<'k>(
        &self,
        expected_payload_type: &str,
        keys: &'k [PublicKey],
    ) -> Result<&'k PublicKey> {
        if self.payload_type != expected_payload_type {
            return Err(SignError::Unexpected {
                what: "DSSE payloadType",
                found: self.payload_type.clone(),
                expected: expected_payload_type.to_string(),
            });
        }
        let message = pae(&self.payload_type, &self.payload);
        let mut problems = Vec::new();
        if self.signatures.is_empty() {
            problems.push("the envelope holds no signature".to_string());
        }
        if keys.is_empty() {
            problems.push("no key was given".to_string());
        }
        for (index, signature) in self.signatures.iter().enumerate() {
            let mut malformed = None;
            for key in keys {
                match key.verify(&message, &signature.sig) {
                    Ok(()) => return Ok(key),
                    Err(SignError::Malformed { reason, .. }) => malformed = Some(reason),
                    Err(_) => {}
                }
            }
            if !keys.is_empty() {
                problems.push(match malformed {
                    Some(reason) => format!("signature {}: {reason}", index + 1),
                    None => format!("signature {}: made by none of the keys", index + 1),
                });
            }
        }
        Err(SignError::NoValidSignature {
            keys: keys.len(),
            problems,
        })
    }
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_counts_bytes_in_decimal() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
        );
        // Multi-byte characters count as bytes, not characters.
        assert_eq!(pae("t", "é".as_bytes()), "DSSEv1 1 t 2 é".as_bytes());
    }
}
