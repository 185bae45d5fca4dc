//! The names cosign, Sigstore and model_signing use, in one place for the
//! signer, the verifier and the registry code that stores signatures.

use ferry_spec::oci::Digest;

/// Media type of a Sigstore bundle v0.3: the referrer's `artifactType` and
/// its one layer's media type.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The same media type in the parameter form some tools write.
pub const BUNDLE_MEDIA_TYPE_WITH_VERSION: &str =
    "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// Bundle media types ferry reads.
pub const ACCEPTED_BUNDLE_MEDIA_TYPES: [&str; 2] =
    [BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE_WITH_VERSION];

/// Referrer manifest annotation saying what the bundle holds.
pub const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Its value for a DSSE envelope.
pub const BUNDLE_CONTENT_DSSE: &str = "dsse-envelope";
/// Referrer manifest annotation naming the statement's predicate type.
pub const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// Predicate type of cosign's image signatures (cosign v3 bundles).
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Predicate type of OpenSSF model signing v1.0.
pub const MODEL_SIGNING_PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto statement v1.
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// Layer media type of a legacy cosign signature (the simple-signing payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation carrying the base64 DER signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// The tag of a manifest's legacy signatures: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &Digest) -> String {
    format!(
        "{}-{}.sig",
        manifest_digest.algorithm(),
        manifest_digest.digest()
    )
}
