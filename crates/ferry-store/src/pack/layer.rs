//! Turning planned files into blobs: raw copies (or reflinks, or hardlinks)
//! and deterministic tar archives, hashed while they are written.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ferry_spec::digest::HashingReader;
use ferry_spec::oci::{Digest, DigestAlgorithm};

use crate::blob::{fresh_temp_path, install_verified_file};
use crate::error::{IoContext, Result, StoreError};
use crate::pack::Progress;
use crate::pack::walk::SourceFile;
use crate::store::Store;

/// Copy buffer: large enough to amortize syscalls, small enough to bound memory.
const CHUNK: usize = 1 << 20;

/// A blob written for one layer.
#[derive(Debug, Clone)]
pub struct WrittenBlob {
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// Digest of the uncompressed layer (the config's diffId); the blob
    /// digest for uncompressed layers.
    pub diff_id: Digest,
    /// Size of the uncompressed layer.
    pub uncompressed_size: u64,
    /// The files of a tar layer, hashed as they were read (a raw layer's
    /// file is the blob itself).
    pub files: Vec<PackedFile>,
}

impl WrittenBlob {
    /// An uncompressed blob: its diffId is its digest.
    pub fn uncompressed(digest: Digest, size: u64) -> WrittenBlob {
        WrittenBlob {
            diff_id: digest.clone(),
            uncompressed_size: size,
            digest,
            size,
            files: Vec::new(),
        }
    }
}

/// One packed path and its content's SHA-256, as read while packing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFile {
    /// Path relative to the model root, '/'-separated.
    pub path: String,
    /// SHA-256 of the file; `None` for a symbolic link.
    pub sha256: Option<Digest>,
}

/// Fixed metadata for tar entries and annotations, unless preserved from disk.
#[derive(Debug, Clone, Copy)]
pub struct EntryMetadata {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
}

impl EntryMetadata {
    /// The metadata ferry records for `metadata`.
    pub fn of(metadata: &fs::Metadata, preserve: bool) -> EntryMetadata {
        let mode = metadata.mode() & 0o777;
        if preserve {
            EntryMetadata {
                mode,
                uid: metadata.uid(),
                gid: metadata.gid(),
                mtime: metadata.mtime(),
            }
        } else {
            EntryMetadata {
                mode,
                uid: 0,
                gid: 0,
                mtime: 0,
            }
        }
    }
}

/// Fails when the file's size or mtime moved while ferry read it, or
/// another file took its path.
pub(super) fn ensure_unchanged(
    path: &Path,
    before: &fs::Metadata,
    after: &fs::Metadata,
) -> Result<()> {
    if before.len() != after.len()
        || before.dev() != after.dev()
        || before.ino() != after.ino()
        || before.mtime() != after.mtime()
        || before.mtime_nsec() != after.mtime_nsec()
    {
        return Err(StoreError::ChangedWhilePacking(path.to_path_buf()));
    }
    Ok(())
}

/// Takes group and other write permission from a hardlinked file: the
/// link shares the source's inode, and a blob someone else may write to
/// could change under its digest (a ModelKit's tar can ask for mode 0666).
fn without_shared_write(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.mode();
    if mode & 0o022 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o755))?;
    }
    Ok(())
}

/// How raw file bytes get into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMethod {
    /// Reflink when the filesystem can, else copy while hashing.
    CopyOrReflink,
    /// Hardlink the source into the store (it must not be modified later).
    Hardlink,
}

/// Stores one file's bytes as a raw layer.
pub fn write_raw(
    store: &Store,
    file: &SourceFile,
    method: RawMethod,
    progress: &dyn Progress,
) -> Result<WrittenBlob> {
    let path = &file.read_from;
    let mut source = file.open()?;
    let before = source.metadata().ctx("reading", path)?;
    let linked = match method {
        RawMethod::Hardlink => {
            let temp = fresh_temp_path(store)?;
            fs::hard_link(path, &temp).map_err(|source| StoreError::Hardlink {
                path: path.to_path_buf(),
                store: store.root().to_path_buf(),
                source,
            })?;
            // link(2) names whatever is at the path now: it must be the
            // file opened above.
            let same = fs::symlink_metadata(&temp)
                .is_ok_and(|m| m.dev() == before.dev() && m.ino() == before.ino());
            if !same {
                let _ = fs::remove_file(&temp);
                return Err(StoreError::ChangedWhilePacking(path.to_path_buf()));
            }
            match without_shared_write(&temp) {
                Ok(()) => Some(temp),
                // Another user's file (linkable when writable) keeps its
                // mode: it is copied instead.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    let _ = fs::remove_file(&temp);
                    None
                }
                Err(e) => {
                    let _ = fs::remove_file(&temp);
                    return Err(e).ctx("taking write permission from", path);
                }
            }
        }
        RawMethod::CopyOrReflink => {
            let temp = fresh_temp_path(store)?;
            match reflink_copy::reflink(path, &temp) {
                Ok(()) => Some(temp),
                Err(_) => {
                    let _ = fs::remove_file(&temp);
                    None
                }
            }
        }
    };
    if let Some(temp) = linked {
        // Hash the store's own copy: what is hashed is exactly what is kept.
        let result = hash_file(&temp, progress).and_then(|(digest, size)| {
            let after = fs::metadata(path).ctx("reading", path)?;
            ensure_unchanged(path, &before, &after)?;
            install_verified_file(store, &temp, &digest)?;
            Ok(WrittenBlob::uncompressed(digest, size))
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        return result;
    }
    let mut writer = store.blob_writer()?;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("reading", path),
        };
        writer
            .write_all_bytes(&buffer[..n])
            .map_err(|e| with_source_context(e, path))?;
        progress.advance(n as u64);
    }
    let after = source.metadata().ctx("reading", path)?;
    ensure_unchanged(path, &before, &after)?;
    let size = writer.written();
    if size != before.len() {
        return Err(StoreError::ChangedWhilePacking(path.to_path_buf()));
    }
    let digest = writer.commit(None)?;
    Ok(WrittenBlob::uncompressed(digest, size))
}

