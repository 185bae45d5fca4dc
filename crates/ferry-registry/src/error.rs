//! The client's errors: each names the registry, repository, digest or file
//! it is about, and keeps the error that caused it as its source.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::distribution::ErrorCode;

/// An error kept as the cause of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The code of a registry's error: one the distribution spec defines, or
/// another the registry made up (kept as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryCode {
    /// A code of the spec.
    Known(ErrorCode),
    /// A code outside the spec.
    Other(String),
}

impl RegistryCode {
    /// Reads a code as the registry spelled it.
    pub fn parse(raw: &str) -> RegistryCode {
        serde_json::from_value::<ErrorCode>(serde_json::Value::String(raw.to_string()))
            .map(RegistryCode::Known)
            .unwrap_or_else(|_| RegistryCode::Other(raw.to_string()))
    }

    /// True when this is the spec's `code`.
    pub fn is(&self, code: &ErrorCode) -> bool {
        matches!(self, RegistryCode::Known(known) if known == code)
    }
}

impl fmt::Display for RegistryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The wire spelling, as the registry sent it.
            RegistryCode::Known(code) => match serde_json::to_value(code) {
                Ok(serde_json::Value::String(text)) => f.write_str(&text),
                _ => write!(f, "{code:?}"),
            },
            RegistryCode::Other(text) => f.write_str(text),
        }
    }
}

/// The first error of a registry's error envelope
/// (`{"errors":[{"code","message","detail"}]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryErrorBody {
    /// `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `UNAUTHORIZED`, ...
    pub code: RegistryCode,
    /// The registry's message (may be empty).
    pub message: String,
}

impl RegistryErrorBody {
    /// The first error of an envelope; `None` when `body` is not one. A
    /// body cut off at the read limit still gives its first code.
    pub fn parse(body: &[u8]) -> Option<RegistryErrorBody> {
        let Ok(document) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::code_in_prefix(body);
        };
        let first = document.get("errors")?.get(0)?;
        Some(RegistryErrorBody {
            code: RegistryCode::parse(first.get("code")?.as_str()?),
            message: first
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        })
    }

    /// The first `"code": "..."` of an envelope that does not parse whole
    /// (padded past the limit), without its message.
    fn code_in_prefix(body: &[u8]) -> Option<RegistryErrorBody> {
        let text = String::from_utf8_lossy(body);
        let (_, rest) = text
            .trim_start()
            .strip_prefix('{')?
            .split_once("\"code\"")?;
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        let (code, _) = rest.strip_prefix('"')?.split_once('"')?;
        Some(RegistryErrorBody {
            code: RegistryCode::parse(code),
            message: String::new(),
        })
    }
}

/// What was not found, as precisely as the registry said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The repository (`NAME_UNKNOWN`).
    Repository {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
    },
    /// A tag of the repository.
    Tag {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The tag.
        tag: String,
    },
    /// A manifest asked for by digest.
    Manifest {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The digest.
        digest: String,
    },
    /// A blob.
    Blob {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The digest.
        digest: String,
    },
    /// Something else: a platform in an index, a layer a filter selects, a
    /// blob in an archive.
    Other(String),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Repository {
                registry,
                repository,
            } => write!(f, "repository {registry}/{repository} not found"),
            Missing::Tag {
                registry,
                repository,
                tag,
            } => write!(f, "tag {registry}/{repository}:{tag} not found"),
            Missing::Manifest {
                registry,
                repository,
                digest,
            } => write!(f, "manifest {registry}/{repository}@{digest} not found"),
            Missing::Blob {
                registry,
                repository,
                digest,
            } => write!(f, "blob {digest} not found in {registry}/{repository}"),
            Missing::Other(what) => write!(f, "{what}: not found"),
        }
    }
}

