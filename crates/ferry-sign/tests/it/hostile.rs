//! Hostile input: every lie a key file, signature, bundle or payload can
//! tell, each refused with an error that names it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ferry_sign::artifact::{sign_manifest_bundle, verify_legacy, verify_manifest_bundle};
use ferry_sign::bundle::{Bundle, MAX_BUNDLE_SIZE};
use ferry_sign::dsse::Envelope;
use ferry_sign::{PrivateKey, PublicKey, SignError, generate};

use crate::common::{digest_of, openssl, require_openssl, vector};

/// An encrypted cosign key block around `json`.
fn encrypted_pem(json: &str) -> String {
    let body = STANDARD.encode(json);
    format!(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
}

fn key_json(n: u64, r: u64, p: u64) -> String {
    format!(
        r#"{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":{r},"p":{p}}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"ciphertext":"AAAA"}}"#
    )
}

#[test]
fn one_changed_byte_of_the_legacy_payload_fails() {
    let Some(dir) = vector("cosign-legacy-signature") else {
        return;
    };
    let mut payload = std::fs::read(dir.join("payload.json")).unwrap();
    let signature = std::fs::read_to_string(dir.join("payload.sig")).unwrap();
    let key =
        PublicKey::from_pem(&std::fs::read_to_string(dir.join("cosign.pub")).unwrap()).unwrap();
    // A digit of the digest: still valid JSON, a different manifest.
    let at = payload.windows(7).position(|w| w == b"sha256:").unwrap() + 7;
    payload[at] = if payload[at] == b'f' { b'e' } else { b'f' };
    let err = verify_legacy(&payload, &signature, &[key]).unwrap_err();
    assert!(matches!(err, SignError::NoValidSignature { .. }), "{err}");
    assert!(
        err.to_string().contains("made by none of the keys"),
        "{err}"
    );
}

#[test]
fn weak_or_absurd_scrypt_parameters_are_refused_before_scrypt_runs() {
    for (n, r, p) in [
        (1024, 8, 1),
        (65536, 1, 1),
        (65536, 8, 2),
        (1 << 40, 8, 1),
        (0, 8, 1),
    ] {
        let started = Instant::now();
        let err = PrivateKey::from_pem(&encrypted_pem(&key_json(n, r, p)), b"").unwrap_err();
        // N=2^40 would need a terabyte: it never ran.
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, SignError::KeyEncryption(_)), "{err}");
        assert!(
            err.to_string().contains(&format!("N={n}, r={r}, p={p}")),
            "{err}"
        );
    }
}

#[test]
fn other_kdfs_and_ciphers_are_refused() {
    let json = key_json(65536, 8, 1).replace("\"scrypt\"", "\"pbkdf2\"");
    let err = PrivateKey::from_pem(&encrypted_pem(&json), b"").unwrap_err();
    assert!(err.to_string().contains("kdf \"pbkdf2\""), "{err}");
    let json = key_json(65536, 8, 1).replace("nacl/secretbox", "aes-gcm");
    let err = PrivateKey::from_pem(&encrypted_pem(&json), b"").unwrap_err();
    assert!(err.to_string().contains("cipher \"aes-gcm\""), "{err}");
}

#[test]
fn a_corrupted_encrypted_key_is_a_wrong_password_error() {
    let pair = generate().unwrap();
    let pem = pair.to_encrypted_pem(b"pw").unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut json: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(body).unwrap()).unwrap();
    let mut ciphertext = STANDARD
        .decode(json["ciphertext"].as_str().unwrap())
        .unwrap();
    ciphertext[20] ^= 1;
    json["ciphertext"] = STANDARD.encode(ciphertext).into();
    let err = PrivateKey::from_pem(&encrypted_pem(&json.to_string()), b"pw").unwrap_err();
    assert!(matches!(err, SignError::WrongPassword), "{err}");
}

/// RFC 8410's example Ed25519 private key.
const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
/// RFC 8410's example Ed25519 public key.
const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

