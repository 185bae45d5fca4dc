//! A blob's bytes in order, fetched over several connections: for readers
//! that consume a stream (extraction into a directory, a copy's upload).
//!
//! The first piece is a probe: when the client received data at
//! `split_below` or faster meanwhile, the rest comes over one stream. Otherwise
//! pieces of [`RangeOptions::stream_piece`] bytes are fetched into memory,
//! at most [`RangeOptions::connections_per_blob`] at once, and handed on in
//! order. Each piece waiting in memory holds one of the client's
//! `max_connections` buffer permits, so all in-order readers together hold
//! at most (max connections x piece size) whatever the blobs' sizes. The
//! reader verifies the digest, as it does for one stream.
//!
//! [`RangeOptions::stream_piece`]: crate::client::RangeOptions::stream_piece
//! [`RangeOptions::connections_per_blob`]: crate::client::RangeOptions::connections_per_blob

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio_util::sync::CancellationToken;

use ferry_spec::oci::Descriptor;

use super::piece::{Asked, PieceEnd, RangeJob, ask, fetch_into_memory, pieces_of};
use crate::api::blobs::BlobUrl;
use crate::bridge::{BlobStream, CHUNK};
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;

/// The bytes of `descriptor`'s blob from `endpoint`, in order. Small blobs,
/// and servers that do not serve ranges, give one stream.
pub(crate) async fn blob_stream<'a>(
    client: &'a Client,
    endpoint: Endpoint,
    descriptor: &'a Descriptor,
    progress: &'a dyn TransferProgress,
) -> Result<BlobStream<'a>> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    let ranges = client.options().ranges;
    if size < ranges.min_blob || ranges.connections_per_blob < 2 {
        return one_stream(client, &endpoint, descriptor).await;
    }
    let mut pieces = pieces_of(size, ranges.stream_piece);
    let probe = pieces.remove(0);
    let shared = Arc::new(Ranged {
        endpoint,
        url: Mutex::new(BlobUrl::Registry),
        cancel: CancellationToken::new(),
    });
    // The first piece is a probe: whether the server serves ranges, and
    // whether one connection is fast enough on its own.
    let started = Instant::now();
    let received_before = client.received();
    let head = {
        let job = shared.job(client, descriptor, progress);
        let first = match ask(&job, &BlobUrl::Registry, probe.clone()).await? {
            Asked::Answered(answer) => answer,
            Asked::Whole(body) => {
                body.check_length(&shared.endpoint, descriptor)?;
                return Ok(body.stream);
            }
            Asked::OneStream(reason) => {
                tracing::info!("{digest}: {reason}; reading it over one connection");
                return one_stream(client, &shared.endpoint, descriptor).await;
            }
        };
        match fetch_into_memory(&job, probe.clone(), Some(first)).await? {
            (PieceEnd::Done(_), head) => head,
            (PieceEnd::Stopped(_) | PieceEnd::OneStream(..), _) => {
                return one_stream(client, &shared.endpoint, descriptor).await;
            }
        }
    };
    let rate = client.received().saturating_sub(received_before) as f64
        / started.elapsed().as_secs_f64().max(1e-6);
    let head_stream = stream::iter(slices(head).map(Ok));
    if pieces.is_empty() || rate >= ranges.split_below as f64 {
        // Fast enough over one connection: the rest from there.
        let body = client.get_blob(&shared.endpoint, digest, probe.end).await?;
        if body.start != probe.end {
            return Err(ClientError::Invalid {
                registry: shared.endpoint.registry.clone(),
                reason: format!(
                    "asked for {digest} from byte {}, got bytes from {}",
                    probe.end, body.start
                ),
            });
        }
        return Ok(Box::pin(head_stream.chain(body.stream)));
    }
    let pieces = stream::iter(pieces)
        .map(
            move |piece| -> LocalBoxFuture<'a, io::Result<(Bytes, Permit)>> {
                let shared = shared.clone();
                Box::pin(async move {
                    // Permits are granted in order, so a stream that holds any
                    // holds one for the piece its reader waits for.
                    let permit = client.buffer_permit().await;
                    let job = shared.job(client, descriptor, progress);
                    match fetch_into_memory(&job, piece, None).await {
                        Ok((PieceEnd::Done(_), bytes)) => Ok((bytes, permit)),
                        Ok((PieceEnd::Stopped(_), _)) => {
                            Err(io::Error::other("the download was stopped"))
                        }
                        Ok((PieceEnd::OneStream(reason, _), _)) => Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: {reason}", job.digest),
                        )),
                        Err(error) => Err(io::Error::other(error)),
                    }
                })
            },
        )
        .buffered(ranges.connections_per_blob)
        // Handed on in small slices, so a consumer's queue never holds
        // whole pieces; the permit goes back as the piece leaves.
        .map_ok(|(piece, _permit)| stream::iter(slices(piece).map(Ok)))
        .try_flatten();
    Ok(Box::pin(head_stream.chain(pieces)))
}

async fn one_stream<'a>(
    client: &'a Client,
    endpoint: &Endpoint,
    descriptor: &Descriptor,
) -> Result<BlobStream<'a>> {
    let body = client.get_blob(endpoint, descriptor.digest(), 0).await?;
    body.check_length(endpoint, descriptor)?;
    Ok(body.stream)
}

type Permit = Option<tokio::sync::OwnedSemaphorePermit>;

/// What the pieces of one ordered stream share.
struct Ranged {
    endpoint: Endpoint,
    url: Mutex<BlobUrl>,
    cancel: CancellationToken,
}

impl Ranged {
    fn job<'c>(
        &self,
        client: &'c Client,
        descriptor: &'c Descriptor,
        progress: &'c dyn TransferProgress,
    ) -> RangeJob<'c, '_> {
        RangeJob {
            client,
            endpoint: &self.endpoint,
            digest: descriptor.digest(),
            size: descriptor.size(),
            progress,
            // The consumer reports bytes as it reads them.
            report_bytes: false,
            url: &self.url,
            cancel: &self.cancel,
        }
    }
}

fn slices(bytes: Bytes) -> impl Iterator<Item = Bytes> {
    let len = bytes.len();
    (0..len)
        .step_by(CHUNK)
        .map(move |start| bytes.slice(start..(start + CHUNK).min(len)))
}
