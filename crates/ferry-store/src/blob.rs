//! Writing a blob safely: temp file, hash on the way, verify, fsync, rename.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ferry_spec::digest::HashingWriter;
use ferry_spec::oci::Digest;

use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;

/// A blob being written. Dropping it without [`BlobWriter::commit`] deletes
/// the temporary file, so a failed write leaves nothing behind.
pub struct BlobWriter {
    store: Store,
    temp: Option<tempfile::TempPath>,
    writer: HashingWriter<io::BufWriter<File>>,
    /// Offset up to which writeback to disk has been started.
    written_back: u64,
}

/// Bytes between two requests to start writing a blob back to disk.
const WRITEBACK_STEP: u64 = 64 << 20;

impl BlobWriter {
    pub(crate) fn create(store: &Store) -> Result<BlobWriter> {
        let dir = store.tmp_dir();
        let named = ferry_spec::durable::temp_file_in(&dir, ferry_spec::durable::SHARED_FILE_MODE)
            .ctx("creating temporary file in", &dir)?;
        let (file, path) = named.into_parts();
        Ok(BlobWriter {
            store: store.clone(),
            temp: Some(path),
            writer: HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file)),
            written_back: 0,
        })
    }

    /// The temporary file's path.
    pub fn temp_path(&self) -> &Path {
        self.temp.as_deref().unwrap_or_else(|| Path::new(""))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.written()
    }

    /// Writes bytes, naming the temp file in errors.
    pub fn write_all_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let path = self.temp_path().to_path_buf();
        self.writer.write_all(bytes).ctx("writing", &path)?;
        self.start_writeback().ctx("writing", path)
    }

    /// Every few dozen MiB, asks the kernel to start writing what is buffered
    /// to disk without waiting, so the fsync in `commit` finds little left and
    /// copying overlaps with the disk instead of preceding it.
    fn start_writeback(&mut self) -> io::Result<()> {
        let written = self.writer.written();
        if written - self.written_back < WRITEBACK_STEP {
            return Ok(());
        }
        self.writer.get_mut().flush()?;
        let file = self.writer.get_mut().get_ref();
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor we own; failure only means
        // the final fsync does all the work.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                self.written_back as libc::off64_t,
                (written - self.written_back) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.written_back = written;
        Ok(())
    }

    /// Verifies the digest (when one is expected), fsyncs and renames the
    /// blob into place. Returns the digest of what was written.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest> {
        let temp_path = self.temp_path().to_path_buf();
        self.writer.flush().ctx("writing", &temp_path)?;
        let temp = self.temp.take();
        let (buffered, digest, _) = self.writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("writing", &temp_path)?;
        if let Some(expected) = expected
            && expected != &digest
        {
            return Err(StoreError::DigestMismatch {
                digest: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let Some(temp) = temp else {
            return Err(StoreError::Internal("blob writer used after commit"));
        };
        let target = self.store.blob_path(&digest);
        if target.is_file() {
            // Same content already stored: the temp file is dropped and deleted.
            return Ok(digest);
        }
        file.sync_all().ctx("syncing", &temp_path)?;
        drop(file);
        temp.persist(&target)
            .map_err(|e| e.error)
            .ctx("renaming blob to", &target)?;
        sync_dir(target.parent().unwrap_or(Path::new(".")))?;
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.start_writeback()?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    ferry_spec::durable::sync_dir(dir).ctx("syncing directory", dir)
}

/// Moves an already-verified file into the store under `digest`: used for
/// reflinked and hardlinked blobs that were hashed from their source.
pub(crate) fn install_verified_file(store: &Store, temp: &Path, digest: &Digest) -> Result<()> {
    let target = store.blob_path(digest);
    if target.is_file() {
        // Another writer of the same blob got there first; it may also have
        // renamed this very file (a download resumed into the same partial
        // file), so a temp file already gone is fine.
        match fs::remove_file(temp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).ctx("removing", temp);
            }
            _ => return Ok(()),
        }
    }
    ferry_spec::durable::install_path(temp, &target).ctx("installing blob", &target)
}

/// Flushes at once at most this many files (one thread each).
const PARALLEL_FLUSHES: usize = 8;

/// Moves verified files into the store together: all flushed (in
/// parallel), then renamed, then each blob directory synced once. A file
/// whose blob is already stored is dropped.
pub(crate) fn install_verified_files(store: &Store, files: &[(&Path, &Digest)]) -> Result<()> {
    let mut pending = Vec::new();
    for (temp, digest) in files {
        let target = store.blob_path(digest);
        if target.is_file() {
            match fs::remove_file(temp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(e).ctx("removing", temp);
                }
                _ => continue,
            }
        }
        pending.push((*temp, target));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let flush = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((temp, _)) = pending.get(i) else {
                return Ok(());
            };
            File::open(temp)
                .and_then(|f| f.sync_data())
                .ctx("syncing", temp)?;
        }
    };
    let threads = pending.len().min(PARALLEL_FLUSHES);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads).map(|_| scope.spawn(flush)).collect();
        let mine = flush();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or(Err(StoreError::Internal("a flush thread panicked")))
            })
            .chain(std::iter::once(mine))
            .collect::<Result<Vec<()>>>()
    })?;
    let mut dirs = std::collections::BTreeSet::new();
    for (temp, target) in &pending {
        fs::rename(temp, target).ctx("installing blob", target)?;
        if let Some(dir) = target.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// A path in the store's tmp directory that nothing else uses, for a reflink
/// or hardlink target.
pub(crate) fn fresh_temp_path(store: &Store) -> Result<PathBuf> {
    let dir = store.tmp_dir();
    let named = tempfile::Builder::new()
        .prefix("blob-")
        .tempfile_in(&dir)
        .ctx("creating temporary file in", &dir)?;
    let path = named.into_temp_path();
    let keep = path.to_path_buf();
    // The name is reserved by deleting the empty file only now; the caller
    // creates the link immediately after.
    path.close().ctx("removing", &keep)?;
    Ok(keep)
}
