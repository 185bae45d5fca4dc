//! One blob over one connection, in order: bytes are appended to the
//! partial file and hashed as they arrive (on a blocking thread fed through
//! a bounded channel); a dropped connection resumes with `Range`, and so
//! does the next run after a kill. A resumed download that does not match
//! starts again from byte 0 at once: the kept bytes may be the culprit.

use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::Digest;

use super::{Job, blocking, discard, start_writeback};
use crate::api::blobs::BlobBody;
use crate::bridge::{ByteStream, CHUNK, DEPTH};
use crate::client::Client;
use crate::error::{ClientError, NetCause, Result, io_error, join_error};
use crate::progress::TransferProgress;
use crate::retry::Backoff;

/// Downloads the blob over one connection into `file` (holding whatever
/// an earlier attempt left in order), starting with `first` when a server
/// already answered; returns the file once its bytes hash to the digest,
/// and how many bytes were fetched. `kept_reported`: the bytes the file
/// holds were already reported as progress.
pub(super) async fn download(
    job: &Job<'_>,
    file: File,
    mut first: Option<BlobBody>,
    kept_reported: bool,
) -> Result<(File, u64)> {
    let Job {
        client,
        endpoint,
        digest,
        size,
        progress,
        ..
    } = *job;
    let path = job.path.clone();
    let mut partial = blocking(&path, {
        let (path, digest) = (path.clone(), digest.clone());
        move || Partial::resume(file, path, &digest, size)
    })
    .await?;
    let kept = partial.len;
    if kept > 0 && !kept_reported {
        progress.advanced(digest, kept);
    }
    let action = format!("downloading {digest}");
    let mut backoff = Backoff::new(client.options().retry, &action);
    let mut furthest = kept;
    // Where the last answer started (None: no answer yet, the bytes are
    // from an earlier run).
    let mut last_start: Option<u64> = None;
    let mut restarted = false;
    let mut downloaded = 0u64;
    loop {
        while partial.len < size {
            // Held while the body streams.
            let _slot = client.connection(progress).await;
            let answer = match first.take() {
                Some(body) => Ok(body),
                None => client.get_blob(endpoint, digest, partial.len).await,
            };
            let body = match answer {
                Ok(body) => body,
                // The registry will not serve the kept bytes' rest (a
                // partial file from another blob source, a registry that
                // dislikes ranges): start over rather than fail every run.
                Err(ClientError::Status { status: 416, .. }) if partial.len > 0 => {
                    tracing::info!("{digest}: range refused; downloading it from byte 0");
                    partial = blocking(&path, move || partial.restart()).await?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if body.start != partial.len {
                if body.start != 0 {
                    return Err(ClientError::Invalid {
                        registry: endpoint.registry.clone(),
                        reason: format!(
                            "asked for {digest} from byte {}, got a range from byte {}",
                            partial.len, body.start
                        ),
                    });
                }
                // The registry ignored the range: start over.
                partial = blocking(&path, move || partial.restart()).await?;
            }
            let start = partial.len;
            last_start = Some(start);
            let (received, end) =
                receive(client, partial, body.stream, size, digest, progress).await?;
            partial = received;
            downloaded += partial.len - start;
            let failure = match end {
                BodyEnd::TooLong => {
                    drop(partial);
                    discard(&path).await;
                    return Err(ClientError::Integrity {
                        what: format!("blob {digest}"),
                        reason: format!(
                            "registry sent more than the {size} bytes the manifest declares"
                        ),
                    });
                }
                BodyEnd::Failed(error) => {
                    tracing::info!("download of {digest} interrupted at byte {}", partial.len);
                    ClientError::Unreachable {
                        registry: endpoint.registry.clone(),
                        cause: NetCause::Interrupted,
                        source: Box::new(error),
                    }
                }
                BodyEnd::Complete if partial.len < size => ClientError::Integrity {
                    what: format!("blob {digest}"),
                    reason: format!("registry sent {} of {size} bytes", partial.len),
                },
                BodyEnd::Complete => break,
            };
            if partial.len > furthest {
                // Further than ever: the budget is for failures in a row,
                // and the connection was working, so resume at once.
                furthest = partial.len;
                backoff.reset();
                tracing::info!("{failure}; resuming at byte {}", partial.len);
                continue;
            }
            if !backoff.wait(&failure, true).await {
                return Err(failure);
            }
        }
        let actual = partial.digest();
        if &actual == digest {
            break;
        }
        if last_start != Some(0) && !restarted {
            tracing::warn!(
                "{digest}: the resumed download hashes to {actual}; downloading it again from byte 0"
            );
            restarted = true;
            furthest = 0;
            backoff.reset();
            partial = blocking(&path, move || partial.restart()).await?;
            continue;
        }
        drop(partial);
        discard(&path).await;
        return Err(ClientError::Integrity {
            what: format!("blob {digest}"),
            reason: format!("downloaded content hashes to {actual}"),
        });
    }
    Ok((partial.file, downloaded))
}

/// A partial download: the file in `tmp/`, and the hash of what it holds.
struct Partial {
    file: File,
    path: PathBuf,
    hasher: DigestHasher,
    /// A hasher of nothing yet, for a restart.
    empty: DigestHasher,
    len: u64,
    /// Up to where writeback to disk has been started.
    written_back: u64,
}

/// Bytes between two requests to start writing a download back to disk.
const WRITEBACK_STEP: u64 = 64 << 20;

impl Partial {
    /// Takes up what an earlier attempt left (hashing it again), or starts
    /// empty; more bytes than the blob has are dropped.
    fn resume(mut file: File, path: PathBuf, digest: &Digest, size: u64) -> Result<Partial> {
        let io = |action| io_error(action, path.display());
        let empty = DigestHasher::for_digest(digest)
            .map_err(|e| ClientError::invalid_input_because(format!("blob {digest}"), e))?;
        let mut hasher = empty.clone();
        let mut len = file.metadata().map_err(io("reading"))?.len();
        if len > size {
            file.set_len(0).map_err(io("truncating"))?;
            len = 0;
        }
        file.seek(SeekFrom::Start(0)).map_err(io("reading"))?;
        let hashed = hasher
            .update_from_reader(io::Read::take(&mut file, len))
            .map_err(io("reading"))?;
        if hashed != len {
            return Err(io("reading")(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the partial download shrank while it was read",
            )));
        }
        file.seek(SeekFrom::Start(len)).map_err(io("seeking"))?;
        Ok(Partial {
            file,
            path,
            hasher,
            empty,
            len,
            written_back: len,
        })
    }

    /// Empties the file, to download from byte 0.
    fn restart(mut self) -> Result<Partial> {
        let io = |action| io_error(action, self.path.display());
        self.file.set_len(0).map_err(io("truncating"))?;
        self.file.seek(SeekFrom::Start(0)).map_err(io("seeking"))?;
        self.hasher = self.empty.clone();
        self.len = 0;
        self.written_back = 0;
        Ok(self)
    }

    /// Appends `chunks` with as few writes as the kernel allows (one
    /// `writev` for the batch, no copy into one buffer first).
    fn append(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let written = self.file.write_vectored(rest)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, written);
        }
        for chunk in chunks {
            self.hasher.update(chunk);
            self.len += chunk.len() as u64;
        }
        if self.len - self.written_back >= WRITEBACK_STEP {
            start_writeback(&self.file, self.written_back, self.len - self.written_back);
            self.written_back = self.len;
        }
        Ok(())
    }

    /// The digest of what the file holds.
    fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }
}

