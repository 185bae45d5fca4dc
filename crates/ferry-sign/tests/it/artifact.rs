//! Artifact signatures: cosign's legacy simple signing and v3 bundles.

use std::collections::BTreeMap;

use ferry_sign::artifact::{
    sign_legacy, sign_manifest_bundle, simple_signing_payload, verify_legacy,
    verify_manifest_bundle,
};
use ferry_sign::bundle::Bundle;
use ferry_sign::media::signature_tag;
use ferry_sign::{PublicKey, SignError, SignatureFormat, generate};

use crate::common::{digest_of, openssl, require_openssl, vector};

fn legacy_vector() -> Option<(Vec<u8>, String, PublicKey)> {
    let dir = vector("cosign-legacy-signature")?;
    let payload = std::fs::read(dir.join("payload.json")).unwrap();
    let signature = std::fs::read_to_string(dir.join("payload.sig")).unwrap();
    let key =
        PublicKey::from_pem(&std::fs::read_to_string(dir.join("cosign.pub")).unwrap()).unwrap();
    Some((payload, signature, key))
}

#[test]
fn the_cosign_legacy_vector_verifies() {
    let Some((payload, signature, key)) = legacy_vector() else {
        return;
    };
    let verified = verify_legacy(&payload, &signature, std::slice::from_ref(&key)).unwrap();
    assert_eq!(verified.format, SignatureFormat::Legacy);
    assert_eq!(verified.key, key.description());
    assert_eq!(
        verified.manifest_digest.to_string(),
        "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"
    );
    assert_eq!(
        verified.docker_reference.as_deref(),
        Some("registry-testing.svc.lan/busybox")
    );
    assert!(verified.annotations.is_empty());
    // ferry writes the payload byte for byte as cosign does.
    let rebuilt = simple_signing_payload(
        "registry-testing.svc.lan/busybox",
        &verified.manifest_digest,
        &BTreeMap::new(),
    );
    assert_eq!(rebuilt, payload);
}

#[test]
fn legacy_signatures_round_trip_with_annotations() {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    let annotations = BTreeMap::from([("team".to_string(), "ml".to_string())]);
    let payload = simple_signing_payload("example.com/models/llama", &digest, &annotations);
    assert!(payload.ends_with(br#""optional":{"team":"ml"}}"#));
    let signature = sign_legacy(&pair.private, &payload);
    let verified = verify_legacy(&payload, &signature, std::slice::from_ref(&pair.public)).unwrap();
    verified.check(&digest, &annotations).unwrap();
    let wanted = BTreeMap::from([("team".to_string(), "web".to_string())]);
    let err = verified.check(&digest, &wanted).unwrap_err();
    assert!(matches!(err, SignError::AnnotationMismatch { .. }), "{err}");
}

#[test]
fn an_openssl_signature_over_the_payload_verifies() {
    if !require_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let payload_path = dir.path().join("payload.json");
    let payload = simple_signing_payload(
        "example.com/models/llama",
        &digest_of("manifest"),
        &BTreeMap::new(),
    );
    std::fs::write(&payload_path, &payload).unwrap();
    let key = key.to_str().unwrap();
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key,
    ]);
    let public = String::from_utf8(openssl(&["ec", "-in", key, "-pubout"])).unwrap();
    let signature = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key,
        payload_path.to_str().unwrap(),
    ]);
    let signature_b64 = base64_encode(&signature);
    let public = PublicKey::from_pem(&public).unwrap();
    verify_legacy(&payload, &signature_b64, &[public]).unwrap();
    // The same key read by ferry from openssl's SEC1 file signs verifiably.
    let private =
        ferry_sign::PrivateKey::from_pem(&std::fs::read_to_string(key).unwrap(), b"").unwrap();
    let ours = sign_legacy(&private, &payload);
    verify_legacy(&payload, &ours, &[private.public_key()]).unwrap();
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn high_s_signatures_are_accepted() {
    use p256::elliptic_curve::ff::PrimeField;
    let pair = generate().unwrap();
    let ferry_sign::PrivateKey::P256(_) = &pair.private else {
        panic!("generate makes P-256 keys");
    };
    let message = b"payload";
    let der = pair.private.sign(message);
    let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
    let (r, s) = signature.split_scalars();
    let flipped = p256::ecdsa::Signature::from_scalars(r.to_repr(), (-*s).to_repr()).unwrap();
    let flipped_der = flipped.to_der().as_bytes().to_vec();
    assert_ne!(flipped_der, der);
    // One of the two is high-S (normalizing changes it); both verify.
    assert!(signature.normalize_s() != signature || flipped.normalize_s() != flipped);
    pair.public.verify(message, &der).unwrap();
    pair.public.verify(message, &flipped_der).unwrap();
}

