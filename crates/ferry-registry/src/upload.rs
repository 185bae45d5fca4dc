//! Streaming blob uploads: a session, one `PATCH` carrying a whole stream,
//! a closing `PUT ?digest=`.
//!
//! Used where the bytes are not a file in the store: a blob copied from
//! another registry or a layout (digest known, verified on the way), and a
//! layer packed while it is uploaded (digest known only at the end). A
//! stream cannot be replayed, so a failed `PATCH` abandons its session and
//! the caller starts over with a new session and a new stream.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use ferry_spec::oci::{Descriptor, Digest};

use crate::bridge::{self, ByteStream};
use crate::client::{Access, Client, Endpoint, Request, status_error, with_query};
use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;

/// Sessions started for one blob before a transient failure is final.
pub const STREAM_ATTEMPTS: u32 = 3;

/// How an upload session began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStart {
    /// The registry mounted the blob from the other repository: done.
    Mounted,
    /// A session to send bytes to (its `Location`).
    Session(String),
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Bytes were sent (this many).
    Sent(u64),
    /// Mounted from another repository of the same registry.
    Mounted,
    /// The destination already had it.
    Present,
}

impl Client {
    /// `POST /v2/<name>/blobs/uploads/`, with `?mount=&from=` when
    /// `mount` names a digest and the repository to mount it from.
    pub async fn start_upload(
        &self,
        endpoint: &Endpoint,
        access: &Access,
        mount: Option<(&Digest, &str)>,
    ) -> Result<UploadStart> {
        let mut url = format!("/v2/{}/blobs/uploads/", endpoint.repository);
        if let Some((digest, from)) = mount {
            url = with_query(&with_query(&url, "mount", digest.as_ref()), "from", from);
        }
        let request = Request::new(Method::POST, url, access.clone(), "starting an upload")
            .header("content-length", "0");
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED => Ok(UploadStart::Session(self.location(endpoint, &response)?)),
            _ => Err(status_error(endpoint, &request.action, response).await),
        }
    }

    /// Sends a whole stream as one chunked `PATCH`; returns the session's
    /// next location. The body is sent once: if the client would retry the
    /// request, it fails instead (transiently), and the caller restarts the
    /// blob in a new session.
    pub async fn patch_stream(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
        body: ByteStream,
    ) -> Result<String> {
        let slot = Arc::new(Mutex::new(Some(body)));
        let registry = endpoint.registry.clone();
        let request = Request::new(
            Method::PATCH,
            location.to_string(),
            access.clone(),
            "uploading a stream",
        )
        .header("content-type", "application/octet-stream")
        .body(Arc::new(move || {
            let stream = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            match stream {
                Some(stream) => Ok(reqwest::Body::wrap_stream(stream)),
                None => Err(ClientError::Unreachable {
                    registry: registry.clone(),
                    reason:
                        "a streamed upload was interrupted and cannot be resent in the same session"
                            .into(),
                }),
            }
        }));
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::ACCEPTED && response.status() != StatusCode::NO_CONTENT
        {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        self.location(endpoint, &response)
    }

    /// Closes a session with `PUT ?digest=` (no body); the registry checks
    /// the digest against what it received.
    pub async fn finish_upload(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
        digest: &Digest,
    ) -> Result<()> {
        let request = Request::new(
            Method::PUT,
            with_query(location, "digest", digest.as_ref()),
            access.clone(),
            format!("finishing upload of {digest}"),
        )
        .header("content-length", "0");
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        Ok(())
    }

    /// Abandons a session (best effort: registries expire them anyway).
    pub async fn cancel_upload(&self, endpoint: &Endpoint, location: &str, access: &Access) {
        let request = Request::new(
            Method::DELETE,
            location.to_string(),
            access.clone(),
            "cancelling an upload",
        );
        if let Err(error) = self.send(endpoint, &request).await {
            tracing::debug!("cancelling an upload session: {error}");
        }
    }

    /// Copies a blob whose descriptor is known from a stream `open` returns
    /// (called again for every new session): skipped when the registry has
    /// it, mounted from `mount_from` (a repository of the same registry)
    /// when it can be, else streamed and verified against the descriptor on
    /// the way. Content that does not match is never committed: the
    /// session is cancelled before the closing `PUT`.
    pub async fn push_blob_stream<F, Fut>(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        mount_from: Option<&str>,
        open: F,
        progress: &dyn TransferProgress,
    ) -> Result<BlobOutcome>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<ByteStream>>,
    {
        let digest = descriptor.digest();
        let size = descriptor.size();
        if self
            .blob_size(endpoint, digest, Access::Push)
            .await?
            .is_some()
        {
            progress.skipped(digest, size);
            return Ok(BlobOutcome::Present);
        }
        let access = match mount_from {
            Some(from) => Access::PushMountFrom(from.to_string()),
            None => Access::Push,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mount = mount_from.map(|from| (digest, from));
            let location = match self.start_upload(endpoint, &access, mount).await? {
                UploadStart::Mounted => {
                    progress.skipped(digest, size);
                    return Ok(BlobOutcome::Mounted);
                }
                UploadStart::Session(location) => location,
            };
            let source = open().await?;
            progress.blob_started(digest, size);
            let (tx, body) = bridge::channel();
            let pump = verify_while_sending(source, tx, descriptor, progress);
            let (pumped, patched) =
                tokio::join!(pump, self.patch_stream(endpoint, &location, &access, body));
            let failure = match (pumped, patched) {
                (Err(source_error), _) => {
                    self.cancel_upload(endpoint, &location, &access).await;
                    return Err(source_error);
                }
                (Ok(sent), Ok(next)) => {
                    self.finish_upload(endpoint, &next, &access, digest).await?;
                    progress.blob_done(digest);
                    return Ok(BlobOutcome::Sent(sent));
                }
                (Ok(_), Err(error)) => error,
            };
            self.cancel_upload(endpoint, &location, &access).await;
            if !failure.is_transient() || attempt >= STREAM_ATTEMPTS {
                return Err(failure);
            }
            tracing::warn!("upload of {digest} failed ({failure}); starting again");
        }
    }
}

/// Moves `source` into `tx`, hashing and counting: more bytes than the
/// descriptor declares, fewer, or other content make the stream fail (so
/// the request aborts) and are reported as an integrity error.
async fn verify_while_sending(
    mut source: ByteStream,
    tx: bridge::ChunkSender,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<u64> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    let mut hasher = Sha256::new();
    let mut sent = 0u64;
    let integrity = |reason: String| ClientError::Integrity {
        what: format!("blob {digest}"),
        reason,
    };
    let abort = |reason: &str| Err(std::io::Error::other(reason.to_string()));
    while let Some(chunk) = source.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                let reason = error.to_string();
                let _ = tx.send(abort(&reason)).await;
                return Err(ClientError::Io {
                    action: "reading",
                    path: format!("blob {digest}"),
                    source: std::io::Error::other(reason),
                });
            }
        };
        sent += chunk.len() as u64;
        if sent > size {
            let _ = tx.send(abort("source larger than declared")).await;
            return Err(integrity(format!(
                "the source sent more than the {size} bytes the descriptor declares"
            )));
        }
        hasher.update(&chunk);
        let n = chunk.len() as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            // The request ended early; its own error tells why.
            return Ok(sent);
        }
        progress.advanced(digest, n);
    }
    let actual = ferry_spec::digest::digest_from_hasher(hasher);
    if sent != size || &actual != digest {
        let _ = tx.send(abort("source content does not match")).await;
        return Err(integrity(format!(
            "the source's content ({sent} bytes) hashes to {actual}"
        )));
    }
    Ok(sent)
}
