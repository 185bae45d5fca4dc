//! One large blob in byte ranges over several connections, each range
//! written at its offset in the partial file.
//!
//! The first answer decides: a server that ignores `Range` (200) or answers
//! with a `Content-Range` for other bytes gets the blob asked for over one
//! stream instead. The first range of a fresh blob is a probe: when one
//! connection carried it at [`RangeOptions::split_below`] or faster (a LAN,
//! loopback), the rest comes over one stream too, where more connections
//! would only compete for the CPU and the disk. Otherwise
//! [`RangeOptions::connections_per_blob`] workers take pieces from a queue. A finished piece is entered in the record
//! ([`super::record`]), its writeback starts at once, and the hasher reads
//! the file's contiguous prefix back (from the page cache) as it grows, so
//! the digest is known a moment after the last byte. A piece counts only
//! when all of it is written: a killed pull leaves a record of whole pieces,
//! and the next pull asks for the rest.
//!
//! [`RangeOptions::connections_per_blob`]: crate::client::RangeOptions::connections_per_blob
//! [`RangeOptions::split_below`]: crate::client::RangeOptions::split_below

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::join_all;
use rangemap::RangeSet;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::Digest;

use super::piece::{Answered, Asked, PieceEnd, PieceSink, RangeJob, ask, fetch_piece};
use super::{Job, blocking, discard, record, start_writeback};
use crate::api::blobs::{BlobBody, BlobUrl};
use crate::client::RangeOptions;
use crate::error::{ClientError, Result, io_error, join_error};

/// The largest piece asked for at once.
const MAX_PIECE: u64 = 64 << 20;

/// How a ranged download ended.
pub(super) enum End {
    /// The file holds the blob.
    Verified { file: File, downloaded: u64 },
    /// The server's ranges cannot be used, or one connection is fast
    /// enough: the file is cut to what it holds in order, for one stream to
    /// continue (with `body` when the server already sent the whole blob;
    /// `reported`: the bytes held were reported as progress).
    OneStream {
        file: File,
        body: Option<BlobBody>,
        downloaded: u64,
        reported: bool,
    },
}

/// Downloads `job`'s blob into `file` in ranges.
pub(super) async fn download(job: &Job<'_>, file: File) -> Result<End> {
    let file = Arc::new(file);
    let downloaded = AtomicU64::new(0);
    let mut restarted = false;
    loop {
        let done = blocking(&job.path, {
            let (file, path, size) = (file.clone(), job.path.clone(), job.size);
            move || record::load(&path, &file, size).map_err(io_error("reading", path.display()))
        })
        .await?;
        let resumed = !done.is_empty();
        let outcome = attempt(job, &file, done, &downloaded).await?;
        let downloaded = downloaded.load(Ordering::Relaxed);
        match outcome {
            Attempt::Hashed(actual) if &actual == job.digest => {
                record::remove(&job.path).map_err(io_error("removing", job.path.display()))?;
                let file = unique(file, job)?;
                return Ok(End::Verified { file, downloaded });
            }
            Attempt::Hashed(actual) if resumed && !restarted => {
                tracing::warn!(
                    "{}: the resumed download hashes to {actual}; downloading it again from byte 0",
                    job.digest
                );
                restarted = true;
                blocking(&job.path, {
                    let (file, path) = (file.clone(), job.path.clone());
                    move || {
                        file.set_len(0)
                            .and_then(|()| record::remove(&path))
                            .map_err(io_error("truncating", path.display()))
                    }
                })
                .await?;
            }
            Attempt::Hashed(actual) => {
                drop(file);
                discard(&job.path).await;
                return Err(ClientError::Integrity {
                    what: format!("blob {}", job.digest),
                    reason: format!("downloaded content hashes to {actual}"),
                });
            }
            Attempt::OneStream {
                body,
                reason,
                reported,
            } => {
                if let Some(reason) = reason {
                    tracing::info!(
                        "{}: {reason}; downloading it over one connection",
                        job.digest
                    );
                }
                let file = unique(file, job)?;
                let file = blocking(&job.path, {
                    let (path, size) = (job.path.clone(), job.size);
                    move || {
                        record::settle_for_stream(&path, &file, size)
                            .map_err(io_error("truncating", path.display()))?;
                        Ok(file)
                    }
                })
                .await?;
                return Ok(End::OneStream {
                    file,
                    body,
                    downloaded,
                    reported,
                });
            }
        }
    }
}

