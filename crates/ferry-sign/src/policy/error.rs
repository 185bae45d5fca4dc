//! Why a policy could not be loaded.

use std::io;
use std::path::PathBuf;

/// A policy file that is missing, unreadable, too large or invalid. Never
/// an accept: a caller that gets this refuses to go on.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file named with `--policy` does not exist.
    #[error("policy file {} does not exist", path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        /// The policy file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The path is a directory, a FIFO or another non-file.
    #[error("policy file {} is not a regular file", path.display())]
    NotAFile {
        /// The policy file.
        path: PathBuf,
    },
    /// The file is larger than [`super::MAX_POLICY_SIZE`].
    #[error("policy file {} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The policy file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not JSON.
    #[error("{origin} is not valid JSON: {message}")]
    Syntax {
        /// The file, or `inline policy`.
        origin: String,
        /// serde_json's message, with line and column.
        message: String,
    },
    /// JSON that breaks the schema: an unknown key or type, a missing or
    /// conflicting field, an invalid scope, key path or identity.
    #[error("{origin}: {location}: {message}")]
    Invalid {
        /// The file, or `inline policy`.
        origin: String,
        /// Where in the document, e.g. `transports.docker["r.example/ns"][0]`.
        location: String,
        /// What is wrong there.
        message: String,
    },
}
