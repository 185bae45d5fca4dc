//! The one error type of `ferry-sign`: every variant names what failed.

use std::path::PathBuf;

use ferry_spec::oci::Digest;

/// Why a key, signature or model could not be read, made or verified.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Bytes that should be PEM, base64, DER or JSON are not.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read (e.g. "public key PEM", "bundle JSON").
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A PEM block of another kind than the one asked for.
    #[error("expected {expected}, found a PEM block labelled {found:?}")]
    UnexpectedPem {
        /// What the caller asked for.
        expected: &'static str,
        /// The label found.
        found: String,
    },
    /// A key of a type or curve ferry does not sign or verify with.
    #[error("unsupported key: {0} (ferry uses ECDSA keys on P-256, P-384 or P-521)")]
    UnsupportedKey(String),
    /// An encrypted cosign key whose KDF or cipher is not cosign's.
    #[error(
        "refusing encrypted key parameters {0}: cosign keys use scrypt with N of 32768, 65536 or 131072, r=8, p=1 and nacl/secretbox"
    )]
    KeyEncryption(String),
    /// Decryption failed: the password is wrong or the key was altered.
    #[error("wrong password or corrupted key")]
    WrongPassword,
    /// The system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// A DSSE envelope or bundle of another kind than expected.
    #[error("unexpected {what}: {found:?} (expected {expected})")]
    Unexpected {
        /// The field (e.g. "DSSE payloadType").
        what: &'static str,
        /// What was found.
        found: String,
        /// What ferry accepts.
        expected: String,
    },
    /// Input larger than ferry reads for its kind.
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// What was refused.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No signature verified with any of the keys.
    #[error("no signature verifies with the given {keys} key(s) ({})", problems.join("; "))]
    NoValidSignature {
        /// How many keys were tried.
        keys: usize,
        /// One line per signature that failed, saying why.
        problems: Vec<String>,
    },
    /// A valid signature, but of another manifest.
    #[error("the signature is valid but signs {signed}, not {expected}")]
    DigestMismatch {
        /// The digest the signature covers.
        signed: Digest,
        /// The digest the caller resolved.
        expected: Digest,
    },
    /// A valid signature whose annotations are not the ones required.
    #[error("the signature's annotation {key:?} is {found:?}, not {wanted:?}")]
    AnnotationMismatch {
        /// The annotation key.
        key: String,
        /// The value required.
        wanted: String,
        /// The value signed (None: absent).
        found: Option<String>,
    },
    /// The model directory differs from what the signature covers.
    #[error("model does not match its signature: {}", describe_model_changes(.changed, .added, .removed))]
    ModelMismatch {
        /// Files whose content differs.
        changed: Vec<String>,
        /// Files present but not signed.
        added: Vec<String>,
        /// Files signed but missing.
        removed: Vec<String>,
    },
    /// A model signature whose own parts disagree (root digest, resources).
    #[error("inconsistent model signature: {0}")]
    InconsistentModelSignature(String),
    /// A model directory entry ferry refuses to hash.
    #[error("{path}: {reason}")]
    ModelEntry {
        /// The entry.
        path: PathBuf,
        /// Why (a symbolic link, a device, a name that is not UTF-8).
        reason: &'static str,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn describe_model_changes(changed: &[String], added: &[String], removed: &[String]) -> String {
    let mut parts = Vec::new();
    for (label, names) in [("changed", changed), ("added", added), ("removed", removed)] {
        if !names.is_empty() {
            parts.push(format!("{label}: {}", names.join(", ")));
        }
    }
    parts.join("; ")
}

impl SignError {
    pub(crate) fn malformed(what: &'static str, reason: impl std::fmt::Display) -> Self {
        SignError::Malformed {
            what,
            reason: reason.to_string(),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = SignError> = std::result::Result<T, E>;
