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
//! path outside these trees.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{BlobReader, ByteStream, ReferrerDescriptor, Storage, StorageError, StoredManifest};
use crate::names::{Algorithm, BlobDigest, Hasher};

/// Incremental hash state of an upload held in memory so finishing a large
/// upload does not re-read it; after a restart the file is re-hashed.
struct SessionHash {
    hasher: Hasher,
    offset: u64,
}

/// Blobs and manifests in a directory tree.
pub struct FsStorage {
    root: PathBuf,
    sessions: Mutex<HashMap<String, SessionHash>>,
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    idle_timeout: Duration,
}

impl FsStorage {
    /// Opens (creating) a storage tree at `root`.
    pub fn open(root: impl Into<PathBuf>, idle_timeout: Duration) -> io::Result<FsStorage> {
        let root = root.into();
        for dir in ["blobs/sha256", "blobs/sha512", "repos", "uploads", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        Ok(FsStorage {
            root,
            sessions: Mutex::new(HashMap::new()),
            session_locks: Mutex::new(HashMap::new()),
            idle_timeout,
        })
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob content lives.
    pub fn blob_path(&self, digest: &BlobDigest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// A repository's directory.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repos").join(repo)
    }

    fn link_path(&self, repo: &str, digest: &BlobDigest) -> PathBuf {
        self.repo_dir(repo)
            .join("_blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn manifest_meta_path(&self, repo: &str, digest: &BlobDigest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    fn referrers_dir(&self, repo: &str, subject: &BlobDigest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.algorithm().name())
            .join(subject.hex())
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.session_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn forget_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.session_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Writes `bytes` to `path` via tmp/: fsync, rename.
    async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let temp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut file = tokio::fs::File::create(&temp).await?;
        let result = async {
            file.write_all(bytes).await?;
            file.sync_all().await?;
            tokio::fs::rename(&temp, path).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        result
    }

    /// Moves a verified file into the blob store (keeping an existing copy).
    async fn install_blob(&self, temp: &Path, digest: &BlobDigest) -> io::Result<()> {
        let target = self.blob_path(digest);
        if tokio::fs::metadata(&target).await.is_ok() {
            tokio::fs::remove_file(temp).await?;
            return Ok(());
        }
        tokio::fs::File::open(temp).await?.sync_all().await?;
        tokio::fs::rename(temp, &target).await
    }

    async fn link(&self, repo: &str, digest: &BlobDigest) -> io::Result<()> {
        let path = self.link_path(repo, digest);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, b"").await
    }

    /// Removes upload sessions untouched for longer than `max_age`.
    pub async fn expire_sessions(&self, max_age: Duration) -> io::Result<usize> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(self.root.join("uploads")).await?;
        let now = SystemTime::now();
        while let Some(entry) = entries.next_entry().await? {
            // A session being created has no `data` yet: judge it by its
            // directory, so it is not mistaken for an ancient one.
            let last_touched = |path: PathBuf| async move {
                match tokio::fs::metadata(path.join("data")).await {
                    Ok(m) => m.modified().ok(),
                    Err(_) => tokio::fs::metadata(&path)
                        .await
                        .and_then(|m| m.modified())
                        .ok(),
                }
            };
            let stale = |t: Option<SystemTime>| {
                t.is_some_and(|t| now.duration_since(t).unwrap_or_default() > max_age)
            };
            if stale(last_touched(entry.path()).await) {
                let id = entry.file_name().to_string_lossy().into_owned();
                let lock = self.session_lock(&id);
                let _guard = lock.lock().await;
                // Re-check under the lock: an append may have just finished,
                // or the session may have been finished or cancelled.
                if !stale(last_touched(entry.path()).await) {
                    continue;
                }
                match tokio::fs::remove_dir_all(entry.path()).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                self.forget_session(&id);
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn session_repo(&self, id: &str) -> Option<String> {
        if !valid_session_id(id) {
            return None;
        }
        tokio::fs::read_to_string(self.session_dir(id).join("repo"))
            .await
            .ok()
    }

    async fn hash_file(path: PathBuf, algorithm: Algorithm) -> io::Result<BlobDigest> {
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = std::fs::File::open(path)?;
            let mut hasher = Hasher::new(algorithm);
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
            Ok(hasher.finish())
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Bytes gathered before a write to an upload's data file.
const WRITE_BATCH: usize = 1 << 20;

/// Bytes between two requests to start writing an upload back to disk.
const WRITEBACK_STEP: u64 = 64 << 20;

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

#[async_trait::async_trait]
impl Storage for FsStorage {
    async fn blob_size(
        &self,
        repo: &str,
        digest: &BlobDigest,
    ) -> Result<Option<u64>, StorageError> {
        if !self.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        Ok(not_found_is_none(tokio::fs::metadata(self.blob_path(digest)).await)?.map(|m| m.len()))
    }

    async fn blob_open(
        &self,
        repo: &str,
        digest: &BlobDigest,
    ) -> Result<Option<BlobReader>, StorageError> {
        if !self.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        let Some(file) = not_found_is_none(tokio::fs::File::open(self.blob_path(digest)).await)?
        else {
            return Ok(None);
        };
        let size = file.metadata().await?.len();
        Ok(Some(BlobReader { file, size }))
    }

    async fn blob_known(&self, digest: &BlobDigest) -> Result<bool, StorageError> {
        Ok(tokio::fs::metadata(self.blob_path(digest)).await.is_ok())
    }

    async fn blob_linked(&self, repo: &str, digest: &BlobDigest) -> Result<bool, StorageError> {
        Ok(tokio::fs::metadata(self.link_path(repo, digest))
            .await
            .is_ok()
            || tokio::fs::metadata(self.manifest_meta_path(repo, digest))
                .await
                .is_ok())
    }

    async fn blob_link(&self, repo: &str, digest: &BlobDigest) -> Result<(), StorageError> {
        if !self.blob_known(digest).await? {
            return Err(StorageError::NotFound);
        }
        Ok(self.link(repo, digest).await?)
    }

    async fn blob_unlink(&self, repo: &str, digest: &BlobDigest) -> Result<bool, StorageError> {
        Ok(
            not_found_is_none(tokio::fs::remove_file(self.link_path(repo, digest)).await)?
                .is_some(),
        )
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
                    hasher: Hasher::new(Algorithm::Sha256),
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
    ) -> Result<u64, StorageError> {
        if self.session_repo(id).await.as_deref() != Some(repo) {
            return Err(StorageError::NotFound);
        }
        let lock = self.session_lock(id);
        let _guard = lock.lock().await;
        let path = self.session_dir(id).join("data");
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await?;
        let mut offset = file.metadata().await?.len();
        if let Some(start) = start
            && start != offset
        {
            return Err(StorageError::OutOfOrder(offset));
        }
        // Take the hash state out; it goes back only if it still matches the file.
        let mut state = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .filter(|s| s.offset == offset);
        // Network chunks are small: gather them into large writes (each
        // tokio file write is a trip to the blocking pool).
        let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
        let mut written_back = offset;
        let result: Result<(), StorageError> = async {
            loop {
                let next = tokio::time::timeout(self.idle_timeout, body.next())
                    .await
                    .map_err(|_| {
                        StorageError::ClientTimeout(format!("no data for {:?}", self.idle_timeout))
                    })?;
                let Some(chunk) = next else { break };
                let chunk: Bytes = chunk.map_err(|e| StorageError::ClientTimeout(e.to_string()))?;
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
        digest: &BlobDigest,
    ) -> Result<u64, StorageError> {
        if self.session_repo(id).await.as_deref() != Some(repo) {
            return Err(StorageError::NotFound);
        }
        let lock = self.session_lock(id);
        let _guard = lock.lock().await;
        let dir = self.session_dir(id);
        let data = dir.join("data");
        let size = tokio::fs::metadata(&data).await?.len();
        let state = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .filter(|s| s.offset == size && digest.algorithm() == Algorithm::Sha256);
        let actual = match state {
            Some(state) => state.hasher.finish(),
            None => Self::hash_file(data.clone(), digest.algorithm()).await?,
        };
        if &actual != digest {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            self.forget_session(id);
            return Err(StorageError::DigestMismatch(actual.to_string()));
        }
        self.install_blob(&data, digest).await?;
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
        tokio::fs::remove_dir_all(self.session_dir(id)).await?;
        self.forget_session(id);
        Ok(true)
    }

    async fn manifest_get(
        &self,
        repo: &str,
        digest: &BlobDigest,
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

    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<BlobDigest>, StorageError> {
        let Some(text) =
            not_found_is_none(tokio::fs::read_to_string(self.tag_path(repo, tag)).await)?
        else {
            return Ok(None);
        };
        Ok(BlobDigest::parse(text.trim()).ok())
    }

    async fn manifest_put(
        &self,
        repo: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> Result<(), StorageError> {
        let target = self.blob_path(&manifest.digest);
        if tokio::fs::metadata(&target).await.is_err() {
            self.write_atomic(&target, &manifest.bytes).await?;
        }
        self.write_atomic(
            &self.manifest_meta_path(repo, &manifest.digest),
            manifest.media_type.as_bytes(),
        )
        .await?;
        if let Some(tag) = tag {
            self.write_atomic(
                &self.tag_path(repo, tag),
                manifest.digest.to_string().as_bytes(),
            )
            .await?;
        }
        Ok(())
    }

    async fn manifest_delete(&self, repo: &str, digest: &BlobDigest) -> Result<bool, StorageError> {
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
        tokio::task::spawn_blocking(move || {
            let mut repos = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('_') {
                        if (name == "_manifests" || name == "_blobs")
                            && let Ok(rel) = dir.strip_prefix(&root)
                        {
                            let repo = rel.to_string_lossy().into_owned();
                            if !repos.contains(&repo) {
                                repos.push(repo);
                            }
                        }
                    } else if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(entry.path());
                    }
                }
            }
            repos.sort();
            repos
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))
    }

    async fn referrer_add(
        &self,
        repo: &str,
        subject: &BlobDigest,
        referrer: &ReferrerDescriptor,
    ) -> Result<(), StorageError> {
        let file = referrer.digest.replace(':', "-") + ".json";
        let bytes = serde_json::to_vec(referrer).map_err(io::Error::other)?;
        Ok(self
            .write_atomic(&self.referrers_dir(repo, subject).join(file), &bytes)
            .await?)
    }

    async fn referrer_remove(
        &self,
        repo: &str,
        subject: &BlobDigest,
        referrer: &str,
    ) -> Result<(), StorageError> {
        let file = referrer.replace(':', "-") + ".json";
        not_found_is_none(
            tokio::fs::remove_file(self.referrers_dir(repo, subject).join(file)).await,
        )?;
        Ok(())
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &BlobDigest,
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
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}
