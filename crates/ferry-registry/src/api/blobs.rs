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
        match self.length {
            Some(length) if self.start == 0 && length != descriptor.size() => {
                Err(ClientError::Integrity {
                    what: format!("blob {}", descriptor.digest()),
                    reason: format!(
                        "{} announces {length} bytes, the descriptor says {}",
                        endpoint.registry,
                        descriptor.size()
                    ),
                })
            }
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
        let stream: ByteStream = Box::pin(
            response
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other)),
        );
        Ok(BlobBody {
            stream,
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
    value
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}