#[test]
fn bundles_round_trip_and_report_what_they_sign() {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    let annotations = BTreeMap::from([("release".to_string(), "1.0".to_string())]);
    let bundle = sign_manifest_bundle(
        &pair.private,
        &digest,
        Some("example.com/models/llama"),
        &annotations,
    );
    let parsed = Bundle::from_json(&bundle).unwrap();
    assert_eq!(
        parsed.media_type,
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(
        parsed.dsse_envelope.payload_type,
        "application/vnd.in-toto+json"
    );
    let statement: serde_json::Value =
        serde_json::from_slice(&parsed.dsse_envelope.payload).unwrap();
    assert_eq!(
        statement["predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.digest());
    assert_eq!(statement["subject"][0]["annotations"]["release"], "1.0");
    let verified =
        verify_manifest_bundle(&bundle, std::slice::from_ref(&pair.public), &digest).unwrap();
    assert_eq!(verified.format, SignatureFormat::Bundle);
    assert_eq!(verified.manifest_digest, digest);
    assert_eq!(
        verified.docker_reference.as_deref(),
        Some("example.com/models/llama")
    );
    assert_eq!(verified.annotations, annotations);
    assert_eq!(verified.key, pair.public.description());
}

#[test]
fn a_valid_signature_of_another_digest_is_reported_as_such() {
    let pair = generate().unwrap();
    let signed = digest_of("the signed manifest");
    let resolved = digest_of("the resolved manifest");
    let bundle = sign_manifest_bundle(&pair.private, &signed, None, &BTreeMap::new());
    let err =
        verify_manifest_bundle(&bundle, std::slice::from_ref(&pair.public), &resolved).unwrap_err();
    match &err {
        SignError::DigestMismatch {
            signed: s,
            expected,
        } => {
            assert_eq!(s, &signed);
            assert_eq!(expected, &resolved);
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("the signature is valid but signs sha256:")
    );
    // The legacy form says the same through check().
    let payload = simple_signing_payload("example.com/m", &signed, &BTreeMap::new());
    let verified = verify_legacy(
        &payload,
        &sign_legacy(&pair.private, &payload),
        &[pair.public],
    )
    .unwrap();
    let err = verified.check(&resolved, &BTreeMap::new()).unwrap_err();
    assert!(matches!(err, SignError::DigestMismatch { .. }), "{err}");
}

#[test]
fn one_good_signature_among_bad_ones_verifies_and_only_bad_ones_fail() {
    let signer = generate().unwrap();
    let stranger = generate().unwrap();
    let digest = digest_of("manifest");
    let bundle = sign_manifest_bundle(&signer.private, &digest, None, &BTreeMap::new());
    let mut parsed = Bundle::from_json(&bundle).unwrap();
    let good = parsed.dsse_envelope.signatures[0].clone();
    let mut bad = good.clone();
    bad.sig = stranger.private.sign(&ferry_sign::dsse::pae(
        &parsed.dsse_envelope.payload_type,
        &parsed.dsse_envelope.payload,
    ));
    let mut malformed = good.clone();
    malformed.sig = b"not DER".to_vec();
    parsed.dsse_envelope.signatures = vec![bad.clone(), malformed.clone(), good];
    let keys = [signer.public.clone()];
    verify_manifest_bundle(&parsed.to_json(), &keys, &digest).unwrap();

    parsed.dsse_envelope.signatures = vec![bad, malformed];
    let err = verify_manifest_bundle(&parsed.to_json(), &keys, &digest).unwrap_err();
    let SignError::NoValidSignature { problems, .. } = &err else {
        panic!("expected no valid signature, got {err}");
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("made by none of the keys"), "{err}");
    assert!(problems[1].contains("not a DER ECDSA signature"), "{err}");
}

#[test]
fn the_key_hint_never_selects_the_key() {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    let bundle = sign_manifest_bundle(&pair.private, &digest, None, &BTreeMap::new());
    let mut parsed = Bundle::from_json(&bundle).unwrap();
    parsed.verification_material.public_key = None;
    let other = generate().unwrap().public;
    verify_manifest_bundle(&parsed.to_json(), &[other, pair.public], &digest).unwrap();
}

#[test]
fn the_signature_tag_is_algorithm_dash_hex_dot_sig() {
    let digest = digest_of("manifest");
    assert_eq!(
        signature_tag(&digest),
        Some(format!("sha256-{}.sig", digest.digest()))
    );
}

#[test]
fn the_parameter_form_of_the_bundle_media_type_is_accepted() {
    let pair = generate().unwrap();
    let digest = digest_of("manifest");
    let bundle = sign_manifest_bundle(&pair.private, &digest, None, &BTreeMap::new());
    let mut parsed = Bundle::from_json(&bundle).unwrap();
    parsed.media_type = "application/vnd.dev.sigstore.bundle+json;version=0.3".to_string();
    verify_manifest_bundle(&parsed.to_json(), &[pair.public], &digest).unwrap();
}