/// The file, once nothing else holds it.
fn unique(file: Arc<File>, job: &Job<'_>) -> Result<File> {
    Arc::into_inner(file).ok_or_else(|| {
        io_error("writing", job.path.display())(io::Error::other(
            "the partial file is still in use",
        ))
    })
}

enum Attempt {
    /// Every byte is in; the file hashes to this.
    Hashed(Digest),
    /// Go on over one stream.
    OneStream {
        body: Option<BlobBody>,
        reason: Option<String>,
        reported: bool,
    },
}

/// The piece size for a blob: small enough that the last pieces do not
/// leave most connections idle, large enough that requests stay few.
fn piece_size(size: u64, ranges: &RangeOptions) -> u64 {
    let connections = ranges.connections_per_blob.max(1) as u64;
    let min = ranges.min_piece.max(1);
    (size / (connections * 8)).clamp(min, MAX_PIECE.max(min))
}

/// One pass over what `done` lacks.
async fn attempt(
    job: &Job<'_>,
    file: &Arc<File>,
    done: RangeSet<u64>,
    downloaded: &AtomicU64,
) -> Result<Attempt> {
    let hasher = PrefixHasher::start(file.clone(), job.digest, record::contiguous_prefix(&done))
        .map_err(|e| ClientError::invalid_input_because(format!("blob {}", job.digest), e))?;
    let outcome = fetch_missing(job, file, done, &hasher, downloaded).await;
    match outcome {
        Ok(()) => Ok(Attempt::Hashed(hasher.finish(job).await?)),
        Err(Stop::OneStream {
            body,
            reason,
            reported,
        }) => {
            hasher.stop().await;
            Ok(Attempt::OneStream {
                body,
                reason,
                reported,
            })
        }
        Err(Stop::Failed(error)) => {
            hasher.stop().await;
            Err(error)
        }
    }
}

/// Why the ranged download stopped.
enum Stop {
    OneStream {
        body: Option<BlobBody>,
        reason: Option<String>,
        reported: bool,
    },
    Failed(ClientError),
}

impl From<ClientError> for Stop {
    fn from(error: ClientError) -> Stop {
        Stop::Failed(error)
    }
}

