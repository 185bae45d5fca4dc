//! `HEAD` and `GET /v2/<name>/blobs/<digest>`: the one blob download, with
//! an optional `Range`.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};

use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::{Descriptor, Digest};

use super::read_limited_body;
use super::response_error;
use crate::bridge::ByteStream;
use crate::client::{Access, Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::request::{Request, Target};

/// A blob's bytes on their way.
pub struct BlobBody {
    /// The bytes (an error item: the connection failed mid-body).
    pub stream: ByteStream,
    /// The byte of the blob the stream starts at (0 unless a range was served).
    pub start: u64,
    /// `Content-Length`, when the registry sent it.
    pub length: Option<u64>,
}

impl BlobBody {
    /// Refuses a whole-blob answer whose announced length is not the
    /// descriptor's size.
    pub fn check_length(&self, endpoint: &Endpoint, descriptor: &Descriptor) -> Result<()> {
        self.check_size(endpoint, descriptor.digest(), descriptor.size())
    }

    /// [`BlobBody::check_length`] for a blob of `size` bytes.
    pub(crate) fn check_size(&self, endpoint: &Endpoint, digest: &Digest, size: u64) -> Result<()> {
        match self.length {
            Some(length) if self.start == 0 && length != size => Err(ClientError::Integrity {
                what: format!("blob {digest}"),
                reason: format!(
                    "{} announces {length} bytes, the descriptor says {size}",
                    endpoint.registry
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl Client {
    /// `HEAD` a blob: its size when present.
    pub async fn blob_size(
        &self,
        endpoint: &Endpoint,
        digest: &Digest,
        access: Access,
    ) -> Result<Option<u64>> {
        let request = Request::new(
            Method::HEAD,
            format!("/v2/{}/blobs/{digest}", endpoint.repository),
            access,
            format!("checking blob {digest}"),
        );
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            StatusCode::OK => Ok(Some(response.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(response_error(endpoint, &request, response).await),
        }
    }

    /// `GET` a blob as a stream, from byte `from` (a `Range` request when it
    /// is not 0). A registry may ignore the range: [`BlobBody::start`] says
    /// where the bytes really start.
    pub async fn get_blob(
        &self,
        endpoint: &Endpoint,
        digest: &Digest,
        from: u64,
    ) -> Result<BlobBody> {
        let mut request = Request::new(
            Method::GET,
            format!("/v2/{}/blobs/{digest}", endpoint.repository),
            Access::Pull,
            format!("downloading {digest}"),
        )
        .target(Target::Blob(digest.clone()));
        if from > 0 {
            request = request.header("range", &format!("bytes={from}-"));
        }
        let response = self.send(endpoint, &request).await?;
        let start = match response.status() {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => {
                content_range_start(&response).ok_or_else(|| ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!("a partial answer for {digest} without a valid Content-Range"),
                })?
            }
            _ => return Err(response_error(endpoint, &request, response).await),
        };
        let length = response.content_length();
        Ok(BlobBody {
            stream: body_stream(response),
            start,
            length,
        })
    }

    /// A small blob (a config) held in memory, checked against its
    /// descriptor's size and digest.
    pub async fn blob_document(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>> {
        self.blob_document_within(endpoint, descriptor, super::MAX_DOCUMENT_BYTES)
            .await
    }

    /// [`Client::blob_document`] of a blob that may be at most `limit`
    /// bytes (a signature, a payload): a larger one is refused unread, and
    /// no more than `limit` bytes are ever read.
    pub async fn blob_document_within(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let digest = descriptor.digest();
        let what = format!("blob {digest}");
        if descriptor.size() > limit {
            return Err(ClientError::Integrity {
                what,
                reason: format!(
                    "{} bytes is more than the {limit} bytes such a document may be",
                    descriptor.size()
                ),
            });
        }
        let request = Request::new(
            Method::GET,
            format!("/v2/{}/blobs/{digest}", endpoint.repository),
            Access::Pull,
            format!("fetching {what}"),
        )
        .target(Target::Blob(digest.clone()));
        let response = self.send(endpoint, &request).await?;
        if !response.status().is_success() {
            return Err(response_error(endpoint, &request, response).await);
        }
        let bytes = read_limited_body(endpoint, response, limit, &what).await?;
        let mut hasher = DigestHasher::for_digest(digest)
            .map_err(|e| ClientError::invalid_input_because(what.clone(), e))?;
        hasher.update(&bytes);
        let actual = hasher.finish();
        if &actual != digest || bytes.len() as u64 != descriptor.size() {
            return Err(ClientError::Integrity {
                what: format!("{what} from {}", endpoint.registry),
                reason: format!(
                    "the registry sent {} bytes hashing to {actual}",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn content_range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    parse_content_range(value).map(|(start, _, _)| start)
}

/// Where the bytes of a ranged download are asked for.
#[derive(Debug, Clone)]
pub(crate) enum BlobUrl {
    /// The registry's blob URL (with its credentials; redirects followed).
    Registry,
    /// The URL the registry redirected a blob to (an object store's signed
    /// URL, on another origin): asked directly, without credentials.
    Direct(reqwest::Url),
}

/// The answer to a `GET` with `Range: bytes=START-END`.
pub(crate) enum RangeAnswer {
    /// 206 with bytes `start..end` of the asked range (`end` may fall short
    /// of what was asked: a server may send less).
    Partial {
        /// The bytes (from the first byte asked for).
        stream: ByteStream,
        /// One past the last byte the `Content-Range` announces.
        end: u64,
        /// Who answered (after redirects).
        answered: reqwest::Url,
    },
    /// 200: the server ignored the range and sends the whole blob.
    Whole(BlobBody),
    /// A 206 whose `Content-Range` does not describe the bytes asked for:
    /// the server's ranges cannot be trusted.
    Unusable(String),
}

impl Client {
    /// `GET` bytes `range` of a blob of `size` bytes from `at`. Only a
    /// `Content-Range` that starts where asked, stays inside the range and
    /// names the blob's size (or `*`) is taken as a range.
    pub(crate) async fn get_blob_range(
        &self,
        endpoint: &Endpoint,
        digest: &Digest,
        at: &BlobUrl,
        range: std::ops::Range<u64>,
        size: u64,
    ) -> Result<RangeAnswer> {
        let url = match at {
            BlobUrl::Registry => format!("/v2/{}/blobs/{digest}", endpoint.repository),
            BlobUrl::Direct(url) => url.to_string(),
        };
        let asked = format!("bytes={}-{}", range.start, range.end.saturating_sub(1));
        let request = Request::new(
            Method::GET,
            url,
            Access::Pull,
            format!("downloading {digest} ({asked})"),
        )
        .target(Target::Blob(digest.clone()))
        .header("range", &asked)
        .own_connection();
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::OK => {
                let length = response.content_length();
                return Ok(RangeAnswer::Whole(BlobBody {
                    stream: body_stream(response),
                    start: 0,
                    length,
                }));
            }
            _ => return Err(response_error(endpoint, &request, response).await),
        }
        let announced = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some((start, end, total)) = announced.as_deref().and_then(parse_content_range) else {
            return Ok(RangeAnswer::Unusable(format!(
                "a partial answer to {asked} with Content-Range {announced:?}"
            )));
        };
        if start != range.start
            || end > range.end
            || end <= start
            || total.is_some_and(|t| t != size)
        {
            return Ok(RangeAnswer::Unusable(format!(
                "Content-Range {:?} answers {asked} of a {size}-byte blob",
                announced.unwrap_or_default()
            )));
        }
        let answered = response.url().clone();
        Ok(RangeAnswer::Partial {
            stream: body_stream(response),
            end,
            answered,
        })
    }
}

fn body_stream(response: reqwest::Response) -> ByteStream {
    Box::pin(
        response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    )
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`) as `(FIRST, LAST + 1,
/// TOTAL)`.
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let (span, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        number => Some(number.parse().ok()?),
    };
    (last >= first).then_some((first, last.checked_add(1)?, total))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_are_read_strictly() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((0, 100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-5/*"), Some((5, 6, None)));
        assert_eq!(
            parse_content_range("bytes 9-5/10"),
            None,
            "last before first"
        );
        assert_eq!(
            parse_content_range("bytes */1000"),
            None,
            "an unsatisfied range"
        );
        assert_eq!(parse_content_range("items 0-9/10"), None);
        assert_eq!(parse_content_range("bytes 0-x/10"), None);
        assert_eq!(
            parse_content_range(&format!("bytes 0-{}/*", u64::MAX)),
            None,
            "one past the last byte overflows"
        );
    }
}
