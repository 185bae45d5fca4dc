//! Public keys (PKIX `PUBLIC KEY` PEM) and signature verification.

use ecdsa::signature::Verifier;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{Curve, curve_for_algorithm};
use crate::error::{Result, SignError};
use crate::pem;

/// An ECDSA public key that verifies signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// P-256, verified with SHA-256.
    P256(p256::ecdsa::VerifyingKey),
    /// P-384, verified with SHA-384.
    P384(p384::ecdsa::VerifyingKey),
    /// P-521, verified with SHA-512.
    P521(p521::ecdsa::VerifyingKey),
}

/// How messages and reports name a key: its curve and the SHA-256 of its
/// DER SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyDescription {
    /// The key's algorithm and curve.
    pub algorithm: Curve,
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo.
    pub fingerprint: String,
}

impl std::fmt::Display for KeyDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} key {}", self.algorithm.name(), self.fingerprint)
    }
}

impl PublicKey {
    /// Reads a PKIX `PUBLIC KEY` PEM block.
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = pem::decode(text, "public key PEM")?;
        if label != "PUBLIC KEY" {
            return Err(SignError::UnexpectedPem {
                expected: "a PUBLIC KEY (PKIX) block",
                found: label,
            });
        }
        Self::from_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| SignError::malformed("public key DER", e))?;
        let curve_oid = info.algorithm.parameters_oid().ok();
        let curve = curve_for_algorithm(info.algorithm.oid, curve_oid)
            .map_err(SignError::UnsupportedKey)?;
        let bad = |e: spki::Error| SignError::malformed("public key DER", e);
        Ok(match curve {
            Curve::P256 => {
                PublicKey::P256(p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?)
            }
            Curve::P384 => {
                PublicKey::P384(p384::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?)
            }
            Curve::P521 => {
                PublicKey::P521(p521::ecdsa::VerifyingKey::from_public_key_der(der).map_err(bad)?)
            }
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> Vec<u8> {
        let document = match self {
            PublicKey::P256(key) => key.to_public_key_der(),
            PublicKey::P384(key) => key.to_public_key_der(),
            PublicKey::P521(key) => key.to_public_key_der(),
        };
        // Encoding a valid point cannot fail.
        document.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The `PUBLIC KEY` PEM block, 64-column lines, trailing newline.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.to_der())
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self {
            PublicKey::P256(_) => Curve::P256,
            PublicKey::P384(_) => Curve::P384,
            PublicKey::P521(_) => Curve::P521,
        }
    }

    /// Curve and fingerprint, for messages and reports.
    pub fn description(&self) -> KeyDescription {
        KeyDescription {
            algorithm: self.curve(),
            fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(self.to_der()))),
        }
    }

    /// The key hint model_signing writes: hex SHA-256 of the PEM text.
    pub fn model_signing_hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Verifies a DER ECDSA signature over `message` (hashed with the
    /// curve's SHA-2). High-S signatures are accepted, as cosign and Go
    /// accept them.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> Result<()> {
        // S is normalized to the low half first, so either form verifies.
        macro_rules! check {
            ($key:expr, $curve:ty) => {{
                let signature = ecdsa::Signature::<$curve>::from_der(der_signature)
                    .map_err(|_| {
                        SignError::malformed(
                            "signature",
                            "not a DER ECDSA signature for this curve",
                        )
                    })?
                    .normalize_s();
                $key.verify(message, &signature).is_ok()
            }};
        }
        let valid = match self {
            PublicKey::P256(key) => check!(key, p256::NistP256),
            PublicKey::P384(key) => check!(key, p384::NistP384),
            PublicKey::P521(key) => check!(key, p521::NistP521),
        };
        if valid {
            Ok(())
        } else {
            Err(SignError::NoValidSignature {
                keys: 1,
                problems: vec![format!(
                    "the signature does not match {}",
                    self.description()
                )],
            })
        }
    }
}
