//! The filesystem backend.
//!
//! ```text
//! <root>/blobs/<alg>/<hex>                          content, once for all repositories
//! <root>/repos/<name>/_blobs/<alg>/<hex>            empty: the repository holds this blob
//! <root>/repos/<name>/_manifests/<alg>/<hex>        the manifest's media type
//! <root>/repos/<name>/_tags/<tag>                   the digest the tag points to
//! <root>/repos/<name>/_referrers/<alg>/<hex>/<alg>-<hex>.json   referrer descriptors
//! <root>/uploads/<id>/{data,repo}                   upload sessions (survive restarts)
//! <root>/tmp/                                       files on their way to a rename
//! ```
//! Names and digests are validated before they reach this module, and
//! repository components cannot start with `_`, so no request can name a
//! path outside these trees. Every file that outlives a request is written
//! durably (`ferry_spec::durable`: temp file, fsync, rename, fsync the
//! directory) on a blocking thread.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry_spec::digest::DigestHasher;
use ferry_spec::durable;
use ferry_spec::oci::{Digest, DigestAlgorithm};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{
    BlobEntry, BlobLink, BlobReader, BlobSource, ByteStream, ReferrerDescriptor, Storage,
    StorageError, StoredManifest, session_expiry,
};

/// Incremental SHA-256 state of an upload held in memory so finishing a
/// large upload does not re-read it; after a restart, or for a sha512
/// digest, the file is re-hashed.
struct SessionHash {
    hasher: DigestHasher,
    offset: u64,
}

/// Blobs and manifests in a directory tree.
pub struct FsStorage {
    root: PathBuf,
    sessions: Mutex<HashMap<String, SessionHash>>,
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Bytes gathered before a write to an upload's data file.
const WRITE_BATCH: usize = 1 << 20;

/// Bytes between two requests to start writing an upload back to disk.
const WRITEBACK_STEP: u64 = 64 << 20;

/// Bytes per chunk of a blob sent to a client.
const READ_CHUNK: usize = 256 * 1024;

impl FsStorage {
    /// Opens (creating) a storage tree at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsStorage> {
        let root = root.into();
        for dir in ["blobs/sha256", "blobs/sha512", "repos", "uploads", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        Ok(FsStorage {
            root,
            sessions: Mutex::new(HashMap::new()),
            session_locks: Mutex::new(HashMap::new()),
        })
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        digest_path(&self.root.join("blobs"), digest)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repos").join(repo)
    }

    fn link_path(&self, repo: &str, digest: &Digest) -> PathBuf {
        digest_path(&self.repo_dir(repo).join("_blobs"), digest)
    }

    fn manifest_meta_path(&self, repo: &str, digest: &Digest) -> PathBuf {
        digest_path(&self.repo_dir(repo).join("_manifests"), digest)
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    fn referrers_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        digest_path(&self.repo_dir(repo).join("_referrers"), subject)
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.session_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn take_session_hash(&self, id: &str) -> Option<SessionHash> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    fn forget_session(&self, id: &str) {
        self.take_session_hash(id);
        self.session_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Replaces `path` with `bytes` durably, through `tmp/`.
    async fn write_atomic(&self, path: PathBuf, bytes: Bytes) -> io::Result<()> {
        let temp_dir = self.root.join("tmp");
        blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            durable::write_file(&path, &bytes, Some(&temp_dir), durable::SHARED_FILE_MODE)
        })
        .await
    }

    /// Moves a verified file into the blob store durably (keeping an
    /// existing copy, which has the same content).
    async fn install_blob(&self, temp: PathBuf, digest: &Digest) -> io::Result<()> {
        let target = self.blob_path(digest);
        blocking(move || {
            if target.exists() {
                return std::fs::remove_file(&temp);
            }
            durable::install_path(&temp, &target)
        })
        .await
    }

    /// Links the blob into `repo` durably: a `201` promises it is there.
    async fn link(&self, repo: &str, digest: &Digest) -> io::Result<()> {
        self.write_atomic(self.link_path(repo, digest), Bytes::new())
            .await
    }

    /// When session `id` started: its `repo` file is written once, at the
    /// start (its directory stands in while it is being created).
    async fn session_started(&self, id: &str) -> io::Result<SystemTime> {
        let dir = self.session_dir(id);
        match tokio::fs::metadata(dir.join("repo")).await {
            Ok(metadata) => metadata.modified(),
            Err(_) => tokio::fs::metadata(dir).await?.modified(),
        }
    }

