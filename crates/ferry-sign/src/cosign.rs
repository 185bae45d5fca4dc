//! The policy's signature verifier for what is stored next to an artifact:
//! a `sigstoreSigned` requirement runs it on cosign's formats (a Sigstore
//! bundle referrer or a legacy `.sig` layer), a `modelSigned` requirement
//! on model signatures attached as bundle referrers.

use ferry_spec::oci::Digest;

use crate::artifact::{VerifiedSignature, verify_legacy, verify_manifest_bundle};
use crate::attestation::verify_attestation;
use crate::error::SignError;
use crate::keys::PublicKey;
use crate::media::SCAN_REPORT_PREDICATE_TYPE;
use crate::model::{ManifestEntry, SignedModel};
use crate::policy::{KeyMaterial, ModelSigned, ScanAttested, SignatureVerifier, Signed};

/// A signature found for an artifact, as fetched: bytes only, unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// The layer of a Sigstore bundle v0.3 referrer.
    Bundle(Vec<u8>),
    /// A layer of the `sha256-<hex>.sig` tag: the exact payload bytes and
    /// the base64 DER signature from its annotation.
    Legacy {
        /// The simple-signing payload, exactly as stored.
        payload: Vec<u8>,
        /// `dev.cosignproject.cosign/signature`.
        signature_b64: String,
    },
    /// A bundle referrer announcing an OpenSSF model signature.
    ModelBundle(Vec<u8>),
    /// A bundle referrer announcing ferry's signed scan report.
    ScanBundle(Vec<u8>),
}

/// Verifies cosign signatures of the manifest `expected` names. A valid
/// signature of another digest is reported as signed (with its digest), so
/// the policy can say that it covers something else.
#[derive(Debug, Clone)]
pub struct CosignVerifier {
    expected: Digest,
    files: Option<Result<Vec<ManifestEntry>, String>>,
}

impl CosignVerifier {
    /// A verifier for signatures of `expected` (the resolved manifest).
    pub fn new(expected: Digest) -> Self {
        CosignVerifier {
            expected,
            files: None,
        }
    }

    /// Also verifies model signatures against `files`, the artifact's files
    /// read from its layers, or the reason they cannot be signed (a
    /// symbolic link among them).
    pub fn with_artifact_files(mut self, files: Result<Vec<ManifestEntry>, String>) -> Self {
        self.files = Some(files);
        self
    }
}

impl SignatureVerifier<Candidate> for CosignVerifier {
    fn verify(
        &self,
        candidate: &Candidate,
        keys: &[KeyMaterial],
    ) -> Result<Option<Signed>, String> {
        let keys = public_keys(keys)?;
        let verified = match candidate {
            Candidate::Bundle(bytes) => verify_manifest_bundle(bytes, &keys, &self.expected),
            Candidate::Legacy {
                payload,
                signature_b64,
            } => verify_legacy(payload, signature_b64, &keys),
            Candidate::ModelBundle(_) => {
                return Err("a model signature, not a signature of the manifest".to_string());
            }
            Candidate::ScanBundle(_) => {
                return Err("a scan report, not a signature of the manifest".to_string());
            }
        };
        match verified {
            Ok(verified) => Ok(Some(signed(verified))),
            // The signature verified, over another digest: the policy's
            // digest check names both.
            Err(SignError::DigestMismatch { signed, .. }) => Ok(Some(Signed {
                manifest_digest: signed.to_string(),
                docker_reference: None,
                key: "a trusted key".to_string(),
            })),
            Err(SignError::NoValidSignature { .. }) => Ok(None),
            Err(other) => Err(other.to_string()),
        }
    }

    fn verify_model(
        &self,
        candidate: &Candidate,
        keys: &[KeyMaterial],
    ) -> Result<Option<ModelSigned>, String> {
        let Candidate::ModelBundle(bytes) = candidate else {
            return Err("not a model signature".to_string());
        };
        let files = match &self.files {
            Some(Ok(files)) => files,
            Some(Err(reason)) => return Err(reason.clone()),
            None => return Err("the artifact's files were not read".to_string()),
        };
        let keys = public_keys(keys)?;
        let signed = match SignedModel::verify(bytes, &keys) {
            Ok(signed) => signed,
            Err(SignError::NoValidSignature { .. }) => return Ok(None),
            Err(other) => return Err(other.to_string()),
        };
        signed
            .matches_files(files.iter().map(|e| (e.name.as_str(), e.sha256)))
            .map_err(|e| e.to_string())?;
        Ok(Some(ModelSigned {
            files: signed.verified().files,
            key: signed.verified().key.fingerprint.clone(),
        }))
    }

    fn verify_scan(
        &self,
        candidate: &Candidate,
        keys: &[KeyMaterial],
    ) -> Result<Option<ScanAttested>, String> {
        let Candidate::ScanBundle(bytes) = candidate else {
            return Err("not a scan report".to_string());
        };
        let keys = public_keys(keys)?;
        match verify_attestation(bytes, &keys, SCAN_REPORT_PREDICATE_TYPE, &self.expected) {
            Ok(attested) => Ok(Some(ScanAttested {
                verdict: attested
                    .predicate
                    .get("verdict")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
                key: attested.key.fingerprint,
            })),
            Err(SignError::NoValidSignature { .. }) => Ok(None),
            Err(other) => Err(other.to_string()),
        }
    }
}

fn signed(verified: VerifiedSignature) -> Signed {
    Signed {
        manifest_digest: verified.manifest_digest.to_string(),
        docker_reference: verified.docker_reference,
        key: verified.key.fingerprint,
    }
}

/// The policy's keys as public keys; one that is not a public key PEM is an
/// error naming where it came from (a policy problem, not a bad signature).
fn public_keys(keys: &[KeyMaterial]) -> Result<Vec<PublicKey>, String> {
    keys.iter()
        .map(|key| {
            let text = std::str::from_utf8(&key.pem)
                .map_err(|_| format!("key {}: not a PEM text file", key.origin))?;
            PublicKey::from_pem(text).map_err(|e| format!("key {}: {e}", key.origin))
        })
        .collect()
}
