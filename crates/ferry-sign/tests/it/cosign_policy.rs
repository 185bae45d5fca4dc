//! The policy with real cosign signatures: `CosignVerifier` is what a
//! `sigstoreSigned` requirement runs on bundles and legacy `.sig` layers.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_sign::artifact::{sign_legacy, sign_manifest_bundle, simple_signing_payload};
use ferry_sign::cosign::{Candidate, CosignVerifier};
use ferry_sign::keys::PrivateKey;
use ferry_sign::policy::Policy;
use ferry_spec::digest::sha256_digest;
use ferry_spec::names::parse_reference;
use ferry_spec::oci::Digest;

use crate::common::{vector, vector_text};

/// A policy trusting the public key at `key` for `scope` (matchRepository),
/// rejecting everything else.
fn policy(scope: &str, key: &Path) -> Policy {
    let json = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {scope: [{
            "type": "sigstoreSigned",
            "keyPath": key,
            "signedIdentity": {"type": "matchRepository"},
        }]}},
    });
    Policy::from_json(json.to_string().as_bytes()).unwrap()
}

fn generated(dir: &Path, name: &str) -> (PrivateKey, std::path::PathBuf) {
    let pair = ferry_sign::generate().unwrap();
    let path = dir.join(format!("{name}.pub"));
    std::fs::write(&path, pair.public.to_pem()).unwrap();
    (pair.private, path)
}

fn legacy(key: &PrivateKey, identity: &str, digest: &Digest) -> Candidate {
    let payload = simple_signing_payload(identity, digest, &BTreeMap::new());
    let signature_b64 = sign_legacy(key, &payload);
    Candidate::Legacy {
        payload,
        signature_b64,
    }
}

fn decide(
    policy: &Policy,
    image: &str,
    digest: &Digest,
    candidates: &[Candidate],
) -> (bool, String) {
    let image = parse_reference(image).unwrap();
    let decision = policy.evaluate(
        &image,
        digest.as_ref(),
        candidates,
        &CosignVerifier::new(digest.clone()),
    );
    (decision.is_accepted(), decision.to_string())
}

#[test]
fn signatures_made_by_the_trusted_key_for_this_digest_and_repository_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generated(dir.path(), "trusted");
    let policy = policy("registry.example.com/ns", &public);
    let digest = sha256_digest(b"the manifest");
    let image = "registry.example.com/ns/m:v1";

    let legacy_signature = legacy(&key, "registry.example.com/ns/m", &digest);
    let (accepted, why) = decide(&policy, image, &digest, &[legacy_signature]);
    assert!(accepted, "{why}");

    let bundle = sign_manifest_bundle(
        &key,
        &digest,
        Some("registry.example.com/ns/m"),
        &BTreeMap::new(),
    );
    let (accepted, why) = decide(&policy, image, &digest, &[Candidate::Bundle(bundle)]);
    assert!(accepted, "{why}");
}

#[test]
fn wrong_key_other_digest_and_replayed_repository_are_rejected_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (trusted, public) = generated(dir.path(), "trusted");
    let (stranger, _) = generated(dir.path(), "stranger");
    let policy = policy("registry.example.com/ns", &public);
    let digest = sha256_digest(b"the manifest");
    let other = sha256_digest(b"another manifest");
    let image = "registry.example.com/ns/m:v1";

    let (accepted, why) = decide(
        &policy,
        image,
        &digest,
        &[legacy(&stranger, "registry.example.com/ns/m", &digest)],
    );
    assert!(!accepted);
    assert!(why.contains("no key verifies"), "{why}");

    let (accepted, why) = decide(
        &policy,
        image,
        &digest,
        &[legacy(&trusted, "registry.example.com/ns/m", &other)],
    );
    assert!(!accepted);
    assert!(why.contains(&other.to_string()), "{why}");

    let bundle = sign_manifest_bundle(
        &trusted,
        &other,
        Some("registry.example.com/ns/m"),
        &BTreeMap::new(),
    );
    let (accepted, why) = decide(&policy, image, &digest, &[Candidate::Bundle(bundle)]);
    assert!(!accepted, "a bundle of another digest was accepted");
    assert!(why.contains(&other.to_string()), "{why}");

    // A valid signature of this digest made for another repository.
    let (accepted, why) = decide(
        &policy,
        image,
        &digest,
        &[legacy(&trusted, "registry.example.com/ns/other", &digest)],
    );
    assert!(
        !accepted,
        "a signature replayed from another repository was accepted"
    );
    assert!(why.contains("registry.example.com/ns/other"), "{why}");

    // One good signature among bad ones is enough.
    let (accepted, why) = decide(
        &policy,
        image,
        &digest,
        &[
            legacy(&stranger, "registry.example.com/ns/m", &digest),
            Candidate::Bundle(b"{not json".to_vec()),
            legacy(&trusted, "registry.example.com/ns/m", &digest),
        ],
    );
    assert!(accepted, "{why}");
}

#[test]
fn the_cosign_legacy_vector_satisfies_a_policy_for_its_repository() {
    let (Some(public), Some(payload), Some(signature)) = (
        vector("cosign-legacy-signature/cosign.pub"),
        vector("cosign-legacy-signature/payload.json"),
        vector_text("cosign-legacy-signature/payload.sig"),
    ) else {
        return;
    };
    let payload = std::fs::read(payload).unwrap();
    let signed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let identity = signed["critical"]["identity"]["docker-reference"]
        .as_str()
        .unwrap()
        .to_string();
    let digest: Digest = signed["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let host = identity.split('/').next().unwrap();
    let policy = policy(host, &public);
    let candidate = Candidate::Legacy {
        payload,
        signature_b64: signature,
    };
    let (accepted, why) = decide(
        &policy,
        &format!("{identity}:latest"),
        &digest,
        std::slice::from_ref(&candidate),
    );
    assert!(accepted, "{why}");
    let (accepted, _) = decide(
        &policy,
        &format!("{host}/elsewhere:latest"),
        &digest,
        &[candidate],
    );
    assert!(
        !accepted,
        "the vector's signature was accepted for another repository"
    );
}
