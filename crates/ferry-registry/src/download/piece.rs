//! One byte range of a blob, fetched until all of it is there: a connection
//! that drops or a body that ends early is picked up at the byte it reached
//! (the retry budget counts failures in a row, so progress resets it). Where
//! the bytes go is the caller's [`PieceSink`]: a positional write into the
//! partial file, or memory for an in-order stream.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use ferry_spec::oci::Digest;

use crate::api::blobs::{BlobBody, BlobUrl, RangeAnswer};
use crate::bridge::ByteStream;

/// Bytes gathered before one write: large enough to keep writes few, small
/// enough that many connections do not add up (each holds one such buffer).
const GATHER: usize = 128 * 1024;
use crate::client::{Client, ConnectionSlot, Endpoint};
use crate::error::{ClientError, NetCause, Result};
use crate::progress::TransferProgress;
use crate::retry::Backoff;

/// What every range of one blob shares: `'c` is the client's side (whose
/// connection slots outlive one piece), `'s` the blob's shared state.
pub(super) struct RangeJob<'c, 's> {
    pub client: &'c Client,
    pub digest: &'c Digest,
    /// Told about connections in use; bytes are reported when `report_bytes`.
    pub progress: &'c dyn TransferProgress,
    pub report_bytes: bool,
    pub size: u64,
    pub endpoint: &'s Endpoint,
    /// Where ranges are asked for: the registry, or the host it redirected
    /// the blob to once one answered from there.
    pub url: &'s Mutex<BlobUrl>,
    /// Stops every range of the blob (another one failed).
    pub cancel: &'s CancellationToken,
}

impl RangeJob<'_, '_> {
    /// Ranges go straight to the host a redirect led to (an object store's
    /// signed URL), without the registry's credentials and without asking
    /// the registry again for each range.
    pub(super) fn remember(&self, answered: &reqwest::Url) {
        if !self
            .client
            .on_registry_origin(self.endpoint.host(), answered)
        {
            *self.url.lock().unwrap_or_else(|e| e.into_inner()) = BlobUrl::Direct(answered.clone());
        }
    }

