//! Downloading blobs into the store.
//!
//! A blob's bytes go to `tmp/partial-<alg>-<hex>` (locked, so two processes
//! never write one file) and enter the store under their digest only once
//! they hash to it. Small blobs come over one stream ([`sequential`]);
//! large ones in byte ranges over several connections at once ([`ranged`],
//! [`piece`]), with a record of the ranges on disk ([`record`]) so a killed
//! pull fetches only what is missing. A pull installs all its blobs together
//! ([`install_all`]): their fsyncs run in parallel, then the renames, then
//! one directory sync, instead of a flush per blob. Readers that need a
//! blob's bytes in order (extraction, copies) get them from several
//! connections too ([`ordered`]).

mod ordered;
mod piece;
mod ranged;
mod record;
mod sequential;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::Store;

use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result, io_error, join_error};
use crate::progress::TransferProgress;
use crate::sources::ReadSources;

pub(crate) use ordered::blob_stream;

/// One blob being downloaded into a partial file.
struct Job<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    digest: &'a Digest,
    size: u64,
    /// The partial file.
    path: PathBuf,
    progress: &'a dyn TransferProgress,
}

/// A downloaded blob whose bytes hash to its digest, waiting in `tmp/` to
/// be installed; its partial file stays locked until then.
pub(crate) struct Verified {
    _locked: File,
    path: PathBuf,
    digest: Digest,
}

/// What [`download_blob`] did.
pub(crate) struct Downloaded {
    /// Bytes fetched from the network.
    pub bytes: u64,
    /// The blob to install (None: the store had it).
    pub verified: Option<Verified>,
}

/// Downloads a blob from the first source that serves it intact, into a
/// verified partial file for [`install_all`].
pub(crate) async fn download_blob(
    client: &Client,
    sources: &ReadSources,
    store: &Store,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<Downloaded> {
    let (_, downloaded) = sources
        .first(async |endpoint| download_from(client, endpoint, store, descriptor, progress).await)
        .await?;
    Ok(downloaded)
}

/// [`download_blob`] and [`install_all`] of that one blob; whether bytes
/// were fetched, and how many.
pub(crate) async fn download_and_install(
    client: &Client,
    sources: &ReadSources,
    store: &Store,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<(bool, u64)> {
    let downloaded = download_blob(client, sources, store, descriptor, progress).await?;
    let fetched = downloaded.verified.is_some();
    install_all(store, downloaded.verified.into_iter().collect()).await?;
    Ok((fetched, downloaded.bytes))
}

/// Puts verified downloads into the store, durably and together: every
/// file is fsynced (in parallel, so the disk sees one batch of flushes)
/// before any is renamed under its digest, then the blob directory is
/// synced once.
pub(crate) async fn install_all(store: &Store, verified: Vec<Verified>) -> Result<()> {
    if verified.is_empty() {
        return Ok(());
    }
    let owned = store.clone();
    tokio::task::spawn_blocking(move || {
        let files: Vec<(&Path, &Digest)> = verified
            .iter()
            .map(|v| (v.path.as_path(), &v.digest))
            .collect();
        let installed = owned.install_verified_batch(&files);
        // The locks are released only once the files have their names.
        drop(verified);
        installed
    })
    .await
    .map_err(join_error("installing blobs in", store.root().display()))??;
    Ok(())
}

/// [`download_blob`] from one registry.
async fn download_from(
    client: &Client,
    endpoint: &Endpoint,
    store: &Store,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<Downloaded> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    let present = Downloaded {
        bytes: 0,
        verified: None,
    };
    if store.has_blob(digest) {
        progress.skipped(digest, size);
        return Ok(present);
    }
    if !ferry_spec::digest::is_sha256(digest) {
        return Err(ClientError::Integrity {
            what: digest.to_string(),
            reason: "only sha256 blobs can be stored locally".into(),
        });
    }
    let path = store.partial_path(digest);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error("opening", path.display()))?;
    // Another process downloading the same blob holds this lock; wait for it.
    lock_partial(&file, &path).await?;
    if store.has_blob(digest) {
        let _ = std::fs::remove_file(&path);
        let _ = record::remove(&path);
        progress.skipped(digest, size);
        return Ok(present);
    }
    progress.blob_started(digest, size);
    let job = Job {
        client,
        endpoint,
        digest,
        size,
        path: path.clone(),
        progress,
    };
    let ranges = client.options().ranges;
    let mut fetched = 0;
    let (file, first_body, kept_reported) =
        if size >= ranges.min_blob && ranges.connections_per_blob > 1 {
            match ranged::download(&job, file).await? {
                ranged::End::Verified { file, downloaded } => {
                    progress.blob_done(digest);
                    return Ok(Downloaded {
                        bytes: downloaded,
                        verified: Some(Verified {
                            _locked: file,
                            path,
                            digest: digest.clone(),
                        }),
                    });
                }
                ranged::End::OneStream {
                    file,
                    body,
                    downloaded,
                    reported,
                } => {
                    fetched += downloaded;
                    (file, body, reported)
                }
            }
        } else {
            // An earlier run may have left a ranged partial file.
            let file = blocking(&path, {
                let path = path.clone();
                move || {
                    record::settle_for_stream(&path, &file, size)
                        .map_err(io_error("reading", path.display()))?;
                    Ok(file)
                }
            })
            .await?;
            (file, None, false)
        };
    let (file, downloaded) = sequential::download(&job, file, first_body, kept_reported).await?;
    progress.blob_done(digest);
    Ok(Downloaded {
        bytes: fetched + downloaded,
        verified: Some(Verified {
            _locked: file,
            path,
            digest: digest.clone(),
        }),
    })
}

/// Runs file work off the runtime's worker threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(join_error("writing", path.display()))?
}

/// Removes a partial download whose content is wrong, and its record.
async fn discard(path: &Path) {
    let _ = tokio::fs::remove_file(path).await;
    let _ = record::remove(path);
}

async fn lock_partial(file: &File, path: &Path) -> Result<()> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error("locking", path.display())(e));
            }
        }
    }
}

/// Asks the kernel to start writing `len` bytes from `start` to disk now,
/// without waiting, so the fsync before the blob is installed finds little
/// left to do and dirty pages do not pile up for large models.
fn start_writeback(file: &File, start: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own; failure is harmless
    // (the final fsync still makes the data durable).
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            start as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}
