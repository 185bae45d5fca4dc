//! cosign signatures as stored next to an artifact, moved as bytes (the
//! cryptography is `ferry-sign`'s): v3 bundles are referrers of the signed
//! manifest (found through the referrers API or the fallback tag), legacy
//! simple signatures are layers of the manifest under `<alg>-<hex>.sig` in
//! the same repository.
//!
//! Finding ([`find_signatures`], [`local_signatures`]) returns every
//! candidate as found, without judging it: a signature of another digest
//! under this digest's tag is returned too, and the verifier rejects it.
//! Every read is capped ([`MAX_BUNDLE_BYTES`], [`MAX_PAYLOAD_BYTES`],
//! [`MAX_SIGNATURES`], manifests at [`crate::api::MAX_DOCUMENT_BYTES`]).
//! Appending to a `.sig` tag keeps the signatures already there; on a
//! registry it is a read-modify-write confirmed like the fallback tag's
//! (see [`crate::referrers::FallbackPolicy`]).

mod formats;
mod local;
mod remote;
mod travel;

use ferry_spec::oci::Digest;
use ferry_spec::signature::{MODEL_SIGNING_PREDICATE, SCAN_REPORT_PREDICATE};

pub use local::{local_signatures, store_bundle_referrer, store_legacy_signature};
pub use remote::{append_legacy_signature, attach_bundle, find_signatures};
pub use travel::{SignaturesMoved, pull_signatures, push_signatures};

/// The largest bundle layer read or written.
pub const MAX_BUNDLE_BYTES: u64 = 1024 * 1024;
/// The largest legacy payload read or written.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// The most signatures (bundles and legacy ones together) of one manifest.
pub const MAX_SIGNATURES: usize = 100;

impl SignatureCandidate {
    /// True for a bundle announcing an OpenSSF model signature.
    pub fn is_model_signature(&self) -> bool {
        self.announces(MODEL_SIGNING_PREDICATE)
    }

    /// True for a bundle announcing ferry's signed scan report. Every
    /// candidate that is neither is a signature of the manifest (cosign's
    /// formats).
    pub fn is_scan_report(&self) -> bool {
        self.announces(SCAN_REPORT_PREDICATE)
    }

    fn announces(&self, predicate: &str) -> bool {
        matches!(self, Self::Bundle { predicate_type: Some(t), .. } if t == predicate)
    }
}

/// A signature found next to a manifest, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCandidate {
    /// A Sigstore bundle stored as a referrer (cosign v3's signature, or
    /// a model signature of the artifact's files).
    Bundle {
        /// The referrer manifest's digest.
        referrer: Digest,
        /// The bundle JSON, exactly as stored.
        bytes: Vec<u8>,
        /// The `dev.sigstore.bundle.predicateType` the referrer announces
        /// (unverified: it only says which verifier to ask).
        predicate_type: Option<String>,
    },
    /// A legacy simple signature, one layer of the `.sig` tag.
    Legacy {
        /// The layer's digest (that of the payload).
        layer: Digest,
        /// The exact signed payload bytes.
        payload: Vec<u8>,
        /// The layer's `dev.cosignproject.cosign/signature` annotation.
        signature_b64: String,
        /// `registry/repository` holding the tag.
        tag_repository: String,
    },
}