/// Fetches every missing piece.
async fn fetch_missing(
    job: &Job<'_>,
    file: &Arc<File>,
    done: RangeSet<u64>,
    hasher: &PrefixHasher,
    downloaded: &AtomicU64,
) -> std::result::Result<(), Stop> {
    let ranges = job.client.options().ranges;
    let piece = piece_size(job.size, &ranges);
    // Only a fresh blob, or one a single stream left, is probed: switching
    // to one stream keeps what the file holds in order, nothing else.
    let prefix = record::contiguous_prefix(&done);
    let probing = record::held(&done) == prefix;
    let mut pieces: VecDeque<Range<u64>> = if probing && prefix < job.size {
        let probe = prefix..job.size.min(prefix.saturating_add(ranges.min_piece.max(1)));
        let mut after = done.clone();
        after.insert(probe.clone());
        std::iter::once(probe)
            .chain(record::missing_pieces(&after, job.size, piece))
            .collect()
    } else {
        record::missing_pieces(&done, job.size, piece).into()
    };
    let Some(first_piece) = pieces.pop_front() else {
        hasher.advance(job.size);
        return Ok(());
    };
    let url = Mutex::new(BlobUrl::Registry);
    let cancel = CancellationToken::new();
    let range_job = RangeJob {
        client: job.client,
        endpoint: job.endpoint,
        digest: job.digest,
        size: job.size,
        progress: job.progress,
        report_bytes: true,
        url: &url,
        cancel: &cancel,
    };
    let started = Instant::now();
    let received_before = job.client.received();
    // The first answer says whether the server serves ranges at all.
    let first = match ask(&range_job, &BlobUrl::Registry, first_piece.clone()).await? {
        Asked::Answered(answer) => answer,
        Asked::Whole(body) => {
            body.check_size(job.endpoint, job.digest, job.size)?;
            return Err(Stop::OneStream {
                body: Some(body),
                reason: Some("the server does not serve ranges".into()),
                reported: false,
            });
        }
        Asked::OneStream(reason) => {
            return Err(Stop::OneStream {
                body: None,
                reason: Some(reason),
                reported: false,
            });
        }
    };
    // From here on bytes may land out of order: the record comes first.
    let held = record::held(&done);
    let done = Arc::new(Mutex::new(done));
    blocking(&job.path, {
        let (path, size, done) = (job.path.clone(), job.size, done.clone());
        move || {
            let done = done.lock().unwrap_or_else(|e| e.into_inner());
            record::store(&path, size, &done).map_err(io_error("writing", path.display()))
        }
    })
    .await?;
    if held > 0 {
        job.progress.advanced(job.digest, held);
    }
    let workers = ranges.connections_per_blob.max(1).min(pieces.len() + 1);
    let shared = Shared {
        job: range_job,
        path: job.path.clone(),
        file: file.clone(),
        queue: Mutex::new(pieces),
        done,
        hasher,
        downloaded,
    };
    let mut first = Some((first_piece.clone(), first));
    if probing {
        // The probe alone: its rate decides whether more connections help.
        let Some((piece, answered)) = first.take() else {
            return Ok(());
        };
        let mut sink = PieceSink::File(file.clone());
        let end = fetch_piece(&shared.job, piece.clone(), Some(answered), &mut sink).await?;
        // What the client as a whole received meanwhile: four blobs at
        // 150 MB/s each on a LAN are no reason for more connections.
        let rate = job.client.received().saturating_sub(received_before) as f64
            / started.elapsed().as_secs_f64().max(1e-6);
        match end {
            PieceEnd::Done(n) => {
                downloaded.fetch_add(n, Ordering::Relaxed);
                completed(&shared, piece).await?;
            }
            PieceEnd::Stopped(n) | PieceEnd::OneStream(_, n) => {
                downloaded.fetch_add(n, Ordering::Relaxed);
                let reason = match end {
                    PieceEnd::OneStream(reason, _) => reason,
                    _ => "the probe was stopped".into(),
                };
                return Err(Stop::OneStream {
                    body: None,
                    reason: Some(reason),
                    reported: true,
                });
            }
        }
        if shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return Ok(());
        }
        if rate >= ranges.split_below as f64 {
            tracing::debug!("{}: {:.0} MB/s received; no ranges", job.digest, rate / 1e6);
            return Err(Stop::OneStream {
                body: None,
                reason: None,
                reported: true,
            });
        }
    }
    let queued = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).len();
    let workers = workers.min(queued + usize::from(first.is_some())).max(1);
    tracing::debug!(
        "{}: {} ranges over {workers} connections",
        job.digest,
        queued + usize::from(first.is_some())
    );
    let ends = join_all((0..workers).map(|_| worker(&shared, first.take()))).await;
    let mut one_stream = None;
    for end in ends {
        match end {
            Err(error) => return Err(Stop::Failed(error)),
            Ok(WorkerEnd::OneStream(reason)) => one_stream = Some(reason),
            Ok(WorkerEnd::Finished) => {}
        }
    }
    if let Some(reason) = one_stream {
        return Err(Stop::OneStream {
            body: None,
            reason: Some(reason),
            reported: true,
        });
    }
    Ok(())
}

/// What the workers of one blob share.
struct Shared<'a> {
    job: RangeJob<'a, 'a>,
    path: std::path::PathBuf,
    file: Arc<File>,
    queue: Mutex<VecDeque<Range<u64>>>,
    done: Arc<Mutex<RangeSet<u64>>>,
    hasher: &'a PrefixHasher,
    downloaded: &'a AtomicU64,
}

enum WorkerEnd {
    /// No piece left (or the others stopped).
    Finished,
    /// The server's ranges cannot be used (why).
    OneStream(String),
}

