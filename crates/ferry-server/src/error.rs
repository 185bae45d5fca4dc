//! Errors as the distribution spec returns them:
//! `{"errors":[{"code","message","detail"}]}` with the matching status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use oci_spec::distribution::ErrorCode;
use serde::Serialize;

/// An error response.
#[derive(Debug)]
pub struct RegistryError {
    /// HTTP status.
    pub status: StatusCode,
    /// The spec's error code; `None` for a server failure, which no code of
    /// the spec describes (its envelope says `UNKNOWN`, as other registries').
    pub code: Option<ErrorCode>,
    /// Human message.
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

/// The body of an error response.
#[derive(Serialize)]
struct Envelope<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    #[serde(serialize_with = "serialize_code")]
    code: &'a Option<ErrorCode>,
    message: &'a str,
    detail: Option<()>,
}

fn serialize_code<S: serde::Serializer>(
    code: &&Option<ErrorCode>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match code {
        Some(code) => code.serialize(serializer),
        None => serializer.serialize_str("UNKNOWN"),
    }
}

impl RegistryError {
    /// Builds an error with a code of the spec.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError {
            status,
            code: Some(code),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client when to try again.
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
    /// The blob is unknown to the registry (404).
    pub fn blob_unknown(digest: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUnknown,
            format!("blob unknown: {digest}"),
        )
    }
    /// The upload session is unknown (404).
    pub fn upload_unknown() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadUnknown,
            "blob upload unknown",
        )
    }
    /// Invalid upload (400).
    pub fn upload_invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BlobUploadInvalid,
            message,
        )
    }
    /// A digest that is malformed or does not match the content (400).
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::DigestInvalid, message)
    }
    /// The manifest is unknown (404).
    pub fn manifest_unknown(reference: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ManifestUnknown,
            format!("manifest unknown: {reference}"),
        )
    }
    /// The manifest is invalid (400).
    pub fn manifest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::ManifestInvalid, message)
    }
    /// The manifest references a blob the repository lacks (400).
    pub fn manifest_blob_unknown(digest: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestBlobUnknown,
            format!("manifest references unknown blob {digest}"),
        )
    }
    /// Invalid repository name (400).
    pub fn name_invalid(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            format!("invalid repository name {name:?}"),
        )
    }
    /// Unknown repository (404).
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NameUnknown,
            format!("repository name not known to registry: {name}"),
        )
    }
    /// A manifest reference that is neither a tag nor a digest (400). The
    /// spec has no tag code: the manifest request is invalid.
    pub fn tag_invalid(tag: &str) -> Self {
        Self::manifest_invalid(format!("invalid tag {tag:?}"))
    }
    /// A size that does not match (400).
    pub fn size_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::SizeInvalid, message)
    }
    /// Authentication required (401).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "authentication required",
        )
    }
    /// Access denied (403).
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Denied, message)
    }
    /// Operation not supported (405).
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            message,
        )
    }
    /// A path that is no endpoint of the API (404).
    pub fn no_such_endpoint() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Unsupported,
            "no such endpoint",
        )
    }
    /// A body over the limit (413).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::SizeInvalid,
            message,
        )
    }
    /// Too many requests (429).
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            "too many requests",
        )
    }
    /// Too many requests (429), saying which limit was reached.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            message,
        )
    }
    /// A server-side failure (500); the detail is logged, not sent.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {error}");
        RegistryError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            message: "internal server error".into(),
            retry_after: None,
        }
    }

    /// The envelope's JSON.
    fn body(&self) -> String {
        let envelope = Envelope {
            errors: [Entry {
                code: &self.code,
                message: &self.message,
                detail: None,
            }],
        };
        // Strings and a unit enum always serialize.
        serde_json::to_string(&envelope).unwrap_or_else(|_| r#"{"errors":[]}"#.into())
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(error: std::io::Error) -> Self {
        RegistryError::internal(error)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferry\""),
            );
        }
        response
    }
}

/// Result alias for handlers.
pub type RegistryResult<T> = Result<T, RegistryError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(error: &RegistryError) -> serde_json::Value {
        serde_json::from_str(&error.body()).unwrap()
    }

    #[test]
    fn the_envelope_carries_the_spec_strings() {
        let cases = [
            (RegistryError::blob_unknown("x"), "BLOB_UNKNOWN"),
            (RegistryError::upload_unknown(), "BLOB_UPLOAD_UNKNOWN"),
            (
                RegistryError::manifest_blob_unknown("x"),
                "MANIFEST_BLOB_UNKNOWN",
            ),
            (RegistryError::too_many_requests(), "TOOMANYREQUESTS"),
            (RegistryError::too_large("big"), "SIZE_INVALID"),
        ];
        for (error, code) in cases {
            let body = envelope(&error);
            assert_eq!(body["errors"][0]["code"], code);
            assert_eq!(body["errors"][0]["message"], error.message.as_str());
            assert!(body["errors"][0]["detail"].is_null());
        }
    }

    #[test]
    fn a_server_failure_says_unknown_and_hides_its_cause() {
        let error = RegistryError::internal("disk on fire at /secret/path");
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = envelope(&error);
        assert_eq!(body["errors"][0]["code"], "UNKNOWN");
        assert!(!error.body().contains("/secret/path"));
    }
}
