//! One HTTP request to a registry: its body (sent again on a retry, or
//! once), what it asks about (so a 404 can say what is missing) and
//! whether [`crate::client::Client::send`] may repeat it.

use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};

use ferry_spec::oci::Digest;

use crate::bridge::ByteStream;
use crate::client::Access;
use crate::error::{ClientError, NetCause, Result, io_error};

/// What a request asks about, so that a 404 can say what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A manifest by tag or digest.
    Manifest(String),
    /// A blob.
    Blob(Digest),
    /// Anything else (uploads, listings, the API root).
    Other,
}

/// A request body.
pub(crate) enum RequestBody {
    /// No body.
    Empty,
    /// Bytes in memory (sent again on a retry).
    Bytes(Bytes),
    /// `len` bytes of a file from `offset` (read again on a retry).
    File {
        /// The file.
        path: PathBuf,
        /// First byte.
        offset: u64,
        /// Bytes to send.
        len: u64,
    },
    /// A stream: sent once, so the request is never retried.
    Once(Mutex<Option<ByteStream>>),
}

impl RequestBody {
    /// A body that is sent once.
    pub(crate) fn once(stream: ByteStream) -> RequestBody {
        RequestBody::Once(Mutex::new(Some(stream)))
    }

    pub(crate) fn build(&self, registry: &str) -> Result<Option<reqwest::Body>> {
        Ok(Some(match self {
            RequestBody::Empty => return Ok(None),
            RequestBody::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
            RequestBody::File { path, offset, len } => {
                use std::io::{Seek, SeekFrom};
                let mut file =
                    std::fs::File::open(path).map_err(io_error("reading", path.display()))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(io_error("reading", path.display()))?;
                let limited = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), *len);
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    limited,
                    crate::bridge::CHUNK,
                ))
            }
            RequestBody::Once(slot) => {
                let stream = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                match stream {
                    Some(stream) => reqwest::Body::wrap_stream(stream),
                    // Only reachable when the first try never got through
                    // (a challenge, a fallback): the caller starts over.
                    None => {
                        return Err(ClientError::Unreachable {
                            registry: registry.to_string(),
                            cause: NetCause::Interrupted,
                            source: "a streamed body cannot be sent twice".into(),
                        });
                    }
                }
            }
        }))
    }
}

/// One HTTP request.
pub(crate) struct Request {
    /// Method.
    pub method: Method,
    /// A path below the registry root (`/v2/...`) or an absolute URL (a Location).
    pub url: String,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: RequestBody,
    /// Access needed.
    pub access: Access,
    /// What this is, for messages ("pushing manifest v1").
    pub action: String,
    /// What a 404 means.
    pub target: Target,
    /// Never repeated by [`crate::client::Client::send`] (the caller knows better how to
    /// go on after a failure).
    pub single_attempt: bool,
    /// Sent over an HTTP/1.1 connection of its own (never multiplexed
    /// with other requests over HTTP/2).
    pub own_connection: bool,
}

impl Request {
    /// A request without a body.
    pub(crate) fn new(
        method: Method,
        url: impl Into<String>,
        access: Access,
        action: impl Into<String>,
    ) -> Request {
        Request {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
            access,
            action: action.into(),
            target: Target::Other,
            single_attempt: false,
            own_connection: false,
        }
    }

    /// Adds a header (values are ASCII that ferry builds).
    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Request {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Sets a body.
    pub(crate) fn body(mut self, body: RequestBody) -> Request {
        self.body = body;
        self
    }

    /// Sends the request once, whatever happens.
    pub(crate) fn once(mut self) -> Request {
        self.single_attempt = true;
        self
    }

    /// Sends it over an HTTP/1.1 connection of its own.
    pub(crate) fn own_connection(mut self) -> Request {
        self.own_connection = true;
        self
    }

    /// Says what a 404 means.
    pub(crate) fn target(mut self, target: Target) -> Request {
        self.target = target;
        self
    }
}

pub(crate) fn url_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends a query parameter to a URL that may already have a query.
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={}", url_encode(value))
}