/// Why a registry could not be reached, read from the error's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetCause {
    /// The host name does not resolve.
    Dns,
    /// Nothing listens at that address.
    Refused,
    /// The server's certificate was refused.
    Certificate,
    /// The TLS handshake failed for another reason.
    Tls,
    /// The connection failed, timed out or dropped: worth another try.
    Interrupted,
}

impl NetCause {
    /// True when another attempt may succeed.
    pub fn is_transient(self) -> bool {
        self == NetCause::Interrupted
    }
}

impl fmt::Display for NetCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetCause::Dns => "its name does not resolve (DNS)",
            NetCause::Refused => "connection refused",
            NetCause::Certificate => "its TLS certificate was refused",
            NetCause::Tls => "the TLS handshake failed",
            NetCause::Interrupted => "the connection failed or was interrupted",
        })
    }
}

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It could not be read.
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    /// It could not be written.
    #[error("cannot write it")]
    Write(#[source] std::io::Error),
    /// Not valid TOML for this file.
    #[error("invalid settings")]
    Toml(#[source] toml::de::Error),
    /// Not valid JSON.
    #[error("invalid JSON")]
    Json(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// An `auths` entry whose `auth` is not base64 of `user:password`.
    #[error("the auth entry for {registry} is not base64 of USER:PASSWORD")]
    InvalidAuth {
        /// The registry whose entry it is.
        registry: String,
    },
}

/// How a credential helper failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// It could not be run or talked to.
    #[error("cannot run it")]
    Run(#[source] std::io::Error),
    /// It ran and failed.
    #[error("it said: {0}")]
    Failed(String),
    /// Its answer is not the JSON the protocol defines.
    #[error("its answer is not valid")]
    Output(#[source] serde_json::Error),
}

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry could not be reached (DNS, connect, TLS, timeout,
    /// dropped connection).
    #[error("cannot reach {registry}: {cause}")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// Why, as far as the error's types tell.
        cause: NetCause,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
    /// Authentication failed or is missing.
    #[error("{registry}: authentication required or refused (run `ferry login {registry}`)")]
    Unauthorized {
        /// Registry host.
        registry: String,
    },
    /// The thing does not exist.
    #[error("{0}")]
    NotFound(Missing),
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
        /// How long the registry asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
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
    /// `registries.toml` cannot be used.
    #[error("registries file {}", path.display())]
    RegistriesConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigFileError,
    },
    /// Docker's `config.json` cannot be used.
    #[error("Docker config {}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigFileError,
    },
    /// A credential helper (`docker-credential-NAME`) failed.
    #[error("docker-credential-{helper} {action}")]
    CredentialHelper {
        /// The helper's name.
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// How it failed.
        #[source]
        source: HelperError,
    },
    /// A CA certificate file cannot be used.
    #[error("CA file {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The HTTP client could not be set up.
    #[error("setting up the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// What the caller asked for cannot be done as given.
    #[error("{message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A document ferry builds could not be built or serialized.
    #[error("cannot build {what}")]
    Encode {
        /// The document.
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A file given as an OCI layout archive is not one.
    #[error("{} is not a usable OCI layout archive: {reason}", path.display())]
    InvalidArchive {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
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
    /// True for failures worth retrying (a dropped connection, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { cause, .. } => cause.is_transient(),
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// How long the registry asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the failure is the registry's (it is down, refuses, lacks
    /// the content or sends bad content): another source of the same
    /// content (a mirror, the origin) may do better. Local failures (the
    /// store, files, the caller's input) would fail anywhere.
    pub fn is_from_registry(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::Unauthorized { .. }
                | ClientError::NotFound(_)
                | ClientError::Status { .. }
                | ClientError::Integrity { .. }
                | ClientError::Invalid { .. }
        )
    }

    /// The caller's input is invalid.
    pub fn invalid_input(message: impl Into<String>) -> ClientError {
        ClientError::InvalidInput {
            message: message.into(),
            source: None,
        }
    }

    /// The caller's input is invalid, as `source` says.
    pub fn invalid_input_because(
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> ClientError {
        ClientError::InvalidInput {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A document could not be built or serialized.
    pub fn encode(what: impl Into<String>, source: impl Into<BoxError>) -> ClientError {
        ClientError::Encode {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) fn io_error(
    action: &'static str,
    path: impl fmt::Display,
) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_string();
    move |source| ClientError::Io {
        action,
        path,
        source,
    }
}

/// A blocking task that did not finish (it panicked or was cancelled).
pub(crate) fn join_error(
    action: &'static str,
    path: impl fmt::Display,
) -> impl FnOnce(tokio::task::JoinError) -> ClientError {
    let path = path.to_string();
    move |error| ClientError::Io {
        action,
        path,
        source: std::io::Error::other(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_keep_known_and_unknown_codes() {
        let known = RegistryErrorBody::parse(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known","detail":{"name":"x"}}]}"#,
        )
        .unwrap();
        assert!(known.code.is(&ErrorCode::NameUnknown));
        assert_eq!(known.code.to_string(), "NAME_UNKNOWN");
        assert_eq!(known.message, "repository name not known");
        let many = RegistryErrorBody::parse(br#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#).unwrap();
        assert!(many.code.is(&ErrorCode::TooManyRequests));
        assert_eq!(many.code.to_string(), "TOOMANYREQUESTS");
        let other = RegistryErrorBody::parse(br#"{"errors":[{"code":"QUOTA_EXCEEDED"}]}"#).unwrap();
        assert_eq!(other.code, RegistryCode::Other("QUOTA_EXCEEDED".into()));
        assert_eq!(other.code.to_string(), "QUOTA_EXCEEDED");
        for not_an_envelope in [&b"<html>"[..], b"{}", br#"{"errors":[]}"#] {
            assert_eq!(RegistryErrorBody::parse(not_an_envelope), None);
        }
    }

    #[test]
    fn an_envelope_cut_off_at_the_limit_still_names_its_code() {
        let cut = br#"{"errors": [{"code" : "DENIED", "message": "xxxxxxxxxxxx"#;
        let body = RegistryErrorBody::parse(cut).unwrap();
        assert!(body.code.is(&ErrorCode::Denied));
        assert_eq!(RegistryErrorBody::parse(b"<html>code"), None);
        assert_eq!(RegistryErrorBody::parse(br#"{"code":"#), None);
    }

    #[test]
    fn not_found_says_what_is_missing() {
        let (registry, repository) = ("r.io".to_string(), "org/m".to_string());
        let cases = [
            (
                Missing::Repository {
                    registry: registry.clone(),
                    repository: repository.clone(),
                },
                "repository r.io/org/m not found",
            ),
            (
                Missing::Tag {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    tag: "v1".into(),
                },
                "tag r.io/org/m:v1 not found",
            ),
            (
                Missing::Blob {
                    registry,
                    repository,
                    digest: "sha256:ab".into(),
                },
                "blob sha256:ab not found in r.io/org/m",
            ),
        ];
        for (missing, text) in cases {
            assert_eq!(ClientError::NotFound(missing).to_string(), text);
        }
    }

    #[test]
    fn only_dropped_connections_and_overload_are_transient() {
        let unreachable = |cause| ClientError::Unreachable {
            registry: "r".into(),
            cause,
            source: "x".into(),
        };
        assert!(unreachable(NetCause::Interrupted).is_transient());
        for cause in [
            NetCause::Dns,
            NetCause::Refused,
            NetCause::Certificate,
            NetCause::Tls,
        ] {
            assert!(!unreachable(cause).is_transient(), "{cause:?}");
        }
        let status = |status| ClientError::Status {
            registry: "r".into(),
            action: "a".into(),
            status,
            body: None,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(status(503).is_transient() && status(429).is_transient());
        assert!(!status(400).is_transient());
        assert_eq!(status(429).retry_after(), Some(Duration::from_secs(2)));
    }
}
