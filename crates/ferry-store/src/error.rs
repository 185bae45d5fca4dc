//! The store's error type: every variant names the thing it is about.

use std::io;
use std::path::PathBuf;

/// Errors from the local store, packing and extraction.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What ferry was doing ("reading", "writing blob for", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `index.json` cannot be parsed.
    #[error("corrupt index {path}: {reason}")]
    CorruptIndex {
        /// Path of the index.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A reference that is not in the store.
    #[error("{0}: not found in the store")]
    NotFound(String),
    /// A reference or digest that cannot be parsed.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// What the user typed.
        input: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A blob whose bytes do not hash to its name.
    #[error("blob {digest} is corrupt: content hashes to {actual}")]
    DigestMismatch {
        /// Expected digest.
        digest: String,
        /// Digest of the bytes found.
        actual: String,
    },
    /// A stored document (manifest, config) that does not parse.
    #[error("invalid {what} {digest}: {reason}")]
    InvalidDocument {
        /// "manifest", "config", ...
        what: &'static str,
        /// Its digest.
        digest: String,
        /// Parser message.
        reason: String,
    },
    /// Input that ferry refuses to pack or unpack.
    #[error("{0}")]
    Rejected(String),
    /// Content that something outside the index (an active mount) uses.
    #[error("{what} is in use by {holders}")]
    InUse {
        /// The reference or digest that was to be removed.
        what: String,
        /// Who uses it ("the mount at /mnt/m", ...).
        holders: String,
    },
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches an action and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