    /// Removes session `id`; its lock must be held.
    async fn remove_session(&self, id: &str) -> io::Result<()> {
        let removed = tokio::fs::remove_dir_all(self.session_dir(id)).await;
        self.forget_session(id);
        match removed {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn session_repo(&self, id: &str) -> Option<String> {
        if !valid_session_id(id) {
            return None;
        }
        tokio::fs::read_to_string(self.session_dir(id).join("repo"))
            .await
            .ok()
    }

    /// The SHA-256 state of a session when it covers exactly `size` bytes
    /// and the digest to verify is a SHA-256 one.
    fn usable_session_hash(&self, id: &str, size: u64, digest: &Digest) -> Option<DigestHasher> {
        self.take_session_hash(id)
            .filter(|state| state.offset == size && *digest.algorithm() == DigestAlgorithm::Sha256)
            .map(|state| state.hasher)
    }
}

/// `<dir>/<alg>/<hex>`: both parts validated, so safe as path components.
fn digest_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(digest.algorithm().as_ref()).join(digest.digest())
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

/// Digests stored under `<dir>/<alg>/<hex>`, with their metadata; names that
/// are not digests are skipped, and so are entries removed meanwhile.
fn list_digests(dir: &Path) -> io::Result<Vec<(Digest, Metadata)>> {
    let mut out = Vec::new();
    for algorithm in read_dir_or_empty(dir)? {
        let algorithm = algorithm?;
        for entry in read_dir_or_empty(&algorithm.path())? {
            let entry = entry?;
            let name = format!(
                "{}:{}",
                algorithm.file_name().to_string_lossy(),
                entry.file_name().to_string_lossy()
            );
            let Ok(digest) = ferry_spec::digest::parse_digest(&name) else {
                continue;
            };
            match entry.metadata() {
                Ok(metadata) => out.push((digest, metadata)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

fn read_dir_or_empty(
    dir: &Path,
) -> io::Result<Box<dyn Iterator<Item = io::Result<std::fs::DirEntry>>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Box::new(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

fn modified(metadata: &Metadata) -> SystemTime {
    // Every Linux filesystem keeps mtimes; "now" keeps an entry from gc.
    metadata.modified().unwrap_or_else(|_| SystemTime::now())
}

/// Starts writeback of everything from `start` without waiting, so the fsync
/// that installs the blob finds little left to do.
fn start_writeback(file: &tokio::fs::File, start: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own; failure is harmless
    // because the final fsync still makes the data durable.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            start as libc::off64_t,
            0,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Appends gathered bytes to the session file and the running hash.
async fn write_batch(
    file: &mut tokio::fs::File,
    pending: &mut Vec<u8>,
    state: &mut Option<SessionHash>,
    offset: &mut u64,
) -> Result<(), StorageError> {
    if pending.is_empty() {
        return Ok(());
    }
    file.write_all(pending).await?;
    if let Some(state) = state.as_mut() {
        state.hasher.update(pending);
        state.offset += pending.len() as u64;
    }
    *offset += pending.len() as u64;
    pending.clear();
    Ok(())
}

/// Session ids are UUIDs; anything else never reaches the filesystem.
fn valid_session_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok() && !id.contains('/')
}

fn not_found_is_none<T>(result: io::Result<T>) -> Result<Option<T>, StorageError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An open blob file.
struct FileSource(tokio::fs::File);

#[async_trait::async_trait]
impl BlobSource for FileSource {
    async fn read(self: Box<Self>, start: u64, len: u64) -> io::Result<ByteStream> {
        let mut file = self.0;
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await?;
        }
        Ok(Box::pin(ReaderStream::with_capacity(
            file.take(len),
            READ_CHUNK,
        )))
    }
}

#[async_trait::async_trait]
impl Storage for FsStorage {
    async fn blob_open(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<BlobReader>, StorageError> {
        if !self.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        let Some(file) = not_found_is_none(tokio::fs::File::open(self.blob_path(digest)).await)?
        else {
            return Ok(None);
        };
        let size = file.metadata().await?.len();
        Ok(Some(BlobReader::new(size, Box::new(FileSource(file)))))
    }

    async fn blob_known(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(tokio::fs::metadata(self.blob_path(digest)).await.is_ok())
    }

    async fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError> {
        Ok(tokio::fs::metadata(self.link_path(repo, digest))
            .await
            .is_ok()
            || tokio::fs::metadata(self.manifest_meta_path(repo, digest))
                .await
                .is_ok())
    }

    async fn blob_link(&self, repo: &str, digest: &Digest) -> Result<(), StorageError> {
        if !self.blob_known(digest).await? {
            return Err(StorageError::NotFound);
        }
        Ok(self.link(repo, digest).await?)
    }

    async fn blob_unlink(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError> {
        Ok(
            not_found_is_none(tokio::fs::remove_file(self.link_path(repo, digest)).await)?
                .is_some(),
        )
    }

    async fn blob_links(&self, repo: &str) -> Result<Vec<BlobLink>, StorageError> {
        let dir = self.repo_dir(repo).join("_blobs");
        let links = blocking(move || list_digests(&dir)).await?;
        Ok(links
            .into_iter()
            .map(|(digest, metadata)| BlobLink {
                digest,
                modified: modified(&metadata),
            })
            .collect())
    }

    async fn blobs(&self) -> Result<Vec<BlobEntry>, StorageError> {
        let dir = self.root.join("blobs");
        let blobs = blocking(move || list_digests(&dir)).await?;
        Ok(blobs
            .into_iter()
            .map(|(digest, metadata)| BlobEntry {
                digest,
                size: metadata.len(),
                modified: modified(&metadata),
            })
            .collect())
    }

    async fn blob_delete(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(not_found_is_none(tokio::fs::remove_file(self.blob_path(digest)).await)?.is_some())
    }

    async fn upload_start(&self, repo: &str) -> Result<String, StorageError> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.session_dir(&id);
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join("data"), b"").await?;
        tokio::fs::write(dir.join("repo"), repo.as_bytes()).await?;
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                SessionHash {
                    hasher: DigestHasher::sha256(),
                    offset: 0,
                },
            );
        Ok(id)
    }

    async fn upload_offset(&self, repo: &str, id: &str) -> Result<Option<u64>, StorageError> {
        if self.session_repo(id).await.as_deref() != Some(repo) {
            return Ok(None);
        }
        Ok(
            not_found_is_none(tokio::fs::metadata(self.session_dir(id).join("data")).await)?
                .map(|m| m.len()),
        )
    }

    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        mut body: ByteStream,
        lifetime: Duration,
    ) -> Result<u64, StorageError> {
        if self.session_repo(id).await.as_deref() != Some(repo) {
            return Err(StorageError::NotFound);
        }
        let lock = self.session_lock(id);
        let _guard = lock.lock().await;
        let path = self.session_dir(id).join("data");
        let Some(mut file) =
            not_found_is_none(tokio::fs::OpenOptions::new().append(true).open(&path).await)?
        else {
            // Finished, cancelled or expired while this request waited.
            return Err(StorageError::NotFound);
        };
        let Some(expires) = session_expiry(self.session_started(id).await?, lifetime) else {
            drop(file);
            self.remove_session(id).await?;
            return Err(StorageError::Expired);
        };
        let mut offset = file.metadata().await?.len();
        if let Some(start) = start
            && start != offset
        {
            return Err(StorageError::OutOfOrder(offset));
        }
        // Take the hash state out; it goes back only if it still matches the file.
        let mut state = self.take_session_hash(id).filter(|s| s.offset == offset);
        // Network chunks are small: gather them into large writes (each
        // tokio file write is a trip to the blocking pool).
        let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
        let mut written_back = offset;
        let result: Result<(), StorageError> = async {
            loop {
                let next = tokio::time::timeout_at(expires, body.next()).await;
                let Ok(next) = next else {
                    return Err(StorageError::Expired);
                };
                let Some(chunk) = next else {
                    break;
                };
                let chunk: Bytes = chunk.map_err(StorageError::Body)?;
                pending.extend_from_slice(&chunk);
                if pending.len() >= WRITE_BATCH {
                    write_batch(&mut file, &mut pending, &mut state, &mut offset).await?;
                    if offset - written_back >= WRITEBACK_STEP {
                        file.flush().await?;
                        start_writeback(&file, written_back);
                        written_back = offset;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(StorageError::Expired) = result {
            drop(file);
            self.remove_session(id).await?;
            return Err(StorageError::Expired);
        }
        // What arrived before a failure is kept, so the client can resume.
        let flushed = write_batch(&mut file, &mut pending, &mut state, &mut offset).await;
        let flushed = match flushed {
            Ok(()) => file.flush().await.map_err(StorageError::from),
            Err(e) => Err(e),
        };
        let result = result.and(flushed);
        if result.is_ok()
            && let Some(state) = state
        {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_string(), state);
        }
        result.map(|_| offset)
    }

    async fn upload_finish(
        &self,
        repo: &str,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, StorageError> {
        if self.session_repo(id).await.as_deref() != Some(repo) {
            return Err(StorageError::NotFound);
        }
        let lock = self.session_lock(id);
        let _guard = lock.lock().await;
        let dir = self.session_dir(id);
        let data = dir.join("data");
        let Some(size) = not_found_is_none(tokio::fs::metadata(&data).await)?.map(|m| m.len())
        else {
            return Err(StorageError::NotFound);
        };
        let actual = match self.usable_session_hash(id, size, digest) {
            Some(hasher) => hasher.finish(),
            None => {
                let (path, algorithm) = (data.clone(), digest.algorithm().clone());
                blocking(move || ferry_spec::digest::hash_file(&path, &algorithm))
                    .await?
                    .0
            }
        };
        if &actual != digest {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            self.forget_session(id);
            return Err(StorageError::DigestMismatch(actual));
        }
        self.install_blob(data, digest).await?;
        self.link(repo, digest).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        self.forget_session(id);
        Ok(size)
    }

    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<bool, StorageError> {
        if self.session_repo(id).await.as_deref() != Some(repo) {
            return Ok(false);
        }
        let lock = self.session_lock(id);
        let _guard = lock.lock().await;
        let removed = not_found_is_none(tokio::fs::remove_dir_all(self.session_dir(id)).await)?;
        self.forget_session(id);
        Ok(removed.is_some())
    }

    async fn expire_sessions(
        &self,
        idle: Duration,
        lifetime: Duration,
    ) -> Result<Vec<String>, StorageError> {
        let mut removed = Vec::new();
        let mut entries = tokio::fs::read_dir(self.root.join("uploads")).await?;
        let now = SystemTime::now();
        let older_than = |t: Option<SystemTime>, limit: Duration| {
            t.is_some_and(|t| now.duration_since(t).unwrap_or_default() > limit)
        };
        // `data` changes with every append; `repo` is written once, at the
        // start. A session being created has neither yet: judge it by its
        // directory, so it is not mistaken for an ancient one.
        let modified = |path: PathBuf| async move {
            tokio::fs::metadata(path)
                .await
                .and_then(|m| m.modified())
                .ok()
        };
        let stale = |dir: PathBuf| async move {
            let touched = match modified(dir.join("data")).await {
                Some(t) => Some(t),
                None => modified(dir.clone()).await,
            };
            let started = match modified(dir.join("repo")).await {
                Some(t) => Some(t),
                None => modified(dir).await,
            };
            older_than(touched, idle) || older_than(started, lifetime)
        };
        while let Some(entry) = entries.next_entry().await? {
            if stale(entry.path()).await {
                let id = entry.file_name().to_string_lossy().into_owned();
                let lock = self.session_lock(&id);
                // A request holds it, maybe reading a slow body: skip the
                // session rather than wait on its client.
                let Ok(_guard) = lock.try_lock() else {
                    continue;
                };
                // Re-check under the lock: an append may have just finished,
                // or the session may have been finished or cancelled.
                if !stale(entry.path()).await {
                    continue;
                }
                match tokio::fs::remove_dir_all(entry.path()).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                self.forget_session(&id);
                removed.push(id);
            }
        }
        Ok(removed)
    }

    async fn manifest_get(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StorageError> {
        let Some(media_type) = not_found_is_none(
            tokio::fs::read_to_string(self.manifest_meta_path(repo, digest)).await,
        )?
        else {
            return Ok(None);
        };
        let Some(bytes) = not_found_is_none(tokio::fs::read(self.blob_path(digest)).await)? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            bytes: Bytes::from(bytes),
            media_type,
            digest: digest.clone(),
        }))
    }

    async fn manifest_put(
        &self,
        repo: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> Result<(), StorageError> {
        let target = self.blob_path(&manifest.digest);
        if tokio::fs::metadata(&target).await.is_err() {
            self.write_atomic(target, manifest.bytes.clone()).await?;
        }
        self.write_atomic(
            self.manifest_meta_path(repo, &manifest.digest),
            Bytes::from(manifest.media_type.clone()),
        )
        .await?;
        if let Some(tag) = tag {
            self.write_atomic(
                self.tag_path(repo, tag),
                Bytes::from(manifest.digest.to_string()),
            )
            .await?;
        }
        Ok(())
    }

    async fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError> {
        let existed =
            not_found_is_none(tokio::fs::remove_file(self.manifest_meta_path(repo, digest)).await)?
                .is_some();
        if !existed {
            return Ok(false);
        }
        let wanted = digest.to_string();
        for tag in self.tags(repo).await?.unwrap_or_default() {
            let path = self.tag_path(repo, &tag);
            if let Ok(text) = tokio::fs::read_to_string(&path).await
                && text.trim() == wanted
            {
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
        Ok(true)
    }

    async fn manifests(&self, repo: &str) -> Result<Vec<Digest>, StorageError> {
        let dir = self.repo_dir(repo).join("_manifests");
        let manifests = blocking(move || list_digests(&dir)).await?;
        Ok(manifests.into_iter().map(|(digest, _)| digest).collect())
    }

    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StorageError> {
        let Some(text) =
            not_found_is_none(tokio::fs::read_to_string(self.tag_path(repo, tag)).await)?
        else {
            return Ok(None);
        };
        Ok(ferry_spec::digest::parse_digest(text.trim()).ok())
    }

    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool, StorageError> {
        Ok(not_found_is_none(tokio::fs::remove_file(self.tag_path(repo, tag)).await)?.is_some())
    }

    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>, StorageError> {
        let repo_dir = self.repo_dir(repo);
        if tokio::fs::metadata(&repo_dir).await.is_err() {
            return Ok(None);
        }
        let mut tags = Vec::new();
        if let Some(mut entries) =
            not_found_is_none(tokio::fs::read_dir(repo_dir.join("_tags")).await)?
        {
            while let Some(entry) = entries.next_entry().await? {
                tags.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        tags.sort();
        Ok(Some(tags))
    }

    async fn repositories(&self) -> Result<Vec<String>, StorageError> {
        let root = self.root.join("repos");
        let repos = blocking(move || {
            let mut repos = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                for entry in read_dir_or_empty(&dir)? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('_') {
                        // A repository with blobs but no manifest is one too.
                        if (name == "_manifests" || name == "_blobs")
                            && let Ok(rel) = dir.strip_prefix(&root)
                        {
                            let repo = rel.to_string_lossy().into_owned();
                            if !repos.contains(&repo) {
                                repos.push(repo);
                            }
                        }
                    } else if entry.file_type()?.is_dir() {
                        stack.push(entry.path());
                    }
                }
            }
            repos.sort();
            Ok(repos)
        })
        .await?;
        Ok(repos)
    }

    async fn referrer_add(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &ReferrerDescriptor,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(referrer).map_err(io::Error::other)?;
        let path = self
            .referrers_dir(repo, subject)
            .join(referrer_file(&referrer.digest));
        Ok(self.write_atomic(path, Bytes::from(bytes)).await?)
    }

    async fn referrer_remove(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError> {
        let path = self
            .referrers_dir(repo, subject)
            .join(referrer_file(referrer));
        not_found_is_none(tokio::fs::remove_file(path).await)?;
        Ok(())
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Vec<ReferrerDescriptor>, StorageError> {
        let mut out = Vec::new();
        let Some(mut entries) =
            not_found_is_none(tokio::fs::read_dir(self.referrers_dir(repo, subject)).await)?
        else {
            return Ok(out);
        };
        while let Some(entry) = entries.next_entry().await? {
            if let Ok(bytes) = tokio::fs::read(entry.path()).await
                && let Ok(descriptor) = serde_json::from_slice::<ReferrerDescriptor>(&bytes)
            {
                out.push(descriptor);
            }
        }
        out.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
        Ok(out)
    }
}

/// `<alg>-<hex>.json`: the record of one referrer.
fn referrer_file(referrer: &Digest) -> String {
    format!(
        "{}-{}.json",
        referrer.algorithm().as_ref(),
        referrer.digest()
    )
}
