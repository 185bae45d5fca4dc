//! The in-memory backend: the reference implementation of [`Storage`],
//! used by the tests to run the routes and gc against a second backend, and
//! handy for embedding or fuzzing the router without a disk.
//!
//! Everything lives in one map behind a mutex (never held across an
//! `.await`), so each operation is atomic. Blob content is kept in memory by
//! definition: this backend is not meant for large registries.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::Digest;
use futures_util::StreamExt;

use super::{
    BlobEntry, BlobLink, BlobReader, BlobSource, ByteStream, ReferrerDescriptor, Storage,
    StorageError, StoredManifest, session_expiry,
};

/// A registry held in memory.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<Digest, StoredBlob>,
    repos: BTreeMap<String, Repository>,
    sessions: HashMap<String, Session>,
}

struct StoredBlob {
    bytes: Bytes,
    modified: SystemTime,
}

#[derive(Default)]
struct Repository {
    /// Blob → when it was linked.
    links: HashMap<Digest, SystemTime>,
    /// Manifest → its media type.
    manifests: HashMap<Digest, String>,
    tags: BTreeMap<String, Digest>,
    /// Subject → referrer digest (as text, for the sort order) → descriptor.
    referrers: HashMap<Digest, BTreeMap<String, ReferrerDescriptor>>,
}

