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

#[test]
fn generated_keys_are_written_in_cosigns_exact_json_shape() {
    use base64::Engine as _;
    let pair = generate().unwrap();
    let pem = pair.to_encrypted_pem(b"").unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let json = String::from_utf8(json).unwrap();
    assert!(
        json.starts_with(r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#),
        "{json}"
    );
    assert!(
        json.contains(r#""cipher":{"name":"nacl/secretbox","nonce":""#),
        "{json}"
    );
    assert!(json.contains(r#""ciphertext":""#), "{json}");
    // PEM lines of 64 columns, as Go writes them.
    assert!(pem.lines().all(|l| l.len() <= 64));
    // The older label reads the same.
    let old = pem.replace("SIGSTORE PRIVATE KEY", "COSIGN PRIVATE KEY");
    let read = PrivateKey::from_pem(&old, b"").unwrap();
    assert_eq!(read.public_key(), pair.public);
}

#[test]
fn private_keys_are_redacted_in_debug_output() {
    let pair = generate().unwrap();
    assert_eq!(
        format!("{:?}", pair.private),
        "PrivateKey(ecdsa-p256, <redacted>)"
    );
}

#[test]
fn openssl_keys_on_every_curve_sign_with_the_matching_sha2() {
    use crate::common::{openssl, require_openssl};
    if !require_openssl() {
        return;
    }
    for (curve, digest, name) in [
        ("prime256v1", "-sha256", "ecdsa-p256"),
        ("secp384r1", "-sha384", "ecdsa-p384"),
        ("secp521r1", "-sha512", "ecdsa-p521"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        // Without -noout: an EC PARAMETERS block precedes the SEC1 key.
        let sec1 = openssl(&["ecparam", "-name", curve, "-genkey"]);
        std::fs::write(path("sec1.pem"), &sec1).unwrap();
        let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &path("sec1.pem")]);
        let public = openssl(&["ec", "-in", &path("sec1.pem"), "-pubout"]);
        std::fs::write(path("key.pub"), &public).unwrap();
        let from_sec1 = PrivateKey::from_pem(std::str::from_utf8(&sec1).unwrap(), b"").unwrap();
        let from_pkcs8 = PrivateKey::from_pem(std::str::from_utf8(&pkcs8).unwrap(), b"").unwrap();
        let public = PublicKey::from_pem(std::str::from_utf8(&public).unwrap()).unwrap();
        assert_eq!(from_sec1.public_key(), public, "{curve}");
        assert_eq!(from_pkcs8.public_key(), public, "{curve}");
        assert_eq!(public.curve().name(), name);
        // openssl checks ferry's signature with the SHA-2 the curve calls for.
        std::fs::write(path("message"), b"message").unwrap();
        std::fs::write(path("sig"), from_pkcs8.sign(b"message")).unwrap();
        openssl(&[
            "dgst",
            digest,
            "-verify",
            &path("key.pub"),
            "-signature",
            &path("sig"),
            &path("message"),
        ]);
        // And ferry checks openssl's.
        let theirs = openssl(&["dgst", digest, "-sign", &path("sec1.pem"), &path("message")]);
        public.verify(b"message", &theirs).unwrap();
    }
}
