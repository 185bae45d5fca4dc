//! Private keys: generation, cosign's encrypted PEM, plain PKCS#8 and SEC1
//! PEM, and signing.

use ecdsa::signature::Signer;
use elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use super::encrypted::{self, LABEL, OLD_LABEL};
use super::{Curve, PublicKey, curve_for_algorithm, curve_of};
use crate::error::{Result, SignError};
use crate::pem;

/// An ECDSA private key that signs.
#[derive(Clone)]
pub enum PrivateKey {
    /// P-256, signing SHA-256 digests.
    P256(p256::ecdsa::SigningKey),
    /// P-384, signing SHA-384 digests.
    P384(p384::ecdsa::SigningKey),
    /// P-521, signing SHA-512 digests.
    P521(p521::ecdsa::SigningKey),
}

// Secrets stay out of logs.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.curve().name())
    }
}

/// A generated key and its public half, ready to be written.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The private key.
    pub private: PrivateKey,
    /// Its public key.
    pub public: PublicKey,
}

/// A new ECDSA P-256 key pair (cosign's kind) from the system's RNG.
pub fn generate() -> Result<KeyPair> {
    let key =
        p256::ecdsa::SigningKey::try_generate().map_err(|e| SignError::Random(e.to_string()))?;
    let private = PrivateKey::P256(key);
    let public = private.public_key();
    Ok(KeyPair { private, public })
}

impl KeyPair {
    /// The private key in cosign's encrypted format (scrypt N=65536, r=8,
    /// p=1; nacl/secretbox), labelled `ENCRYPTED SIGSTORE PRIVATE KEY`.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String> {
        self.private.to_encrypted_pem(password)
    }

    /// The public key as a `PUBLIC KEY` PEM block.
    pub fn public_pem(&self) -> String {
        self.public.to_pem()
    }
}

/// True when `text` holds a cosign encrypted key (which needs a password).
pub fn is_encrypted_pem(text: &str) -> bool {
    text.contains(&format!("-----BEGIN {LABEL}-----"))
        || text.contains(&format!("-----BEGIN {OLD_LABEL}-----"))
}

impl PrivateKey {
    /// Reads a private key PEM: cosign's encrypted format (decrypted with
    /// `password`), or an unencrypted PKCS#8 `PRIVATE KEY` or SEC1
    /// `EC PRIVATE KEY`. `password` is ignored for unencrypted keys.
    pub fn from_pem(text: &str, password: &[u8]) -> Result<Self> {
        let (label, body) = pem::decode(text, "private key PEM")?;
        match label.as_str() {
            LABEL | OLD_LABEL => {
                let der = encrypted::decrypt(&body, password)?;
                Self::from_pkcs8_der(&der)
            }
            "PRIVATE KEY" => Self::from_pkcs8_der(&body),
            "EC PRIVATE KEY" => Self::from_sec1_der(&body),
            "ENCRYPTED PRIVATE KEY" => Err(SignError::UnsupportedKey(
                "an encrypted PKCS#8 key (decrypt it with openssl pkcs8, or use a cosign key)"
                    .to_string(),
            )),
            "RSA PRIVATE KEY" => Err(SignError::UnsupportedKey("an RSA key".to_string())),
            "OPENSSH PRIVATE KEY" => Err(SignError::UnsupportedKey("an OpenSSH key".to_string())),
            _ => Err(SignError::UnexpectedPem {
                expected: "a private key (cosign encrypted, PRIVATE KEY or EC PRIVATE KEY)",
                found: label,
            }),
        }
    }

    /// Reads an unencrypted PKCS#8 DER key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfoRef::try_from(der)
            .map_err(|e| SignError::malformed("PKCS#8 private key", e))?;
        let curve_oid = info.algorithm.parameters_oid().ok();
        let curve = curve_for_algorithm(info.algorithm.oid, curve_oid)
            .map_err(SignError::UnsupportedKey)?;
        let bad = |e: pkcs8::Error| SignError::malformed("PKCS#8 private key", e);
        Ok(match curve {
            Curve::P256 => {
                PrivateKey::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?)
            }
            Curve::P384 => {
                PrivateKey::P384(p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?)
            }
            Curve::P521 => {
                PrivateKey::P521(p521::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?)
            }
        })
    }

    /// Reads a SEC1 `ECPrivateKey` DER key (what `openssl ecparam -genkey`
    /// writes).
    pub fn from_sec1_der(der: &[u8]) -> Result<Self> {
        let key = sec1::EcPrivateKey::try_from(der)
            .map_err(|e| SignError::malformed("SEC1 private key", e))?;
        let curve_oid = key.parameters.and_then(|p| p.named_curve());
        let curve = curve_of(curve_oid).map_err(SignError::UnsupportedKey)?;
        let bad = |e: ecdsa::Error| SignError::malformed("SEC1 private key", e);
        let scalar = key.private_key;
        Ok(match curve {
            Curve::P256 => {
                PrivateKey::P256(p256::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?)
            }
            Curve::P384 => {
                PrivateKey::P384(p384::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?)
            }
            Curve::P521 => {
                PrivateKey::P521(p521::ecdsa::SigningKey::from_slice(scalar).map_err(bad)?)
            }
        })
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self {
            PrivateKey::P256(_) => Curve::P256,
            PrivateKey::P384(_) => Curve::P384,
            PrivateKey::P521(_) => Curve::P521,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(key) => PublicKey::P256(*key.verifying_key()),
            PrivateKey::P384(key) => PublicKey::P384(*key.verifying_key()),
            PrivateKey::P521(key) => PublicKey::P521(*key.verifying_key()),
        }
    }

    /// A DER ECDSA signature of `message` (deterministic, RFC 6979), hashed
    /// with the curve's SHA-2.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            PrivateKey::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(key) => {
                let signature: p384::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            PrivateKey::P521(key) => {
                let signature: p521::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
        }
    }

    /// The key in cosign's encrypted PEM format.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String> {
        let der = match self {
            PrivateKey::P256(key) => key.to_pkcs8_der(),
            PrivateKey::P384(key) => key.to_pkcs8_der(),
            PrivateKey::P521(key) => key.to_pkcs8_der(),
        }
        .map_err(|e| SignError::malformed("PKCS#8 private key", e))?;
        let body = encrypted::encrypt(der.as_bytes(), password)?;
        Ok(pem::encode(LABEL, &body))
    }
}