/// Takes pieces until none is left; a failure stops every worker.
async fn worker<'a>(
    shared: &Shared<'a>,
    mut first: Option<(Range<u64>, Answered<'a>)>,
) -> Result<WorkerEnd> {
    loop {
        let (piece, answered) = match first.take() {
            Some((piece, answered)) => (piece, Some(answered)),
            None => {
                let next = shared
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                match next {
                    Some(piece) if !shared.job.cancel.is_cancelled() => (piece, None),
                    _ => return Ok(WorkerEnd::Finished),
                }
            }
        };
        let mut sink = PieceSink::File(shared.file.clone());
        let end = fetch_piece(&shared.job, piece.clone(), answered, &mut sink).await;
        let fetched = match &end {
            Ok(PieceEnd::Done(n) | PieceEnd::Stopped(n) | PieceEnd::OneStream(_, n)) => *n,
            Err(_) => 0,
        };
        shared.downloaded.fetch_add(fetched, Ordering::Relaxed);
        match end {
            Ok(PieceEnd::Done(_)) => {
                if let Err(error) = completed(shared, piece).await {
                    shared.job.cancel.cancel();
                    return Err(error);
                }
            }
            Ok(PieceEnd::Stopped(_)) => return Ok(WorkerEnd::Finished),
            Ok(PieceEnd::OneStream(reason, _)) => {
                shared.job.cancel.cancel();
                return Ok(WorkerEnd::OneStream(reason));
            }
            Err(error) => {
                shared.job.cancel.cancel();
                return Err(error);
            }
        }
    }
}

/// Records a finished piece, starts its writeback, and lets the hasher go
/// as far as the file is now complete from byte 0.
async fn completed(shared: &Shared<'_>, piece: Range<u64>) -> Result<()> {
    let prefix = blocking(&shared.path, {
        let (path, size, done, file) = (
            shared.path.clone(),
            shared.job.size,
            shared.done.clone(),
            shared.file.clone(),
        );
        move || {
            start_writeback(&file, piece.start, piece.end - piece.start);
            // Inserted and written under one lock: records never go back.
            let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
            done.insert(piece);
            record::store(&path, size, &done).map_err(io_error("writing", path.display()))?;
            Ok(record::contiguous_prefix(&done))
        }
    })
    .await?;
    shared.hasher.advance(prefix);
    Ok(())
}

/// Hashes the partial file from byte 0 as far as it is complete, on a
/// blocking thread, reading back what the workers wrote.
struct PrefixHasher {
    target: std::sync::mpsc::Sender<u64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<io::Result<(DigestHasher, u64)>>,
}

/// Bytes read back at once.
const READ_BACK: usize = 1 << 20;

impl PrefixHasher {
    /// Starts hashing, first up to `from` (what is already there).
    fn start(
        file: Arc<File>,
        digest: &Digest,
        from: u64,
    ) -> std::result::Result<PrefixHasher, ferry_spec::digest::DigestError> {
        let mut hasher = DigestHasher::for_digest(digest)?;
        let (target, targets) = std::sync::mpsc::channel::<u64>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let _ = target.send(from);
        let task = tokio::task::spawn_blocking(move || {
            let mut hashed = 0u64;
            let mut buffer = vec![0u8; READ_BACK];
            while let Ok(mut goal) = targets.recv() {
                while let Ok(later) = targets.try_recv() {
                    goal = goal.max(later);
                }
                while hashed < goal && !stopped.load(Ordering::Relaxed) {
                    let n = (goal - hashed).min(READ_BACK as u64) as usize;
                    file.read_exact_at(&mut buffer[..n], hashed)?;
                    hasher.update(&buffer[..n]);
                    hashed += n as u64;
                }
            }
            Ok((hasher, hashed))
        });
        Ok(PrefixHasher { target, stop, task })
    }

    /// The file is complete up to `to`.
    fn advance(&self, to: u64) {
        let _ = self.target.send(to);
    }

    /// The digest of the whole blob, once hashed.
    async fn finish(self, job: &Job<'_>) -> Result<Digest> {
        drop(self.target);
        let (hasher, hashed) = self
            .task
            .await
            .map_err(join_error("reading", job.path.display()))?
            .map_err(io_error("reading", job.path.display()))?;
        if hashed != job.size {
            return Err(io_error("reading", job.path.display())(io::Error::other(
                format!("hashed {hashed} of {} bytes", job.size),
            )));
        }
        Ok(hasher.finish())
    }

    /// Stops hashing and waits for the thread to let go of the file.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.target);
        let _ = self.task.await;
    }
}
