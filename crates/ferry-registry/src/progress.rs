//! Transfer progress, reported to whoever draws it (the binary).

use ferry_spec::oci::Digest;

/// Called as blobs move; implementations must be cheap and thread-safe.
pub trait TransferProgress: Send + Sync {
    /// A blob starts moving.
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// Bytes of a blob moved.
    fn advanced(&self, _digest: &Digest, _bytes: u64) {}
    /// A blob is done.
    fn blob_done(&self, _digest: &Digest) {}
    /// A blob did not need to move (already there, or mounted).
    fn skipped(&self, _digest: &Digest, _size: u64) {}
    /// Blob downloads now hold this many connections.
    fn connections(&self, _in_use: usize) {}
}

/// Reports nothing.
pub struct NoProgress;
impl TransferProgress for NoProgress {}