    fn current_url(&self) -> BlobUrl {
        self.url.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A range answer already in hand.
pub(super) struct Answered<'a> {
    pub stream: ByteStream,
    /// One past the last byte it brings.
    pub end: u64,
    /// The connection it holds.
    pub slot: ConnectionSlot<'a>,
}

/// How a piece ended, with the bytes it fetched.
pub(super) enum PieceEnd {
    /// All of it is in the sink.
    Done(u64),
    /// The blob's ranges were cancelled.
    Stopped(u64),
    /// The server's ranges cannot be used (why): the blob must come over
    /// one stream.
    OneStream(String, u64),
}

/// Where a piece's bytes go, in order from its first byte.
pub(super) enum PieceSink {
    /// Written at their offsets into the partial file.
    File(Arc<File>),
    /// Gathered in memory.
    Memory(BytesMut),
}

impl PieceSink {
    /// Writes `bytes` at blob offset `offset`.
    async fn put(&mut self, offset: u64, bytes: Bytes) -> io::Result<()> {
        match self {
            PieceSink::File(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || file.write_all_at(&bytes, offset))
                    .await
                    .map_err(io::Error::other)?
            }
            PieceSink::Memory(gathered) => {
                gathered.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }
}

/// How one answer's body ended.
enum BodyEnd {
    /// It ended where its `Content-Range` said.
    Complete,
    /// It ended early, or the connection failed.
    Cut(Option<io::Error>),
    /// It sent more than its `Content-Range` said.
    TooLong,
    /// Cancelled.
    Stopped,
}

/// Fetches `piece` into `sink`, starting with `answered` when a server has
/// already answered for its first bytes.
pub(super) async fn fetch_piece<'c>(
    job: &RangeJob<'c, '_>,
    piece: Range<u64>,
    mut answered: Option<Answered<'c>>,
    sink: &mut PieceSink,
) -> Result<PieceEnd> {
    let action = format!(
        "downloading {} bytes {}-{}",
        job.digest,
        piece.start,
        piece.end.saturating_sub(1)
    );
    let mut backoff = Backoff::new(job.client.options().retry, &action);
    let mut at = piece.start;
    let mut fetched = 0;
    while at < piece.end {
        let Answered { stream, end, slot } = match answered.take() {
            Some(answer) => answer,
            None => {
                let url = job.current_url();
                let asked = tokio::select! {
                    _ = job.cancel.cancelled() => return Ok(PieceEnd::Stopped(fetched)),
                    asked = ask(job, &url, at..piece.end) => asked,
                };
                match asked {
                    Ok(Asked::Answered(answer)) => answer,
                    Ok(Asked::Whole(_)) => {
                        return Ok(PieceEnd::OneStream(
                            "the server answered a range with the whole blob".into(),
                            fetched,
                        ));
                    }
                    Ok(Asked::OneStream(reason)) => {
                        return Ok(PieceEnd::OneStream(reason, fetched));
                    }
                    Err(error) if matches!(url, BlobUrl::Direct(_)) => {
                        // A signed URL may have expired: the registry names
                        // a fresh one.
                        tracing::info!("{action}: {error}; asking the registry again");
                        *job.url.lock().unwrap_or_else(|e| e.into_inner()) = BlobUrl::Registry;
                        if !backoff.wait(&error, true).await {
                            return Err(error);
                        }
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        let (reached, ended) = receive(job, stream, at, end, sink).await?;
        drop(slot);
        let moved = reached > at;
        fetched += reached - at;
        at = reached;
        let failure = match ended {
            BodyEnd::Complete => continue,
            BodyEnd::Stopped => return Ok(PieceEnd::Stopped(fetched)),
            BodyEnd::TooLong => {
                return Ok(PieceEnd::OneStream(
                    format!("an answer for bytes from {at} ran past its Content-Range"),
                    fetched,
                ));
            }
            BodyEnd::Cut(error) => ClientError::Unreachable {
                registry: job.endpoint.registry.clone(),
                cause: NetCause::Interrupted,
                source: match error {
                    Some(error) => Box::new(error),
                    None => format!("the range ended at byte {at}, before byte {end}").into(),
                },
            },
        };
        if moved {
            backoff.reset();
            tracing::info!("{action}: {failure}; resuming at byte {at}");
            continue;
        }
        if !backoff.wait(&failure, true).await {
            return Err(failure);
        }
    }
    Ok(PieceEnd::Done(fetched))
}

/// [`fetch_piece`] into memory: how it ended, and the bytes it gathered
/// (all of the piece when it is done).
pub(super) async fn fetch_into_memory<'c>(
    job: &RangeJob<'c, '_>,
    piece: Range<u64>,
    answered: Option<Answered<'c>>,
) -> Result<(PieceEnd, Bytes)> {
    let mut gathered = BytesMut::with_capacity((piece.end - piece.start) as usize);
    let mut sink = PieceSink::Memory(gathered);
    let end = fetch_piece(job, piece, answered, &mut sink).await?;
    gathered = match sink {
        PieceSink::Memory(gathered) => gathered,
        PieceSink::File(_) => BytesMut::new(),
    };
    Ok((end, gathered.freeze()))
}

/// What asking for a range gave.
pub(super) enum Asked<'a> {
    /// The bytes are coming.
    Answered(Answered<'a>),
    /// The server ignored the range and sends the whole blob.
    Whole(BlobBody),
    /// The server's ranges cannot be used (why).
    OneStream(String),
}

/// Asks for `range` at `url`, holding a connection slot for the answer.
pub(super) async fn ask<'c>(
    job: &RangeJob<'c, '_>,
    url: &BlobUrl,
    range: Range<u64>,
) -> Result<Asked<'c>> {
    let slot = job.client.connection(job.progress).await;
    let answer = job
        .client
        .get_blob_range(job.endpoint, job.digest, url, range, job.size)
        .await?;
    Ok(match answer {
        RangeAnswer::Partial {
            stream,
            end,
            answered,
            ..
        } => {
            job.remember(&answered);
            Asked::Answered(Answered { stream, end, slot })
        }
        RangeAnswer::Whole(body) => Asked::Whole(body),
        RangeAnswer::Unusable(reason) => Asked::OneStream(reason),
    })
}

/// Moves `stream` (bytes `at..end` of the blob) into `sink` in chunks of
/// about [`GATHER`] bytes; returns the offset reached and how it ended.
async fn receive(
    job: &RangeJob<'_, '_>,
    mut stream: ByteStream,
    mut at: u64,
    end: u64,
    sink: &mut PieceSink,
) -> Result<(u64, BodyEnd)> {
    let mut gathered = BytesMut::new();
    let mut received = at;
    let ended = loop {
        let item = tokio::select! {
            _ = job.cancel.cancelled() => break BodyEnd::Stopped,
            item = stream.next() => item,
        };
        let chunk = match item {
            None if received == end => break BodyEnd::Complete,
            None => break BodyEnd::Cut(None),
            Some(Err(error)) => break BodyEnd::Cut(Some(error)),
            Some(Ok(chunk)) => chunk,
        };
        let room = (end - received) as usize;
        let fits = chunk.len() <= room;
        let chunk = if fits { chunk } else { chunk.slice(..room) };
        received += chunk.len() as u64;
        job.client.count_received(chunk.len() as u64);
        if job.report_bytes {
            job.progress.advanced(job.digest, chunk.len() as u64);
        }
        gathered.extend_from_slice(&chunk);
        if gathered.len() >= GATHER {
            let bytes = gathered.split().freeze();
            let len = bytes.len() as u64;
            sink.put(at, bytes).await.map_err(write_error(job))?;
            at += len;
        }
        if !fits {
            break BodyEnd::TooLong;
        }
    };
    if !gathered.is_empty() {
        let bytes = gathered.freeze();
        let len = bytes.len() as u64;
        sink.put(at, bytes).await.map_err(write_error(job))?;
        at += len;
    }
    Ok((at, ended))
}

fn write_error(job: &RangeJob<'_, '_>) -> impl Fn(io::Error) -> ClientError {
    let what = format!("the download of {}", job.digest);
    move |error| ClientError::Io {
        action: "writing",
        path: what.clone(),
        source: error,
    }
}

/// Splits `0..size` into ranges of `piece` bytes (the last may be shorter).
pub(super) fn pieces_of(size: u64, piece: u64) -> Vec<Range<u64>> {
    super::record::missing_pieces(&rangemap::RangeSet::new(), size, piece)
}
