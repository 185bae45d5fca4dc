//! The one way the client holds a response body in memory: read up to a
//! limit, never past it. A registry decides how long its answers are, so
//! every buffered body (documents, error envelopes, tokens, listings) has a
//! limit; a body that goes on is dropped with its connection, unread.

use futures_util::StreamExt;

/// Manifests, configs and referrers pages: the store's limit for documents
/// (the spec's minimum is 4 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = ferry_store::store::MAX_DOCUMENT_SIZE;

/// Error bodies: enough for any error envelope; the rest is not read.
pub const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// Token responses (a JWT is a few KiB).
pub const MAX_TOKEN_BYTES: u64 = 1024 * 1024;

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// It is (or announces itself) longer than `limit`.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit it passed.
        limit: u64,
    },
    /// The connection failed mid-body.
    #[error("the body was cut off: {0}")]
    Interrupted(#[source] reqwest::Error),
}

/// The whole body, if it is at most `limit` bytes.
pub(crate) async fn read_limited(
    response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|l| l > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    match read_up_to(response, limit).await {
        (body, Ending::Complete) => Ok(body),
        (_, Ending::OverLimit) => Err(BodyError::TooLarge { limit }),
        (_, Ending::Interrupted(error)) => Err(BodyError::Interrupted(error)),
    }
}

/// The first `limit` bytes of the body (all of it when shorter), for
/// messages: a body cut off by the network yields what came.
pub(crate) async fn read_prefix(response: reqwest::Response, limit: u64) -> Vec<u8> {
    read_up_to(response, limit).await.0
}

/// How a read of a body ended.
enum Ending {
    /// The body ended within the limit.
    Complete,
    /// It went on past the limit.
    OverLimit,
    /// The connection failed.
    Interrupted(reqwest::Error),
}

/// At most `limit` bytes of the body, and how reading ended. Reading stops
/// at the first chunk past the limit; dropping the response then closes
/// the connection instead of draining the rest.
async fn read_up_to(response: reqwest::Response, limit: u64) -> (Vec<u8>, Ending) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => return (body, Ending::Interrupted(error)),
        };
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return (body, Ending::OverLimit);
        }
        body.extend_from_slice(&chunk);
    }
    (body, Ending::Complete)
}
