//! The one way a blob whose digest is known goes up, used by `push`,
//! `copy`, `attach` and `pack --push` (its config): skipped when the
//! registry has it (`HEAD`), mounted from another repository of the same
//! registry when it can be, else sent in a session:
//!
//! - monolithic: bytes in memory, or a file up to [`MONOLITHIC_MAX`], in
//!   the closing `PUT ?digest=`;
//! - chunked: a larger file in `PATCH` chunks, resumed from the offset the
//!   registry reports after a failure;
//! - streamed: a stream (from another registry, a layout, an archive) as
//!   one `PATCH`, verified against the descriptor on the way; content that
//!   does not match is cancelled before the closing `PUT`.
//!
//! A failed session is cancelled and the blob starts over in a new one,
//! with the client's backoff ([`crate::retry`]). Layers packed while they
//! upload (digest known only at the end) use the same session calls from
//! [`crate::pack_push`].

use std::cell::Cell;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;

use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::Descriptor;

use crate::api::uploads::{ChunkAnswer, UploadStart};
use crate::api::{MONOLITHIC_MAX, UPLOAD_CHUNK};
use crate::bridge::{self, BlobStream};
use crate::client::{Access, Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;
use crate::request::RequestBody;
use crate::retry::{Backoff, retry_when};

/// Opens a blob's bytes, afresh for every upload session.
pub type OpenStream<'a> = Box<dyn Fn() -> LocalBoxFuture<'a, Result<BlobStream<'a>>> + 'a>;

/// Where a blob's bytes come from.
pub enum BlobSource<'a> {
    /// In memory (configs, small documents).
    Bytes(Bytes),
    /// A local file holding exactly the blob.
    File(PathBuf),
    /// A stream, verified against the descriptor while it is sent.
    Stream(OpenStream<'a>),
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
    /// Puts the blob `descriptor` names into `endpoint`'s repository from
    /// `source`, mounting it from `mount_from` (a repository of the same
    /// registry) when the registry can.
    pub async fn push_blob(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        source: BlobSource<'_>,
        mount_from: Option<&str>,
        progress: &dyn TransferProgress,
    ) -> Result<BlobOutcome> {
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
        let mount = mount_from.map(|from| (digest, from));
        let action = format!("uploading {digest}");
        // Only a failure inside a session starts a new one: the requests
        // before it were retried already.
        let in_session = Cell::new(false);
        let retryable = |error: &ClientError| in_session.get() && error.is_transient();
        let outcome = retry_when(&self.options().retry, &action, retryable, async || {
            in_session.set(false);
            let location = match self.start_upload(endpoint, &access, mount).await? {
                UploadStart::Mounted => return Ok(BlobOutcome::Mounted),
                UploadStart::Session(location) => location,
            };
            in_session.set(true);
            progress.blob_started(digest, size);
            let sent = self
                .send_in_session(endpoint, &location, &access, descriptor, &source, progress)
                .await;
            if sent.is_err() {
                self.cancel_upload(endpoint, &location, &access).await;
            }
            sent.map(|()| BlobOutcome::Sent(size))
        })
        .await?;
        match outcome {
            BlobOutcome::Mounted => progress.skipped(digest, size),
            _ => progress.blob_done(digest),
        }
        Ok(outcome)
    }

    /// Sends the blob's bytes into an open session and closes it.
    async fn send_in_session(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
        descriptor: &Descriptor,
        source: &BlobSource<'_>,
        progress: &dyn TransferProgress,
    ) -> Result<()> {
        let digest = descriptor.digest();
        let size = descriptor.size();
        match source {
            BlobSource::Bytes(bytes) => {
                if bytes.len() as u64 != size {
                    return Err(ClientError::Integrity {
                        what: format!("blob {digest}"),
                        reason: format!("{} bytes, the descriptor says {size}", bytes.len()),
                    });
                }
                let body = RequestBody::Bytes(bytes.clone());
                self.finish_upload(endpoint, location, access, digest, body)
                    .await?;
                progress.advanced(digest, size);
                Ok(())
            }
            BlobSource::File(path) if size <= MONOLITHIC_MAX => {
                let body = RequestBody::File {
                    path: path.clone(),
                    offset: 0,
                    len: size,
                };
                self.finish_upload(endpoint, location, access, digest, body)
                    .await?;
                progress.advanced(digest, size);
                Ok(())
            }
            BlobSource::File(path) => {
                let mut location = location.to_string();
                let mut offset = 0u64;
                let action = format!("uploading {digest} in chunks");
                let mut backoff = Backoff::new(self.options().retry, &action);
                while offset < size {
                    let len = UPLOAD_CHUNK.min(size - offset);
                    let answer = self
                        .patch_file_chunk(endpoint, &location, access, path, offset, len)
                        .await;
                    let (failure, retryable) = match answer {
                        Ok(ChunkAnswer::Accepted(next)) => {
                            location = next;
                            offset += len;
                            progress.advanced(digest, len);
                            backoff.reset();
                            continue;
                        }
                        // Out of order: the registry holds other bytes than
                        // ferry thought; asking says which.
                        Ok(ChunkAnswer::OutOfOrder) => (
                            ClientError::Status {
                                registry: endpoint.registry.clone(),
                                action: format!("uploading bytes {offset}- of {digest}"),
                                status: 416,
                                body: None,
                                retry_after: None,
                            },
                            true,
                        ),
                        Err(error) => {
                            let transient = error.is_transient();
                            (error, transient)
                        }
                    };
                    if !backoff.wait(&failure, retryable).await {
                        return Err(failure);
                    }
                    // Go on from where the session stands.
                    offset = self
                        .upload_offset(endpoint, &location, access)
                        .await?
                        .min(size);
                    tracing::info!("upload of {digest}: resuming at byte {offset}");
                }
                self.finish_upload(endpoint, &location, access, digest, RequestBody::Empty)
                    .await
            }
            BlobSource::Stream(open) => {
                let stream = open().await?;
                let (tx, body) = bridge::channel();
                let pump = verify_while_sending(stream, tx, descriptor, progress);
                let (pumped, patched) =
                    tokio::join!(pump, self.patch_stream(endpoint, location, access, body));
                // The source's failure explains the aborted request.
                pumped?;
                let next = patched?;
                self.finish_upload(endpoint, &next, access, digest, RequestBody::Empty)
                    .await
            }
        }
    }
}

/// Moves `source` into `tx`, hashing and counting: more bytes than the
/// descriptor declares, fewer, or other content make the stream fail (so
/// the request aborts) and are reported as an integrity error.
async fn verify_while_sending(
    mut source: BlobStream<'_>,
    tx: bridge::ChunkSender,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<u64> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    let mut hasher = DigestHasher::for_digest(digest)
        .map_err(|e| ClientError::invalid_input_because(format!("blob {digest}"), e))?;
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
                let _ = tx.send(abort("the source failed")).await;
                return Err(ClientError::Io {
                    action: "reading",
                    path: format!("blob {digest}"),
                    source: error,
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
    let actual = hasher.finish();
    if sent != size || &actual != digest {
        let _ = tx.send(abort("source content does not match")).await;
        return Err(integrity(format!(
            "the source's content ({sent} bytes) hashes to {actual}"
        )));
    }
    Ok(sent)
}
