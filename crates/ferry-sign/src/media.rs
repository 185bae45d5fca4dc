//! The names cosign, Sigstore and model_signing use, in one place for the
//! signer, the verifier and the registry code that stores signatures.

// How signatures are stored in registries is shared vocabulary (the
// registry client moves them without this crate): ferry-spec keeps it.
pub use ferry_spec::signature::{
    BUNDLE_CONTENT as BUNDLE_CONTENT_ANNOTATION, BUNDLE_CONTENT_DSSE, BUNDLE_MEDIA_TYPE,
    BUNDLE_PREDICATE_TYPE as BUNDLE_PREDICATE_TYPE_ANNOTATION,
    COSIGN_SIGN_PREDICATE as COSIGN_SIGN_PREDICATE_TYPE, COSIGN_SIGNATURE as SIGNATURE_ANNOTATION,
    MODEL_SIGNING_PREDICATE as MODEL_SIGNING_PREDICATE_TYPE,
    SCAN_REPORT_PREDICATE as SCAN_REPORT_PREDICATE_TYPE,
    SIMPLESIGNING_MEDIA_TYPE as SIMPLE_SIGNING_MEDIA_TYPE, signature_tag,
};

/// The same media type in the parameter form some tools write.
pub const BUNDLE_MEDIA_TYPE_WITH_VERSION: &str =
    "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// Bundle media types ferry reads.
pub const ACCEPTED_BUNDLE_MEDIA_TYPES: [&str; 2] =
    [BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE_WITH_VERSION];

/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto statement v1.
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// `critical.type` of a cosign simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
