//! What the HTTP layer needs from storage. The filesystem backend
//! ([`fs::FsStorage`]) implements it; an object-store backend can too,
//! without touching the routes.

pub mod fs;

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::names::BlobDigest;

/// A request body as a stream of chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An open blob for reading.
pub struct BlobReader {
    /// The blob's bytes from the requested offset.
    pub file: tokio::fs::File,
    /// The blob's total size.
    pub size: u64,
}

/// A manifest as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The exact bytes pushed.
    pub bytes: Bytes,
    /// The media type it was pushed with.
    pub media_type: String,
    /// Its digest.
    pub digest: BlobDigest,
}

/// A referrer descriptor kept per subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerDescriptor {
    /// Manifest media type.
    pub media_type: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest size.
    pub size: u64,
    /// Its artifact type (manifest `artifactType`, else config media type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifest's annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
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
    DigestMismatch(String),
    /// Content is larger than allowed.
    #[error("too large")]
    TooLarge,
    /// The client stopped sending.
    #[error("client stopped sending: {0}")]
    ClientTimeout(String),
    /// A backend failure.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Storage for the registry. Blobs are content-addressed once for all
/// repositories; each repository links the blobs and manifests it holds.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The size of a blob linked into `repo`.
    async fn blob_size(&self, repo: &str, digest: &BlobDigest)
    -> Result<Option<u64>, StorageError>;
    /// Opens a blob linked into `repo`.
    async fn blob_open(
        &self,
        repo: &str,
        digest: &BlobDigest,
    ) -> Result<Option<BlobReader>, StorageError>;
    /// True when the blob content exists anywhere in the registry.
    async fn blob_known(&self, digest: &BlobDigest) -> Result<bool, StorageError>;
    /// True when `repo` links the blob.
    async fn blob_linked(&self, repo: &str, digest: &BlobDigest) -> Result<bool, StorageError>;
    /// Links existing blob content into `repo` (cross-repository mount).
    async fn blob_link(&self, repo: &str, digest: &BlobDigest) -> Result<(), StorageError>;
    /// Unlinks a blob from `repo`; false when it was not linked.
    async fn blob_unlink(&self, repo: &str, digest: &BlobDigest) -> Result<bool, StorageError>;

    /// Starts an upload session; returns its id.
    async fn upload_start(&self, repo: &str) -> Result<String, StorageError>;
    /// Bytes received so far, or `None` for an unknown session.
    async fn upload_offset(&self, repo: &str, id: &str) -> Result<Option<u64>, StorageError>;
    /// Appends a body; `start` must equal the current offset when given.
    /// Returns the new offset.
    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, StorageError>;
    /// Verifies the session's content against `digest` and makes it a blob
    /// linked into `repo`. Returns the size.
    async fn upload_finish(
        &self,
        repo: &str,
        id: &str,
        digest: &BlobDigest,
    ) -> Result<u64, StorageError>;
    /// Drops a session; false when unknown.
    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<bool, StorageError>;

    /// Reads a manifest by digest from `repo`.
    async fn manifest_get(
        &self,
        repo: &str,
        digest: &BlobDigest,
    ) -> Result<Option<StoredManifest>, StorageError>;
    /// The digest a tag points to.
    async fn tag_get(&self, repo: &str, tag: &str) -> Result<Option<BlobDigest>, StorageError>;
    /// Stores manifest bytes in `repo`, and tags it when `tag` is given.
    async fn manifest_put(
        &self,
        repo: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> Result<(), StorageError>;
    /// Removes a manifest and every tag pointing to it; false when unknown.
    async fn manifest_delete(&self, repo: &str, digest: &BlobDigest) -> Result<bool, StorageError>;
    /// Removes a tag; false when unknown.
    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool, StorageError>;
    /// Every tag of `repo`, sorted; `None` when the repository is unknown.
    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>, StorageError>;
    /// Every repository, sorted.
    async fn repositories(&self) -> Result<Vec<String>, StorageError>;

    /// Records that `referrer` has `subject` as its subject.
    async fn referrer_add(
        &self,
        repo: &str,
        subject: &BlobDigest,
        referrer: &ReferrerDescriptor,
    ) -> Result<(), StorageError>;
    /// Forgets a referrer.
    async fn referrer_remove(
        &self,
        repo: &str,
        subject: &BlobDigest,
        referrer: &str,
    ) -> Result<(), StorageError>;
    /// Referrers of `subject`, sorted by digest.
    async fn referrers(
        &self,
        repo: &str,
        subject: &BlobDigest,
    ) -> Result<Vec<ReferrerDescriptor>, StorageError>;
}
