//! ECDSA keys: cosign's encrypted private keys, plain PKCS#8 and SEC1
//! private keys, PKIX public keys, signing and verification (DER signatures,
//! the SHA-2 size matching the curve, as cosign and model_signing do).

mod encrypted;
mod private;
mod public;

pub use private::{KeyPair, PrivateKey, generate, is_encrypted_pem};
pub use public::{KeyDescription, PublicKey};

use spki::ObjectIdentifier;

/// The curves ferry signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Curve {
    /// NIST P-256 (secp256r1) with SHA-256: cosign's default.
    #[serde(rename = "ecdsa-p256")]
    P256,
    /// NIST P-384 (secp384r1) with SHA-384.
    #[serde(rename = "ecdsa-p384")]
    P384,
    /// NIST P-521 (secp521r1) with SHA-512.
    #[serde(rename = "ecdsa-p521")]
    P521,
}

impl Curve {
    /// The name used in messages, e.g. `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "ecdsa-p256",
            Curve::P384 => "ecdsa-p384",
            Curve::P521 => "ecdsa-p521",
        }
    }
}

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// The curve named by an EC key's parameters.
fn curve_of(curve: Option<ObjectIdentifier>) -> Result<Curve, String> {
    match curve {
        Some(oid) if oid == SECP256R1 => Ok(Curve::P256),
        Some(oid) if oid == SECP384R1 => Ok(Curve::P384),
        Some(oid) if oid == SECP521R1 => Ok(Curve::P521),
        Some(oid) => Err(format!("an EC key on curve {oid}")),
        None => Err("an EC key without a named curve".to_string()),
    }
}

/// The curve of a key whose algorithm is `algorithm` with named-curve
/// parameters `curve`; otherwise what the key is, for the error.
fn curve_for_algorithm(
    algorithm: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
) -> Result<Curve, String> {
    if algorithm == ID_EC_PUBLIC_KEY {
        return curve_of(curve);
    }
    let name = match algorithm.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "an RSA key".to_string(),
        "1.2.840.113549.1.1.10" => "an RSA-PSS key".to_string(),
        "1.3.101.112" => "an Ed25519 key".to_string(),
        "1.3.101.113" => "an Ed448 key".to_string(),
        "1.2.840.10040.4.1" => "a DSA key".to_string(),
        other => format!("a key of algorithm {other}"),
    };
    Err(name)
}
