//! OCI layout tarballs (`oci-archive:FILE[:TAG]`): a tar of `oci-layout`,
//! `index.json` and `blobs/<alg>/<hex>`.
//!
//! Reading never unpacks: the headers are scanned once (seeking over the
//! data) to learn where each blob's bytes sit, and each blob is then
//! streamed from its offset. Writing streams a tar into a temporary file
//! next to the target, one verified blob after another, and renames it into
//! place only when the index is written: a failed copy leaves no archive.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_spec::annotations::REF_NAME;
use ferry_spec::digest::HashingReader;
use ferry_spec::durable::SHARED_FILE_MODE;
use ferry_spec::oci::{Descriptor, Digest, ImageIndex, ImageIndexBuilder, MediaType};
use ferry_store::store::MAX_DOCUMENT_SIZE;

use crate::bridge::{self, BlobStream, ByteStream, consume_blocking};
use crate::error::{BoxError, ClientError, Missing, Result, io_error, join_error};
use crate::progress::TransferProgress;
use crate::upload::BlobOutcome;

use ferry_spec::media::OCI_LAYOUT_FILE as OCI_LAYOUT;

fn invalid(path: &Path, reason: &str) -> ClientError {
    ClientError::InvalidArchive {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source: None,
    }
}

fn invalid_because(path: &Path, reason: &str, source: impl Into<BoxError>) -> ClientError {
    ClientError::InvalidArchive {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source: Some(source.into()),
    }
}

/// The tar path of a blob.
fn blob_entry_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_ref(), digest.digest())
}

/// An OCI layout archive opened for reading.
#[derive(Debug)]
pub struct ArchiveReader {
    path: PathBuf,
    /// Entry name -> (offset of the data, size).
    entries: HashMap<String, (u64, u64)>,
    index: ImageIndex,
}