fn with_source_context(error: StoreError, source: &Path) -> StoreError {
    match error {
        StoreError::Io {
            path: blob,
            source: e,
            ..
        } => StoreError::BlobWrite {
            file: source.to_path_buf(),
            blob,
            source: e,
        },
        other => other,
    }
}

fn hash_file(path: &Path, progress: &dyn Progress) -> Result<(Digest, u64)> {
    let file = File::open(path).ctx("reading", path)?;
    ferry_spec::digest::hash_reader(
        ProgressReader {
            inner: file,
            progress,
        },
        &DigestAlgorithm::Sha256,
    )
    .ctx("reading", path)
}

/// Writes a tar layer holding `files` (paths relative to the model root),
/// with fixed ownership and times unless `preserve` is set.
pub fn write_tar(
    store: &Store,
    files: &[&SourceFile],
    preserve: bool,
    progress: &dyn Progress,
) -> Result<WrittenBlob> {
    let writer = store.blob_writer()?;
    let temp_path = writer.temp_path().display().to_string();
    let (writer, hashed) = tar_into(writer, files, preserve, progress, &temp_path)?;
    let size = writer.written();
    let digest = writer.commit(None)?;
    Ok(WrittenBlob {
        files: hashed,
        ..WrittenBlob::uncompressed(digest, size)
    })
}

/// Streams the tar layer [`write_tar`] would store into any writer (an
/// upload): the same bytes. Returns how many were written.
pub fn stream_tar(
    writer: &mut dyn Write,
    files: &[&SourceFile],
    preserve: bool,
    progress: &dyn Progress,
) -> Result<u64> {
    let (counting, _) = tar_into(
        CountingWriter {
            inner: writer,
            written: 0,
        },
        files,
        preserve,
        progress,
        "the upload",
    )?;
    Ok(counting.written)
}

/// Streams one file's bytes (a raw layer) into any writer; fails when the
/// file changes while it is read. Returns how many bytes were written.
pub fn stream_raw(
    file: &SourceFile,
    writer: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<u64> {
    let path = &file.read_from;
    let mut source = file.open()?;
    let before = source.metadata().ctx("reading", path)?;
    let mut buffer = vec![0u8; CHUNK];
    let mut written = 0u64;
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("reading", path),
        };
        writer.write_all(&buffer[..n]).ctx("sending", path)?;
        written += n as u64;
        progress.advance(n as u64);
    }
    let after = source.metadata().ctx("reading", path)?;
    ensure_unchanged(path, &before, &after)?;
    if written != before.len() {
        return Err(StoreError::ChangedWhilePacking(path.to_path_buf()));
    }
    Ok(written)
}

/// Counts what passes through.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    written: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the deterministic tar of `files` into `writer` and returns it
/// with each file's SHA-256; `target` names where the bytes go, for errors.
pub(crate) fn tar_into<W: Write>(
    writer: W,
    files: &[&SourceFile],
    preserve: bool,
    progress: &dyn Progress,
    target: &str,
) -> Result<(W, Vec<PackedFile>)> {
    let mut hashed = Vec::with_capacity(files.len());
    let temp_path = target;
    let mut builder = tar::Builder::new(writer);
    builder.mode(tar::HeaderMode::Deterministic);
    for file in files {
        let meta = EntryMetadata::of(&file.metadata, preserve);
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode);
        header.set_uid(meta.uid.into());
        header.set_gid(meta.gid.into());
        header.set_mtime(meta.mtime.max(0) as u64);
        if let Some(target) = &file.link_target {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, &file.rel, target)
                .map_err(|e| tar_error(e, &file.rel, temp_path))?;
            hashed.push(PackedFile {
                path: file.rel.clone(),
                sha256: None,
            });
            continue;
        }
        let path = &file.read_from;
        let source = file.open()?;
        let before = source.metadata().ctx("reading", path)?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(before.len());
        let mut counted = ProgressReader {
            inner: HashingReader::new(source.take(before.len())),
            progress,
        };
        builder
            .append_data(&mut header, &file.rel, &mut counted)
            .map_err(|e| tar_error(e, &file.rel, temp_path))?;
        let (sha256, read) = counted.inner.finish();
        let after = fs::metadata(path).ctx("reading", path)?;
        ensure_unchanged(path, &before, &after)?;
        if read != before.len() {
            return Err(StoreError::ChangedWhilePacking(path.to_path_buf()));
        }
        hashed.push(PackedFile {
            path: file.rel.clone(),
            sha256: Some(sha256),
        });
    }
    let writer = builder
        .into_inner()
        .map_err(|e| tar_error(e, "end of archive", temp_path))?;
    Ok((writer, hashed))
}

fn tar_error(source: io::Error, entry: &str, target: &str) -> StoreError {
    StoreError::TarWrite {
        entry: entry.to_string(),
        target: target.to_string(),
        source,
    }
}

/// Reports every byte read to a progress bar.
struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
