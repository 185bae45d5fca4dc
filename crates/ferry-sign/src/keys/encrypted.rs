//! cosign's encrypted private key: a PEM block whose body is JSON naming
//! scrypt and nacl/secretbox, wrapping a PKCS#8 DER key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, SignError};

/// The label cosign writes today.
pub(crate) const LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label older cosign releases wrote.
pub(crate) const OLD_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// The scrypt cost cosign writes.
const WRITE_N: u64 = 65536;
/// The costs cosign releases have written; others are refused before
/// scrypt runs (too weak to trust, or large enough to exhaust memory).
const ACCEPTED_N: [u64; 3] = [32768, 65536, 131072];
const SCRYPT_R: u64 = 8;
const SCRYPT_P: u64 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER key inside an encrypted block's body (`json`).
pub(crate) fn decrypt(json: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key: EncryptedKey =
        serde_json::from_slice(json).map_err(|e| SignError::malformed("encrypted key JSON", e))?;
    if key.kdf.name != "scrypt" {
        return Err(SignError::KeyEncryption(format!("kdf {:?}", key.kdf.name)));
    }
    if key.cipher.name != "nacl/secretbox" {
        return Err(SignError::KeyEncryption(format!(
            "cipher {:?}",
            key.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = key.kdf.params;
    if !ACCEPTED_N.contains(&n) || r != SCRYPT_R || p != SCRYPT_P {
        return Err(SignError::KeyEncryption(format!("N={n}, r={r}, p={p}")));
    }
    let salt = decode_b64(&key.kdf.salt, "encrypted key salt")?;
    let nonce = decode_b64(&key.cipher.nonce, "encrypted key nonce")?;
    if nonce.len() != NONCE_LEN {
        return Err(SignError::malformed(
            "encrypted key nonce",
            format!("{} bytes, not {NONCE_LEN}", nonce.len()),
        ));
    }
    let ciphertext = decode_b64(&key.ciphertext, "encrypted key ciphertext")?;
    let secret = derive_key(password, &salt, n)?;
    let cipher = XSalsa20Poly1305::new(secret.as_slice().into());
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| SignError::WrongPassword)
}

/// The JSON body of an encrypted block for `pkcs8_der`, with a fresh salt
/// and nonce.
pub(crate) fn encrypt(pkcs8_der: &[u8], password: &[u8]) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|e| SignError::Random(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| SignError::Random(e.to_string()))?;
    let secret = derive_key(password, &salt, WRITE_N)?;
    let cipher = XSalsa20Poly1305::new(secret.as_slice().into());
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), pkcs8_der)
        .map_err(|_| SignError::KeyEncryption("encryption failed".to_string()))?;
    let body = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".to_string(),
            params: ScryptParams {
                n: WRITE_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: STANDARD.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".to_string(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(ciphertext),
    };
    serde_json::to_vec(&body).map_err(|e| SignError::malformed("encrypted key JSON", e))
}

/// scrypt(password, salt, n, 8, 1) into 32 bytes; `n` is one of ours.
fn derive_key(password: &[u8], salt: &[u8], n: u64) -> Result<Zeroizing<[u8; 32]>> {
    let log_n = n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, SCRYPT_R as u32, SCRYPT_P as u32)
        .map_err(|e| SignError::KeyEncryption(e.to_string()))?;
    let mut secret = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, secret.as_mut_slice())
        .map_err(|e| SignError::KeyEncryption(e.to_string()))?;
    Ok(secret)
}

fn decode_b64(text: &str, what: &'static str) -> Result<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|e| SignError::malformed(what, e))
}