struct Session {
    repo: String,
    data: BytesMut,
    created: SystemTime,
    touched: SystemTime,
    /// Held for a whole append (or finish, or expiry), so two requests on
    /// one session never interleave their bytes.
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl MemoryStorage {
    /// An empty registry.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Upload sessions in progress.
    pub fn session_count(&self) -> usize {
        self.state().sessions.len()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock of a session of `repo`, or `None` for an unknown session.
    fn session_lock(&self, repo: &str, id: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let state = self.state();
        let session = state.sessions.get(id).filter(|s| s.repo == repo)?;
        Some(session.busy.clone())
    }
}

impl State {
    fn session(&mut self, repo: &str, id: &str) -> Result<&mut Session, StorageError> {
        self.sessions
            .get_mut(id)
            .filter(|s| s.repo == repo)
            .ok_or(StorageError::NotFound)
    }

    fn repo(&mut self, repo: &str) -> &mut Repository {
        self.repos.entry(repo.to_string()).or_default()
    }
}

/// A blob's bytes, shared with the store (no copy).
struct BytesSource(Bytes);

#[async_trait::async_trait]
impl BlobSource for BytesSource {
    async fn read(self: Box<Self>, start: u64, len: u64) -> io::Result<ByteStream> {
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + len).ok())
            .filter(|(_, end)| *end <= self.0.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range outside the blob"))?;
        let slice = self.0.slice(range.0..range.1);
        Ok(Box::pin(futures_util::stream::iter([Ok(slice)])))
    }
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    async fn blob_open(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<BlobReader>, StorageError> {
        if !self.blob_linked(repo, digest).await? {
            return Ok(None);
        }
        let state = self.state();
        Ok(state.blobs.get(digest).map(|blob| {
            BlobReader::new(
                blob.bytes.len() as u64,
                Box::new(BytesSource(blob.bytes.clone())),
            )
        }))
    }

    async fn blob_known(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self.state().blobs.contains_key(digest))
    }

    async fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self
            .state()
            .repos
            .get(repo)
            .is_some_and(|r| r.links.contains_key(digest) || r.manifests.contains_key(digest)))
    }

    async fn blob_link(&self, repo: &str, digest: &Digest) -> Result<(), StorageError> {
        let mut state = self.state();
        if !state.blobs.contains_key(digest) {
            return Err(StorageError::NotFound);
        }
        state
            .repo(repo)
            .links
            .insert(digest.clone(), SystemTime::now());
        Ok(())
    }

    async fn blob_unlink(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self
            .state()
            .repos
            .get_mut(repo)
            .is_some_and(|r| r.links.remove(digest).is_some()))
    }

    async fn blob_links(&self, repo: &str) -> Result<Vec<BlobLink>, StorageError> {
        let state = self.state();
        let Some(repository) = state.repos.get(repo) else {
            return Ok(Vec::new());
        };
        Ok(repository
            .links
            .iter()
            .map(|(digest, modified)| BlobLink {
                digest: digest.clone(),
                modified: *modified,
            })
            .collect())
    }

    async fn blobs(&self) -> Result<Vec<BlobEntry>, StorageError> {
        Ok(self
            .state()
            .blobs
            .iter()
            .map(|(digest, blob)| BlobEntry {
                digest: digest.clone(),
                size: blob.bytes.len() as u64,
                modified: blob.modified,
            })
            .collect())
    }

    async fn blob_delete(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self.state().blobs.remove(digest).is_some())
    }

    async fn upload_start(&self, repo: &str) -> Result<String, StorageError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.state().sessions.insert(
            id.clone(),
            Session {
                repo: repo.to_string(),
                data: BytesMut::new(),
                created: SystemTime::now(),
                touched: SystemTime::now(),
                busy: Arc::default(),
            },
        );
        Ok(id)
    }

    async fn upload_offset(&self, repo: &str, id: &str) -> Result<Option<u64>, StorageError> {
        let mut state = self.state();
        Ok(state.session(repo, id).ok().map(|s| s.data.len() as u64))
    }

    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        mut body: ByteStream,
        lifetime: Duration,
    ) -> Result<u64, StorageError> {
        let busy = self.session_lock(repo, id).ok_or(StorageError::NotFound)?;
        let _guard = busy.lock().await;
        let (mut offset, created) = {
            let mut state = self.state();
            let session = state.session(repo, id)?;
            (session.data.len() as u64, session.created)
        };
        let expired = || {
            self.state().sessions.remove(id);
            Err(StorageError::Expired)
        };
        let Some(expires) = session_expiry(created, lifetime) else {
            return expired();
        };
        if let Some(start) = start
            && start != offset
        {
            return Err(StorageError::OutOfOrder(offset));
        }
        // Each chunk is kept as it arrives: a failed body leaves what came
        // before, so the client can resume.
        loop {
            let Ok(next) = tokio::time::timeout_at(expires, body.next()).await else {
                return expired();
            };
            let Some(chunk) = next else {
                break;
            };
            let chunk = chunk.map_err(StorageError::Body)?;
            let mut state = self.state();
            let session = state.session(repo, id)?;
            session.data.extend_from_slice(&chunk);
            session.touched = SystemTime::now();
            offset = session.data.len() as u64;
        }
        Ok(offset)
    }

    async fn upload_finish(
        &self,
        repo: &str,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, StorageError> {
        let busy = self.session_lock(repo, id).ok_or(StorageError::NotFound)?;
        let _guard = busy.lock().await;
        let session = {
            let mut state = self.state();
            state.session(repo, id)?;
            state.sessions.remove(id).ok_or(StorageError::NotFound)?
        };
        // Hashed outside the lock; the session is already gone, so a
        // mismatch leaves nothing behind.
        let bytes = session.data.freeze();
        let mut hasher = DigestHasher::for_digest(digest).map_err(io::Error::other)?;
        hasher.update(&bytes);
        let actual = hasher.finish();
        if &actual != digest {
            return Err(StorageError::DigestMismatch(actual));
        }
        let size = bytes.len() as u64;
        let now = SystemTime::now();
        let mut state = self.state();
        state.blobs.entry(digest.clone()).or_insert(StoredBlob {
            bytes,
            modified: now,
        });
        state.repo(repo).links.insert(digest.clone(), now);
        Ok(size)
    }

    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<bool, StorageError> {
        let Some(busy) = self.session_lock(repo, id) else {
            return Ok(false);
        };
        let _guard = busy.lock().await;
        let mut state = self.state();
        Ok(state.session(repo, id).is_ok() && state.sessions.remove(id).is_some())
    }

    async fn expire_sessions(
        &self,
        idle: Duration,
        lifetime: Duration,
    ) -> Result<Vec<String>, StorageError> {
        let now = SystemTime::now();
        let age = |since: SystemTime| now.duration_since(since).unwrap_or_default();
        let stale =
            |session: &Session| age(session.touched) > idle || age(session.created) > lifetime;
        let candidates: Vec<(String, Arc<tokio::sync::Mutex<()>>)> = self
            .state()
            .sessions
            .iter()
            .filter(|(_, s)| stale(s))
            .map(|(id, s)| (id.clone(), s.busy.clone()))
            .collect();
        let mut removed = Vec::new();
        for (id, busy) in candidates {
            // A request holds it, maybe reading a slow body: skip the
            // session rather than wait on its client.
            let Ok(_guard) = busy.try_lock() else {
                continue;
            };
            // Re-checked under the session lock: an append may have just
            // touched it, or it may be finished or cancelled.
            let mut state = self.state();
            if state.sessions.get(&id).is_some_and(stale) {
                state.sessions.remove(&id);
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
        let state = self.state();
        let Some(media_type) = state.repos.get(repo).and_then(|r| r.manifests.get(digest)) else {
            return Ok(None);
        };
        Ok(state.blobs.get(digest).map(|blob| StoredManifest {
            bytes: blob.bytes.clone(),
            media_type: media_type.clone(),
            digest: digest.clone(),
        }))
    }

    async fn manifest_put(
        &self,
        repo: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut state = self.state();
        state
            .blobs
            .entry(manifest.digest.clone())
            .or_insert_with(|| StoredBlob {
                bytes: manifest.bytes.clone(),
                modified: SystemTime::now(),
            });
        let repository = state.repo(repo);
        repository
            .manifests
            .insert(manifest.digest.clone(), manifest.media_type.clone());
        if let Some(tag) = tag {
            repository
                .tags
                .insert(tag.to_string(), manifest.digest.clone());
        }
        Ok(())
    }

    async fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError> {
        let mut state = self.state();
        let Some(repository) = state.repos.get_mut(repo) else {
            return Ok(false);
        };
        if repository.manifests.remove(digest).is_none() {
            return Ok(false);
        }
        repository.tags.retain(|_, target| target != digest);
        Ok(true)
    }

    async fn manifests(&self, repo: &str) -> Result<Vec<Digest>, StorageError> {
        Ok(self
            .state()
            .repos
            .get(repo)
            .map(|r| r.manifests.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StorageError> {
        Ok(self
            .state()
            .repos
            .get(repo)
            .and_then(|r| r.tags.get(tag).cloned()))
    }

    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool, StorageError> {
        Ok(self
            .state()
            .repos
            .get_mut(repo)
            .is_some_and(|r| r.tags.remove(tag).is_some()))
    }

    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>, StorageError> {
        Ok(self
            .state()
            .repos
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect()))
    }

    async fn repositories(&self) -> Result<Vec<String>, StorageError> {
        Ok(self.state().repos.keys().cloned().collect())
    }

    async fn referrer_add(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &ReferrerDescriptor,
    ) -> Result<(), StorageError> {
        self.state()
            .repo(repo)
            .referrers
            .entry(subject.clone())
            .or_default()
            .insert(referrer.digest.to_string(), referrer.clone());
        Ok(())
    }

    async fn referrer_remove(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError> {
        if let Some(referrers) = self
            .state()
            .repos
            .get_mut(repo)
            .and_then(|r| r.referrers.get_mut(subject))
        {
            referrers.remove(referrer.as_ref());
        }
        Ok(())
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Vec<ReferrerDescriptor>, StorageError> {
        Ok(self
            .state()
            .repos
            .get(repo)
            .and_then(|r| r.referrers.get(subject))
            .map(|referrers| referrers.values().cloned().collect())
            .unwrap_or_default())
    }
}