#[test]
fn ed25519_keys_are_refused_by_name() {
    let err = PrivateKey::from_pem(ED25519_PRIVATE, b"").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported key: an Ed25519 key (ferry uses ECDSA keys on P-256, P-384 or P-521)"
    );
    let err = PublicKey::from_pem(ED25519_PUBLIC).unwrap_err();
    assert!(err.to_string().contains("an Ed25519 key"), "{err}");
}

#[test]
fn rsa_keys_and_encrypted_pkcs8_are_refused_by_name() {
    if !require_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa.pem");
    let key = key.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        key,
    ]);
    let err = PrivateKey::from_pem(&std::fs::read_to_string(key).unwrap(), b"").unwrap_err();
    assert!(
        err.to_string().contains("unsupported key: an RSA key"),
        "{err}"
    );
    let public = String::from_utf8(openssl(&["pkey", "-in", key, "-pubout"])).unwrap();
    let err = PublicKey::from_pem(&public).unwrap_err();
    assert!(err.to_string().contains("an RSA key"), "{err}");
    let encrypted = String::from_utf8(openssl(&[
        "pkcs8", "-topk8", "-in", key, "-passout", "pass:x",
    ]))
    .unwrap();
    let err = PrivateKey::from_pem(&encrypted, b"x").unwrap_err();
    assert!(err.to_string().contains("an encrypted PKCS#8 key"), "{err}");
}

#[test]
fn other_curves_are_refused_by_name() {
    if !require_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let key = key.to_str().unwrap();
    openssl(&[
        "ecparam",
        "-name",
        "secp256k1",
        "-genkey",
        "-noout",
        "-out",
        key,
    ]);
    let err = PrivateKey::from_pem(&std::fs::read_to_string(key).unwrap(), b"").unwrap_err();
    assert!(
        err.to_string().contains("an EC key on curve 1.3.132.0.10"),
        "{err}"
    );
}

#[test]
fn malformed_pem_is_a_clear_error() {
    for (text, expected) in [
        ("not pem at all", "no PEM block"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA",
            "no -----END PUBLIC KEY----- line",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
            "malformed public key PEM",
        ),
    ] {
        let err = PublicKey::from_pem(text).unwrap_err();
        assert!(err.to_string().contains(expected), "{text:?}: {err}");
    }
    let err = PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("found a PEM block labelled \"CERTIFICATE\""),
        "{err}"
    );
    let huge = "A".repeat(100_000);
    let err = PublicKey::from_pem(&huge).unwrap_err();
    assert!(matches!(err, SignError::TooLarge { .. }), "{err}");
    // Valid base64 that is not a key.
    let junk = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(b"junk")
    );
    let err = PublicKey::from_pem(&junk).unwrap_err();
    assert!(
        err.to_string().contains("malformed public key DER"),
        "{err}"
    );
}

#[test]
fn malformed_base64_and_der_signatures_are_clear_errors() {
    let pair = generate().unwrap();
    let keys = [pair.public.clone()];
    let err = verify_legacy(b"{}", "%%% not base64", &keys).unwrap_err();
    assert!(
        err.to_string().starts_with("malformed signature base64"),
        "{err}"
    );
    let err = verify_legacy(b"{}", &STANDARD.encode(b"\x30\x02junk"), &keys).unwrap_err();
    assert!(
        err.to_string().contains("not a DER ECDSA signature"),
        "{err}"
    );
    let err = pair.public.verify(b"m", b"").unwrap_err();
    assert!(matches!(err, SignError::Malformed { .. }), "{err}");
}

#[test]
fn a_legacy_payload_of_another_type_is_refused_after_verification() {
    let pair = generate().unwrap();
    let payload = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"},"type":"atomic container signature"},"optional":null}"#;
    let signature = ferry_sign::artifact::sign_legacy(&pair.private, payload);
    let err = verify_legacy(payload, &signature, &[pair.public]).unwrap_err();
    assert!(
        err.to_string().contains("\"atomic container signature\""),
        "{err}"
    );
}

fn signed_bundle() -> (Vec<u8>, PublicKey, ferry_spec::oci::Digest) {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    let bundle = sign_manifest_bundle(&pair.private, &digest, None, &BTreeMap::new());
    (bundle, pair.public, digest)
}

