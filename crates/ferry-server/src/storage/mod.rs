//! What the HTTP layer and gc need from storage, and nothing more: bytes go
//! in and out as streams, things are named by repository, digest and tag,
//! and listings carry the age gc's grace period needs. No file or path
//! crosses this boundary.
//!
//! [`fs::FsStorage`] is the backend `ferry serve` uses; [`memory::MemoryStorage`]
//! is the reference backend the tests run the routes and gc against too.

pub mod fs;
pub mod memory;

use std::io;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry_spec::oci::Digest;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

/// Bytes flowing in (a request body) or out (a blob).
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Where a backend reads a blob's bytes from.
#[async_trait::async_trait]
pub trait BlobSource: Send {
    /// `len` bytes from `start` (both within the blob).
    async fn read(self: Box<Self>, start: u64, len: u64) -> io::Result<ByteStream>;
}

/// A blob opened for reading: its size is known before any byte is sent,
/// and its bytes come from the same opened content (a concurrent delete
/// cannot change the size under a response).
pub struct BlobReader {
    size: u64,
    source: Box<dyn BlobSource>,
}

impl BlobReader {
    /// A blob of `size` bytes read from `source`.
    pub fn new(size: u64, source: Box<dyn BlobSource>) -> BlobReader {
        BlobReader { size, source }
    }

    /// The blob's total size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Streams `len` bytes from `start`; a range beyond the blob is refused.
    pub async fn read(self, start: u64, len: u64) -> io::Result<ByteStream> {
        if start.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {start}+{len} is outside a {}-byte blob", self.size),
            ));
        }
        self.source.read(start, len).await
    }
}

/// When a session started at `started` reaches `lifetime`, on the tokio
/// clock; `None` when it already has.
fn session_expiry(started: SystemTime, lifetime: Duration) -> Option<tokio::time::Instant> {
    let age = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    let left = lifetime.checked_sub(age).filter(|left| !left.is_zero())?;
    // Capped so that a huge lifetime cannot overflow the clock.
    Some(tokio::time::Instant::now() + left.min(Duration::from_secs(1 << 32)))
}

/// A manifest as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The exact bytes pushed.
    pub bytes: Bytes,
    /// The media type it was pushed with.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
}

/// A referrer descriptor kept per subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerDescriptor {
    /// Manifest media type.
    pub media_type: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Manifest size.
    pub size: u64,
    /// Its artifact type (manifest `artifactType`, else config media type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifest's annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A repository's link to a blob, as gc sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLink {
    /// The blob.
    pub digest: Digest,
    /// When the link was last made (a mount or upload renews it).
    pub modified: SystemTime,
}

/// Blob content, as gc sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// The content's digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// When it was written.
    pub modified: SystemTime,
}

/// Errors a backend reports.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The thing does not exist.
    #[error("not found")]
    NotFound,
    /// An append that does not start at the session's current offset.
    #[error("range not satisfiable: upload is at offset {0}")]
    OutOfOrder(u64),
    /// Content does not hash to the given digest.
    #[error("digest mismatch: content is {0}")]
    DigestMismatch(Digest),
    /// The request body failed (the client stalled or went away); what
    /// arrived before is kept.
    #[error("reading the request body: {0}")]
    Body(io::Error),
    /// The upload session outlived its lifetime during an append; it is
    /// removed.
    #[error("the upload session expired")]
    Expired,
    /// A backend failure.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Storage for the registry. Blobs are content-addressed once for all
/// repositories; each repository links the blobs and manifests it holds.
/// Names, tags and digests are validated before they reach a backend.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Opens a blob (or manifest) linked into `repo`.
    async fn blob_open(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<BlobReader>, StorageError>;
    /// True when the blob content exists anywhere in the registry.
    async fn blob_known(&self, digest: &Digest) -> Result<bool, StorageError>;
    /// True when `repo` links the blob, or holds it as a manifest.
    async fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError>;
    /// Links existing blob content into `repo` (cross-repository mount);
    /// [`StorageError::NotFound`] when the content is gone.
    async fn blob_link(&self, repo: &str, digest: &Digest) -> Result<(), StorageError>;
    /// Unlinks a blob from `repo`; false when it was not linked.
    async fn blob_unlink(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError>;
    /// The blobs `repo` links, with when each link was made.
    async fn blob_links(&self, repo: &str) -> Result<Vec<BlobLink>, StorageError>;
    /// All blob content (manifests included), with sizes and ages.
    async fn blobs(&self) -> Result<Vec<BlobEntry>, StorageError>;
    /// Deletes blob content (whatever still links it); false when unknown.
    async fn blob_delete(&self, digest: &Digest) -> Result<bool, StorageError>;

    /// Starts an upload session; returns its id.
    async fn upload_start(&self, repo: &str) -> Result<String, StorageError>;
    /// Bytes received so far, or `None` for an unknown session.
    async fn upload_offset(&self, repo: &str, id: &str) -> Result<Option<u64>, StorageError>;
    /// Appends a body; `start` must equal the current offset when given.
    /// Returns the new offset. When the body fails, what arrived before is
    /// kept so the client can resume. A session takes bytes only until it
    /// is `lifetime` old: then the append stops, the session is removed and
    /// the append fails with [`StorageError::Expired`] (a client trickling
    /// bytes cannot keep a session past its lifetime).
    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
        lifetime: Duration,
    ) -> Result<u64, StorageError>;
    /// Verifies the session's content against `digest` and makes it a blob
    /// linked into `repo`. Returns the size. A mismatch drops the session
    /// and stores nothing.
    async fn upload_finish(
        &self,
        repo: &str,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, StorageError>;
    /// Drops a session; false when unknown.
    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<bool, StorageError>;
    /// Drops sessions untouched for longer than `idle` or started longer
    /// than `lifetime` ago; returns the ids dropped. A session a request is
    /// working on is skipped, never waited for (a client paces its body):
    /// an append enforces the lifetime itself, and the next sweep looks
    /// again.
    async fn expire_sessions(
        &self,
        idle: Duration,
        lifetime: Duration,
    ) -> Result<Vec<String>, StorageError>;

    /// Reads a manifest by digest from `repo`.
    async fn manifest_get(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StorageError>;
    /// Stores manifest bytes in `repo`, and tags it when `tag` is given.
    async fn manifest_put(
        &self,
        repo: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> Result<(), StorageError>;
    /// Removes a manifest and every tag pointing to it; false when unknown.
    async fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool, StorageError>;
    /// The manifests `repo` holds, in no particular order.
    async fn manifests(&self, repo: &str) -> Result<Vec<Digest>, StorageError>;
    /// The digest a tag points to.
    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StorageError>;
    /// Removes a tag; false when unknown.
    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool, StorageError>;
    /// Every tag of `repo`, sorted; `None` when the repository is unknown.
    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>, StorageError>;
    /// Every repository holding blobs or manifests, sorted.
    async fn repositories(&self) -> Result<Vec<String>, StorageError>;

    /// Records that `referrer` has `subject` as its subject.
    async fn referrer_add(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &ReferrerDescriptor,
    ) -> Result<(), StorageError>;
    /// Forgets a referrer.
    async fn referrer_remove(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError>;
    /// Referrers of `subject`, sorted by digest.
    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Vec<ReferrerDescriptor>, StorageError>;
}

#[cfg(test)]
mod contract;