impl ArchiveReader {
    /// Scans the archive's headers (blocking: call it off the runtime).
    pub fn open(path: &Path) -> Result<ArchiveReader> {
        let file = File::open(path).map_err(io_error("opening", path.display()))?;
        let mut archive = tar::Archive::new(file);
        let mut entries = HashMap::new();
        let iter = archive
            .entries_with_seek()
            .map_err(|e| invalid_because(path, "not a tar archive", e))?;
        for entry in iter {
            let entry = entry.map_err(|e| invalid_because(path, "bad tar entry", e))?;
            let kind = entry.header().entry_type();
            if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| invalid_because(path, "bad entry name", e))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            // Later entries replace earlier ones, as tar extraction would.
            entries.insert(name, (entry.raw_file_position(), entry.size()));
        }
        let &(offset, size) = entries
            .get("index.json")
            .ok_or_else(|| invalid(path, "no index.json"))?;
        if size > MAX_DOCUMENT_SIZE {
            return Err(invalid(
                path,
                &format!("index.json is larger than {MAX_DOCUMENT_SIZE} bytes"),
            ));
        }
        let bytes = read_range(path, offset, size)?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| invalid_because(path, "invalid index.json", e))?;
        Ok(ArchiveReader {
            path: path.to_path_buf(),
            entries,
            index,
        })
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries of `index.json`.
    pub fn entries(&self) -> &[Descriptor] {
        self.index.manifests()
    }

    /// Where the blob's bytes are, checked against the descriptor's size.
    fn locate(&self, descriptor: &Descriptor) -> Result<(u64, u64)> {
        let digest = descriptor.digest();
        let &(offset, size) = self.entries.get(&blob_entry_name(digest)).ok_or_else(|| {
            ClientError::NotFound(Missing::Other(format!(
                "blob {digest} in {}",
                self.path.display()
            )))
        })?;
        if size != descriptor.size() {
            return Err(ClientError::Integrity {
                what: format!("blob {digest} in {}", self.path.display()),
                reason: format!("{size} bytes, the descriptor says {}", descriptor.size()),
            });
        }
        Ok((offset, size))
    }

    /// A small document (manifest, index), verified against its descriptor
    /// (blocking).
    pub fn read_document(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let (offset, size) = self.locate(descriptor)?;
        if size > MAX_DOCUMENT_SIZE {
            return Err(ClientError::Integrity {
                what: format!(
                    "manifest {} in {}",
                    descriptor.digest(),
                    self.path.display()
                ),
                reason: format!("larger than {MAX_DOCUMENT_SIZE} bytes"),
            });
        }
        let bytes = read_range(&self.path, offset, size)?;
        let actual = ferry_spec::digest::sha256_digest(&bytes);
        if &actual != descriptor.digest() {
            return Err(ClientError::Integrity {
                what: format!(
                    "manifest {} in {}",
                    descriptor.digest(),
                    self.path.display()
                ),
                reason: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Streams a blob's bytes (verified by whoever consumes them).
    pub async fn blob_stream(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let (offset, size) = self.locate(descriptor)?;
        bridge::file_stream(&self.path, offset, size).await
    }
}

fn read_range(path: &Path, offset: u64, size: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(io_error("reading", path.display()))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(io_error("reading", path.display()))?;
    let mut bytes = Vec::with_capacity(size.min(MAX_DOCUMENT_SIZE) as usize);
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(io_error("reading", path.display()))?;
    if bytes.len() as u64 != size {
        return Err(invalid(path, "truncated entry"));
    }
    Ok(bytes)
}

/// What the writer holds between calls (taken out while a blob is written
/// on a blocking thread).
struct WriterState {
    builder: tar::Builder<BufWriter<tempfile::NamedTempFile>>,
    written: HashSet<Digest>,
    entries: Vec<Descriptor>,
}

/// An OCI layout archive being written. Blobs are appended one at a time;
/// [`ArchiveWriter::finish`] writes `index.json` and renames the archive
/// into place. Dropped unfinished (or after a failure), the temporary file
/// is deleted.
pub struct ArchiveWriter {
    target: PathBuf,
    state: Mutex<Option<WriterState>>,
}

impl ArchiveWriter {
    /// Starts an archive that will become `target` (blocking, but brief).
    pub fn create(target: &Path) -> Result<ArchiveWriter> {
        if target.is_dir() {
            return Err(ClientError::invalid_input(format!(
                "{} is a directory, not an archive file",
                target.display()
            )));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io_error("creating", parent.display()))?;
        // Readable by all (before the umask), as skopeo writes archives.
        let temp = ferry_spec::durable::temp_file_in(&parent, SHARED_FILE_MODE)
            .map_err(io_error("creating a temporary file in", parent.display()))?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, temp));
        builder.mode(tar::HeaderMode::Deterministic);
        let describe = target.display().to_string();
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut header = header(0, tar::EntryType::Directory, 0o755);
            builder
                .append_data(&mut header, dir, io::empty())
                .map_err(io_error("writing", &describe))?;
        }
        let mut header = header(OCI_LAYOUT.len() as u64, tar::EntryType::Regular, 0o644);
        builder
            .append_data(&mut header, "oci-layout", OCI_LAYOUT)
            .map_err(io_error("writing", &describe))?;
        Ok(ArchiveWriter {
            target: target.to_path_buf(),
            state: Mutex::new(Some(WriterState {
                builder,
                written: HashSet::new(),
                entries: Vec::new(),
            })),
        })
    }

    fn take_state(&self) -> Result<WriterState> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| ClientError::Io {
                action: "writing",
                path: self.target.display().to_string(),
                source: io::Error::other("the archive was abandoned after an earlier failure"),
            })
    }

    fn put_state(&self, state: WriterState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    /// True when the blob is in the archive already.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.written.contains(digest))
    }

    /// Appends a blob from `stream`, verifying size and digest as it is
    /// written. Calls must not overlap (a tar is written in order).
    pub async fn put_blob(
        &self,
        descriptor: &Descriptor,
        stream: BlobStream<'_>,
        progress: &dyn TransferProgress,
    ) -> Result<BlobOutcome> {
        let digest = descriptor.digest().clone();
        check_sha256(&digest)?;
        let mut state = self.take_state()?;
        if state.written.contains(&digest) {
            self.put_state(state);
            return Ok(BlobOutcome::Present);
        }
        let owned = descriptor.clone();
        let describe = self.target.display().to_string();
        progress.blob_started(&digest, descriptor.size());
        let state = consume_blocking(stream, &digest, progress, move |reader| {
            append_verified(&mut state.builder, &owned, reader, &describe)?;
            state.written.insert(owned.digest().clone());
            Ok(state)
        })
        .await?;
        self.put_state(state);
        progress.blob_done(&digest);
        Ok(BlobOutcome::Sent(descriptor.size()))
    }

    /// Appends a document held in memory (a manifest), once.
    pub async fn put_document(&self, descriptor: &Descriptor, bytes: &[u8]) -> Result<()> {
        let digest = descriptor.digest().clone();
        check_sha256(&digest)?;
        let mut state = self.take_state()?;
        if !state.written.contains(&digest) {
            let owned = descriptor.clone();
            let bytes = bytes.to_vec();
            let describe = self.target.display().to_string();
            state = tokio::task::spawn_blocking(move || {
                append_verified(&mut state.builder, &owned, &mut &bytes[..], &describe)?;
                state.written.insert(owned.digest().clone());
                Ok::<_, ClientError>(state)
            })
            .await
            .map_err(join_error("writing", self.target.display()))??;
        }
        self.put_state(state);
        Ok(())
    }

    /// Lists a manifest in `index.json`: named `name` (replacing an entry of
    /// that name), or unnamed (referrers) unless its digest is listed.
    pub fn set_entry(&self, name: Option<&str>, descriptor: &Descriptor) -> Result<()> {
        let mut state = self.take_state()?;
        let mut entry = descriptor.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.remove(REF_NAME);
        if let Some(name) = name {
            annotations.insert(REF_NAME.to_string(), name.to_string());
            state.entries.retain(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(String::as_str)
                    != Some(name)
            });
        } else if state.entries.iter().any(|d| d.digest() == entry.digest()) {
            self.put_state(state);
            return Ok(());
        }
        entry.set_annotations((!annotations.is_empty()).then_some(annotations));
        state.entries.push(entry);
        self.put_state(state);
        Ok(())
    }

    /// Writes `index.json`, ends the tar, fsyncs it and renames it into place.
    pub async fn finish(self) -> Result<PathBuf> {
        let state = self.take_state()?;
        let target = self.target.clone();
        tokio::task::spawn_blocking(move || finish_blocking(state, &target))
            .await
            .map_err(join_error("writing", self.target.display()))??;
        Ok(self.target)
    }
}

