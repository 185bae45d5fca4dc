//! Registry operations: manifests, blobs, uploads, tags, referrers.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use ferry_spec::oci::{Descriptor, Digest};

use crate::client::{Access, Client, Endpoint, Request, status_error, with_query};
use crate::error::{ClientError, Result, io_error};
use crate::progress::TransferProgress;

/// Every manifest type ferry understands, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests larger than this are refused (the spec's minimum is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Blobs up to this size go up in one `PUT`; larger ones in chunks.
pub const MONOLITHIC_MAX: u64 = 32 * 1024 * 1024;

/// Chunk size for chunked uploads.
pub const UPLOAD_CHUNK: u64 = 128 * 1024 * 1024;

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Exact bytes.
    pub bytes: Bytes,
    /// Media type (Content-Type, else the document's `mediaType`).
    pub media_type: String,
    /// sha256 of the bytes.
    pub digest: Digest,
}

/// What a manifest push returned.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// Digest of the bytes.
    pub digest: Digest,
    /// The registry indexed the subject (`OCI-Subject` came back).
    pub subject_indexed: bool,
}

fn sha256(bytes: &[u8]) -> Digest {
    ferry_spec::digest::sha256_digest(bytes)
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
            _ => Err(status_error(endpoint, &request.action, response).await),
        }
    }

    /// Checks that the registry answers and accepts our credentials.
    pub async fn check_login(&self, endpoint: &Endpoint, access: Access) -> Result<()> {
        let request = Request::new(Method::GET, "/v2/", access, "checking credentials");
        let response = self.send(endpoint, &request).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(endpoint, &request.action, response).await)
        }
    }

    /// Fetches a manifest by tag or digest, verifying a digest reference.
    pub async fn manifest(&self, endpoint: &Endpoint, reference: &str) -> Result<FetchedManifest> {
        let request = Request::new(
            Method::GET,
            format!("/v2/{}/manifests/{reference}", endpoint.repository),
            Access::Pull,
            format!("fetching manifest {reference}"),
        )
        .header("accept", MANIFEST_ACCEPT);
        let response = self.send(endpoint, &request).await?;
        let what = format!("{}/{}:{reference}", endpoint.registry, endpoint.repository);
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound { what });
        }
        if !response.status().is_success() {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        if response
            .content_length()
            .is_some_and(|l| l > MAX_MANIFEST_BYTES as u64)
        {
            return Err(ClientError::Integrity {
                what,
                reason: format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let header_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::Unreachable {
                registry: endpoint.registry.clone(),
                reason: e.to_string(),
            })?;
            if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(ClientError::Integrity {
                    what,
                    reason: format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let digest = sha256(&body);
        if reference.contains(':') && reference != digest.to_string() {
            return Err(ClientError::Integrity {
                what,
                reason: format!("content hashes to {digest}"),
            });
        }
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("manifest {reference} is not JSON: {e}"),
            })?;
        let media_type = document
            .get("mediaType")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or(header_type.filter(|t| !t.is_empty() && t != "application/json"))
            .unwrap_or_else(|| ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST.to_string());
        Ok(FetchedManifest {
            bytes: Bytes::from(body),
            media_type,
            digest,
        })
    }

    /// `HEAD` a manifest: its digest when present.
    pub async fn manifest_digest(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        access: Access,
    ) -> Result<Option<String>> {
        let request = Request::new(
            Method::HEAD,
            format!("/v2/{}/manifests/{reference}", endpoint.repository),
            access,
            format!("checking manifest {reference}"),
        )
        .header("accept", MANIFEST_ACCEPT);
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            s if s.is_success() => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(endpoint, &request.action, response).await),
        }
    }

    /// Pushes manifest bytes under a tag or their digest.
    pub async fn put_manifest(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<PushedManifest> {
        let digest = sha256(&bytes);
        let body = bytes.clone();
        let request = Request::new(
            Method::PUT,
            format!("/v2/{}/manifests/{reference}", endpoint.repository),
            Access::Push,
            format!("pushing manifest {reference}"),
        )
        .header("content-type", media_type)
        .body(Arc::new(move || Ok(reqwest::Body::from(body.clone()))));
        let response = self.send(endpoint, &request).await?;
        if !response.status().is_success() {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        let subject_indexed = response.headers().contains_key("oci-subject");
        Ok(PushedManifest {
            digest,
            subject_indexed,
        })
    }

    /// Deletes a manifest by digest.
    pub async fn delete_manifest(&self, endpoint: &Endpoint, digest: &str) -> Result<()> {
        let request = Request::new(
            Method::DELETE,
            format!("/v2/{}/manifests/{digest}", endpoint.repository),
            Access::Push,
            format!("deleting manifest {digest}"),
        );
        let response = self.send(endpoint, &request).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(endpoint, &request.action, response).await)
        }
    }

    /// Uploads a blob from a file unless the registry has it; mounts it from
    /// `mount_from` (a repository on the same registry) when possible.
    /// Returns false when nothing had to be sent.
    pub async fn push_blob_file(
        &self,
        endpoint: &Endpoint,
        path: &Path,
        descriptor: &Descriptor,
        mount_from: Option<&str>,
        progress: &dyn TransferProgress,
    ) -> Result<bool> {
        let digest = descriptor.digest();
        let size = descriptor.size();
        if self
            .blob_size(endpoint, digest, Access::Push)
            .await?
            .is_some()
        {
            progress.skipped(digest, size);
            return Ok(false);
        }
        let access = match mount_from {
            Some(from) => Access::PushMountFrom(from.to_string()),
            None => Access::Push,
        };
        let mut start_url = format!("/v2/{}/blobs/uploads/", endpoint.repository);
        if let Some(from) = mount_from {
            start_url = with_query(
                &with_query(&start_url, "mount", digest.as_ref()),
                "from",
                from,
            );
        }
        let request = Request::new(
            Method::POST,
            start_url,
            access.clone(),
            format!("starting upload of {digest}"),
        )
        .header("content-length", "0");
        let response = self.send(endpoint, &request).await?;
        if response.status() == StatusCode::CREATED {
            // Mounted: the registry linked the blob, no byte was sent.
            progress.skipped(digest, size);
            return Ok(false);
        }
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        let mut location = self.location(endpoint, &response)?;
        progress.blob_started(digest, size);
        let mut offset = 0u64;
        let mut resumes = 0;
        if size > MONOLITHIC_MAX {
            while offset < size {
                let len = UPLOAD_CHUNK.min(size - offset);
                let request = Request::new(
                    Method::PATCH,
                    location.clone(),
                    access.clone(),
                    format!("uploading {digest}"),
                )
                .header("content-type", "application/octet-stream")
                .header("content-range", &format!("{offset}-{}", offset + len - 1))
                .header("content-length", &len.to_string())
                .body(file_body(path, offset, len, None));
                match self.send(endpoint, &request).await {
                    Ok(response) if response.status() == StatusCode::ACCEPTED => {
                        location = self.location(endpoint, &response)?;
                        offset += len;
                        progress.advanced(digest, len);
                    }
                    Ok(response)
                        if response.status() == StatusCode::RANGE_NOT_SATISFIABLE
                            && resumes < 5 =>
                    {
                        resumes += 1;
                        offset = self.upload_offset(endpoint, &location, &access).await?;
                    }
                    Ok(response) => {
                        return Err(status_error(endpoint, &request.action, response).await);
                    }
                    Err(error) if error.is_transient() && resumes < 5 => {
                        // The connection dropped mid-chunk: ask where the upload stands.
                        resumes += 1;
                        tracing::warn!("upload of {digest} interrupted ({error}); resuming");
                        offset = self.upload_offset(endpoint, &location, &access).await?;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let (body_offset, body_len) = (offset, size - offset);
        let mut request = Request::new(
            Method::PUT,
            with_query(&location, "digest", digest.as_ref()),
            access.clone(),
            format!("finishing upload of {digest}"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", &body_len.to_string());
        if body_len > 0 {
            request = request.body(file_body(path, body_offset, body_len, None));
        }
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        if body_len > 0 {
            progress.advanced(digest, body_len);
        }
        progress.blob_done(digest);
        Ok(true)
    }

    /// Uploads bytes held in memory (configs, small documents).
    pub async fn push_blob_bytes(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        bytes: Bytes,
    ) -> Result<()> {
        let digest = descriptor.digest();
        if self
            .blob_size(endpoint, digest, Access::Push)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let request = Request::new(
            Method::POST,
            format!("/v2/{}/blobs/uploads/", endpoint.repository),
            Access::Push,
            format!("starting upload of {digest}"),
        )
        .header("content-length", "0");
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        let location = self.location(endpoint, &response)?;
        let len = bytes.len();
        let request = Request::new(
            Method::PUT,
            with_query(&location, "digest", digest.as_ref()),
            Access::Push,
            format!("uploading {digest}"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", &len.to_string())
        .body(Arc::new(move || Ok(reqwest::Body::from(bytes.clone()))));
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        Ok(())
    }

    async fn upload_offset(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
    ) -> Result<u64> {
        let request = Request::new(
            Method::GET,
            location.to_string(),
            access.clone(),
            "checking upload status",
        );
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::NO_CONTENT && !response.status().is_success() {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        let range = response
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        // distribution answers `0-0` for an empty upload (and for one byte):
        // resuming from 0 is right in the common case, and a registry that
        // does hold one byte refuses the overlap instead of corrupting the blob.
        if range == Some("0-0") {
            return Ok(0);
        }
        let end = range
            .and_then(|r| r.rsplit('-').next())
            .and_then(|e| e.parse::<i64>().ok())
            .unwrap_or(-1);
        Ok((end + 1).max(0) as u64)
    }

    pub(crate) fn location(
        &self,
        endpoint: &Endpoint,
        response: &reqwest::Response,
    ) -> Result<String> {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: "upload response without Location".into(),
            })?;
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(location.to_string());
        }
        Ok(format!("{}{}", self.base_url(endpoint.host()), location))
    }

    /// Tags of a repository (follows `Link` pagination).
    pub async fn tags(&self, endpoint: &Endpoint) -> Result<Vec<String>> {
        let mut url = format!("/v2/{}/tags/list", endpoint.repository);
        let mut tags = Vec::new();
        loop {
            let request = Request::new(Method::GET, url.clone(), Access::Pull, "listing tags");
            let response = self.send(endpoint, &request).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(tags);
            }
            if !response.status().is_success() {
                return Err(status_error(endpoint, &request.action, response).await);
            }
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split('<').nth(1)?.split('>').next().map(str::to_string));
            let body: serde_json::Value =
                response.json().await.map_err(|e| ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!("tag list: {e}"),
                })?;
            if let Some(list) = body.get("tags").and_then(|t| t.as_array()) {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(str::to_string)));
            }
            match next {
                Some(next) if tags.len() < 1_000_000 => url = next,
                _ => return Ok(tags),
            }
        }
    }
}

/// A body that streams `len` bytes of `path` from `offset`, rebuilt per attempt.
pub fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    counter: Option<Arc<dyn Fn(u64) + Send + Sync>>,
) -> crate::client::BodyFactory {
    let path = path.to_path_buf();
    Arc::new(move || {
        let mut file = std::fs::File::open(&path).map_err(io_error("reading", path.display()))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_error("reading", path.display()))?;
        let file = tokio::fs::File::from_std(file);
        let stream = tokio_util::io::ReaderStream::with_capacity(
            tokio::io::AsyncReadExt::take(file, len),
            256 * 1024,
        );
        let counter = counter.clone();
        let stream = stream.inspect(move |chunk| {
            if let (Some(counter), Ok(chunk)) = (&counter, chunk) {
                counter(chunk.len() as u64);
            }
        });
        Ok(reqwest::Body::wrap_stream(stream))
    })
}

/// Hashes the first `len` bytes of a file (to resume a partial download).
pub fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Sha256> {
    let mut file = std::fs::File::open(path)?.take(len);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..n]);
    }
}
