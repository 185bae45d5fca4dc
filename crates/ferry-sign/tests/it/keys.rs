//! Keys: cosign's encrypted format, plain PEM keys, generation, signing.

use ferry_sign::{PrivateKey, PublicKey, SignError, generate};

use crate::common::vector_text;

#[test]
fn cosign_encrypted_key_vector_decrypts_with_the_empty_password() {
    let (Some(key), Some(public)) = (
        vector_text("cosign-encrypted-key/cosign.key"),
        vector_text("cosign-encrypted-key/cosign.pub"),
    ) else {
        return;
    };
    let private = PrivateKey::from_pem(&key, b"").unwrap();
    let public = PublicKey::from_pem(&public).unwrap();
    assert_eq!(private.public_key(), public);
    let signature = private.sign(b"payload");
    public.verify(b"payload", &signature).unwrap();
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let Some(key) = vector_text("cosign-encrypted-key/cosign.key") else {
        return;
    };
    let err = PrivateKey::from_pem(&key, b"not the password").unwrap_err();
    assert!(matches!(err, SignError::WrongPassword), "{err}");
    assert_eq!(err.to_string(), "wrong password or corrupted key");
}

#[test]
fn generated_keys_round_trip_through_the_encrypted_format() {
    let pair = generate().unwrap();
    let pem = pair.to_encrypted_pem(b"hunter2").unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    let read = PrivateKey::from_pem(&pem, b"hunter2").unwrap();
    let public = PublicKey::from_pem(&pair.public_pem()).unwrap();
    assert_eq!(read.public_key(), public);
    let signature = read.sign(b"message");
    public.verify(b"message", &signature).unwrap();
    assert!(public.verify(b"other message", &signature).is_err());
}

#[test]
fn the_model_signing_hint_is_the_sha256_of_the_pem() {
    let Some(text) = vector_text("model-signing-ec-key/signing-key-pub.pem") else {
        return;
    };
    let key = PublicKey::from_pem(&text).unwrap();
    assert_eq!(key.to_pem(), text);
    assert_eq!(
        key.model_signing_hint(),
        "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e"
    );
}