fn finish_blocking(mut state: WriterState, target: &Path) -> Result<()> {
    let describe = target.display().to_string();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(state.entries.clone())
        .build()
        .map_err(|e| ClientError::encode("index.json", e))?;
    let bytes = ferry_spec::json::canonical_json(&index)
        .map_err(|e| ClientError::encode("index.json", e))?;
    let mut header = header(bytes.len() as u64, tar::EntryType::Regular, 0o644);
    state
        .builder
        .append_data(&mut header, "index.json", &bytes[..])
        .map_err(io_error("writing", &describe))?;
    let buffered = state
        .builder
        .into_inner()
        .map_err(io_error("writing", &describe))?;
    let temp = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_error("writing", &describe))?;
    ferry_spec::durable::persist(temp, target).map_err(io_error("installing", &describe))
}

fn check_sha256(digest: &Digest) -> Result<()> {
    if ferry_spec::digest::is_sha256(digest) {
        Ok(())
    } else {
        Err(ClientError::Integrity {
            what: digest.to_string(),
            reason: "only sha256 blobs can be written to a layout by ferry".into(),
        })
    }
}

fn header(size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Appends `reader` as the blob `descriptor` names, hashing as it goes. A
/// source that is shorter, longer or different fails (and the caller
/// abandons the archive, whose tar is then out of step).
fn append_verified<W: Write>(
    builder: &mut tar::Builder<W>,
    descriptor: &Descriptor,
    reader: &mut dyn Read,
    describe: &str,
) -> Result<()> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    let mut header = header(size, tar::EntryType::Regular, 0o644);
    let mut hashing = HashingReader::new((&mut *reader).take(size));
    builder
        .append_data(&mut header, blob_entry_name(digest), &mut hashing)
        .map_err(io_error("writing", describe))?;
    let (actual, read) = hashing.finish();
    let integrity = |reason: String| ClientError::Integrity {
        what: format!("blob {digest}"),
        reason,
    };
    if read != size {
        return Err(integrity(format!(
            "the source sent {read} of the {size} bytes the descriptor declares"
        )));
    }
    let mut extra = [0u8; 1];
    if reader
        .read(&mut extra)
        .map_err(io_error("reading", format!("blob {digest}")))?
        > 0
    {
        return Err(integrity(format!(
            "the source sent more than the {size} bytes the descriptor declares"
        )));
    }
    if &actual != digest {
        return Err(integrity(format!(
            "the source's content hashes to {actual}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use bytes::Bytes;

    fn stream_of(bytes: &'static [u8]) -> ByteStream {
        Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(
            bytes,
        ))]))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn written_archives_read_back_blob_for_blob() {
        let temp = tempfile::tempdir().unwrap();
        let target = temp.path().join("out.tar");
        let writer = ArchiveWriter::create(&target).unwrap();
        let blob: &'static [u8] = b"layer bytes";
        let descriptor = Descriptor::new(
            MediaType::Other("application/octet-stream".into()),
            blob.len() as u64,
            ferry_spec::digest::sha256_digest(blob),
        );
        let outcome = writer
            .put_blob(&descriptor, stream_of(blob), &NoProgress)
            .await
            .unwrap();
        assert_eq!(outcome, BlobOutcome::Sent(blob.len() as u64));
        let again = writer
            .put_blob(&descriptor, stream_of(blob), &NoProgress)
            .await
            .unwrap();
        assert_eq!(again, BlobOutcome::Present);
        writer.set_entry(Some("v1"), &descriptor).unwrap();
        assert!(!target.exists(), "nothing at the target before finish");
        writer.finish().await.unwrap();

        let reader = ArchiveReader::open(&target).unwrap();
        assert_eq!(reader.entries().len(), 1);
        let found =
            ferry_store::layout::find_entry(reader.entries(), Some("v1"), "archive").unwrap();
        assert_eq!(found.digest(), descriptor.digest());
        assert_eq!(reader.read_document(&descriptor).unwrap(), blob);
        let leftovers: Vec<_> = std::fs::read_dir(temp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("out.tar")]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_blob_that_does_not_match_abandons_the_archive() {
        let temp = tempfile::tempdir().unwrap();
        let target = temp.path().join("out.tar");
        let writer = ArchiveWriter::create(&target).unwrap();
        let descriptor = Descriptor::new(
            MediaType::Other("application/octet-stream".into()),
            5,
            ferry_spec::digest::sha256_digest(b"right"),
        );
        let error = writer
            .put_blob(&descriptor, stream_of(b"wrong"), &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Integrity { .. }), "{error}");
        assert!(
            writer.finish().await.is_err(),
            "an abandoned archive cannot finish"
        );
        let leftovers: Vec<_> = std::fs::read_dir(temp.path()).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "no archive and no temporary file remain"
        );
    }

    #[test]
    fn a_file_that_is_not_a_tar_is_refused_clearly() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("x.tar");
        std::fs::write(&path, b"not a tar at all, just some text").unwrap();
        let error = ArchiveReader::open(&path).unwrap_err().to_string();
        assert!(error.contains("not a usable OCI layout archive"), "{error}");
    }
}
