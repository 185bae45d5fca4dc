//! Everything ferry-sign reads from the outside, on arbitrary bytes: key
//! PEM (public and private), Sigstore bundles and legacy simple-signing
//! payloads verified with a fixed key, OpenSSF model signatures (from a
//! directory and as a policy's `modelSigned` candidate), and
//! containers-policy.json.
//!
//! Invariants: never panics; nothing made from arbitrary bytes verifies
//! with a key the fuzzer does not hold; a policy that loads evaluates
//! without panicking.

#![no_main]

use std::sync::OnceLock;

use ferry_sign::artifact::{verify_legacy, verify_manifest_bundle};
use ferry_sign::cosign::{Candidate, CosignVerifier};
use ferry_sign::keys::{PrivateKey, PublicKey};
use ferry_sign::policy::Policy;
use ferry_spec::digest::sha256_digest;
use ferry_spec::names::parse_reference;
use libfuzzer_sys::fuzz_target;

/// A key made once per process: arbitrary input cannot hold its private half.
fn key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| ferry_sign::generate().expect("key generation").public)
}

/// An empty model directory (a signature never gets as far as hashing it).
fn empty_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"))
        .path()
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, data)) = bytes.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let digest = sha256_digest(b"fuzzed manifest");
    match selector % 7 {
        0 => {
            let _ = PublicKey::from_pem(&text);
        }
        1 => {
            // Encrypted keys only decrypt with cosign's exact parameters;
            // anything else is refused before scrypt runs.
            let _ = PrivateKey::from_pem(&text, b"");
        }
        2 => {
            let verified = verify_manifest_bundle(data, std::slice::from_ref(key()), &digest);
            assert!(verified.is_err(), "an arbitrary bundle verified");
        }
        3 => {
            let (payload, signature) = data.split_at(data.len() / 2);
            let signature = String::from_utf8_lossy(signature);
            let verified = verify_legacy(payload, &signature, std::slice::from_ref(key()));
            assert!(verified.is_err(), "an arbitrary legacy signature verified");
        }
        4 => {
            let verified = ferry_sign::model::verify_model(
                empty_dir(),
                data,
                std::slice::from_ref(key()),
                &ferry_sign::model::HashOptions::default(),
            );
            assert!(verified.is_err(), "an arbitrary model signature verified");
        }
        5 => {
            let signed = ferry_sign::model::SignedModel::verify(data, std::slice::from_ref(key()));
            assert!(signed.is_err(), "an arbitrary model signature verified");
        }
        _ => {
            let Ok(policy) = Policy::from_json(data) else {
                return;
            };
            let image = parse_reference("registry.example.com/ns/m:v1").expect("reference");
            let candidates = [
                Candidate::Bundle(data.to_vec()),
                Candidate::ModelBundle(data.to_vec()),
            ];
            let verifier = CosignVerifier::new(digest.clone()).with_artifact_files(Ok(Vec::new()));
            let _ = policy.evaluate(&image, digest.as_ref(), &candidates, &verifier);
        }
    }
});