#[test]
fn malformed_bundles_are_clear_errors() {
    let (bundle, key, digest) = signed_bundle();
    let keys = [key];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "malformed bundle JSON"),
        (b"[]".to_vec(), "malformed bundle JSON"),
        (
            String::from_utf8(bundle.clone()).unwrap().replace("bundle.v0.3+json", "bundle.v0.9+json").into_bytes(),
            "unexpected bundle mediaType",
        ),
        (
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{}}"#.to_vec(),
            "ferry verifies DSSE envelopes only",
        ),
        (
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"%%%","payloadType":"t","signatures":[]}}"#.to_vec(),
            "invalid base64",
        ),
    ];
    for (input, expected) in cases {
        let err = verify_manifest_bundle(&input, &keys, &digest).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?}, got {err}"
        );
    }
}

#[test]
fn a_wrong_dsse_payload_type_is_refused() {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    let bundle = sign_manifest_bundle(&pair.private, &digest, None, &BTreeMap::new());
    let mut parsed = Bundle::from_json(&bundle).unwrap();
    // Re-signed so only the type is wrong.
    parsed.dsse_envelope =
        Envelope::sign("text/plain", parsed.dsse_envelope.payload, &pair.private);
    let err = verify_manifest_bundle(&parsed.to_json(), &[pair.public], &digest).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected DSSE payloadType: \"text/plain\" (expected application/vnd.in-toto+json)"
    );
}

#[test]
fn a_signed_statement_of_another_predicate_or_type_is_refused() {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    for (payload, expected) in [
        (
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{}"}}}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{{}}}}"#,
                digest.digest()
            ),
            "unexpected in-toto predicateType",
        ),
        (
            r#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[],"predicateType":"x"}"#
                .to_string(),
            "unexpected in-toto statement _type",
        ),
        ("not json".to_string(), "malformed in-toto statement"),
    ] {
        let envelope = Envelope::sign(
            "application/vnd.in-toto+json",
            payload.into_bytes(),
            &pair.private,
        );
        let bundle = Bundle::new(envelope, "").to_json();
        let err = verify_manifest_bundle(&bundle, std::slice::from_ref(&pair.public), &digest)
            .unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?}, got {err}"
        );
    }
}

#[test]
fn a_huge_bundle_is_refused_unparsed() {
    let (_, key, digest) = signed_bundle();
    let huge = vec![b' '; MAX_BUNDLE_SIZE + 1];
    let err = verify_manifest_bundle(&huge, &[key], &digest).unwrap_err();
    assert!(matches!(err, SignError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains("over the 1048576-byte limit"),
        "{err}"
    );
}

#[test]
fn model_signatures_whose_parts_disagree_are_refused() {
    use ferry_sign::model::{HashOptions, sign_model, verify_model};
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("w"), b"weights").unwrap();
    let pair = generate().unwrap();
    let signature = sign_model(temp.path(), &pair.private, &HashOptions::default()).unwrap();
    let bundle = Bundle::from_json(&signature).unwrap();
    let mut statement: serde_json::Value =
        serde_json::from_slice(&bundle.dsse_envelope.payload).unwrap();
    statement["subject"][0]["digest"]["sha256"] = "00".repeat(32).into();
    let envelope = Envelope::sign(
        "application/vnd.in-toto+json",
        statement.to_string().into_bytes(),
        &pair.private,
    );
    let forged = Bundle::new(envelope, "").to_json();
    let err = verify_model(
        temp.path(),
        &forged,
        std::slice::from_ref(&pair.public),
        &HashOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("inconsistent model signature: root digest is 0000"),
        "{err}"
    );

    statement["predicate"]["serialization"]["method"] = "shards".into();
    let envelope = Envelope::sign(
        "application/vnd.in-toto+json",
        statement.to_string().into_bytes(),
        &pair.private,
    );
    let err = verify_model(
        temp.path(),
        &Bundle::new(envelope, "").to_json(),
        &[pair.public],
        &HashOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unexpected model serialization"),
        "{err}"
    );
}

#[test]
fn special_files_in_a_model_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let fifo = temp.path().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let err = ferry_sign::model::hash_model(temp.path(), &Default::default()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("pipe: not a regular file or directory"),
        "{err}"
    );
}
