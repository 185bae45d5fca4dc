//! The client's errors, each naming the registry, repository or digest.

/// A code from the registry's error envelope (`{"errors":[{"code",...}]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryErrorBody {
    /// `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `UNAUTHORIZED`, ...
    pub code: String,
    /// The registry's message.
    pub message: String,
}

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry could not be reached (DNS, connect, TLS, timeout).
    #[error("cannot reach {registry}: {reason}")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// What failed.
        reason: String,
    },
    /// Authentication failed or is missing.
    #[error("{registry}: authentication required or refused (run `ferry login {registry}`)")]
    Unauthorized {
        /// Registry host.
        registry: String,
    },
    /// The thing does not exist.
    #[error("{what}: not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The registry answered with an error status.
    #[error("{registry} answered {status} to {action}{}", body.as_ref().map(|b| format!(": {} {}", b.code, b.message)).unwrap_or_default())]
    Status {
        /// Registry host.
        registry: String,
        /// What ferry asked.
        action: String,
        /// HTTP status.
        status: u16,
        /// Parsed error envelope.
        body: Option<RegistryErrorBody>,
    },
    /// Content did not match its digest or size.
    #[error("{what}: {reason}")]
    Integrity {
        /// The blob or manifest.
        what: String,
        /// What did not match.
        reason: String,
    },
    /// Something the registry sent is invalid.
    #[error("invalid response from {registry}: {reason}")]
    Invalid {
        /// Registry host.
        registry: String,
        /// Why.
        reason: String,
    },
    /// Local store trouble.
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    /// Local I/O.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Configuration that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A read-modify-write kept losing to concurrent writers.
    #[error("{what}: still replaced by concurrent writers after {attempts} attempts")]
    Contended {
        /// What was being updated (a tag).
        what: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl ClientError {
    /// True for failures worth retrying (connection trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) fn io_error(
    action: &'static str,
    path: impl std::fmt::Display,
) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_string();
    move |source| ClientError::Io {
        action,
        path,
        source,
    }
}