/// How a response body ended.
enum BodyEnd {
    /// The body ended normally (possibly short).
    Complete,
    /// The connection failed mid-body.
    Failed(io::Error),
    /// More bytes came than the blob has.
    TooLong,
}

/// Appends `body` to `partial` on a blocking thread (chunks gathered to
/// [`CHUNK`] bytes, at most [`DEPTH`] in flight), stopping before a byte
/// past `size`.
async fn receive(
    client: &Client,
    mut partial: Partial,
    mut body: ByteStream,
    size: u64,
    digest: &Digest,
    progress: &dyn TransferProgress,
) -> Result<(Partial, BodyEnd)> {
    let path = partial.path.clone();
    let mut received = partial.len;
    let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(DEPTH);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunks) = rx.blocking_recv() {
            if let Err(error) = partial.append(&chunks) {
                return (partial, Err(error));
            }
        }
        (partial, Ok(()))
    });
    let mut end = BodyEnd::Complete;
    // Chunks as the connection gave them, up to CHUNK bytes per batch.
    let mut gathered: Vec<Bytes> = Vec::new();
    let mut gathered_len = 0;
    while let Some(item) = body.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(error) => {
                end = BodyEnd::Failed(error);
                break;
            }
        };
        if received + chunk.len() as u64 > size {
            end = BodyEnd::TooLong;
            break;
        }
        received += chunk.len() as u64;
        client.count_received(chunk.len() as u64);
        progress.advanced(digest, chunk.len() as u64);
        gathered_len += chunk.len();
        gathered.push(chunk);
        if gathered_len >= CHUNK {
            gathered_len = 0;
            if tx.send(std::mem::take(&mut gathered)).await.is_err() {
                break; // the writer failed; its result says why
            }
        }
    }
    if !gathered.is_empty() && !matches!(end, BodyEnd::TooLong) {
        let _ = tx.send(gathered).await;
    }
    drop(tx);
    let (partial, written) = writer
        .await
        .map_err(join_error("writing", path.display()))?;
    written.map_err(io_error("writing", path.display()))?;
    Ok((partial, end))
}
