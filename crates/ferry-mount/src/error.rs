//! The mount crate's error type: every variant names what it is about.

use std::io;
use std::path::PathBuf;

use ferry_store::StoreError;

/// Errors from mounting, unmounting and the layer cache.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The store refused or failed (resolution, blobs, unsafe tar entries).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What ferry was doing ("creating", "linking", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A mount(2) or umount(2) call failed.
    #[error("{what} at {target}: {source}")]
    Syscall {
        /// "mounting overlay", "bind-mounting subpath", ...
        what: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// `--subpath` names nothing in the assembled volume.
    #[error("subpath {subpath:?} does not exist in {artifacts}")]
    SubpathMissing {
        /// The subpath as given.
        subpath: String,
        /// The artifacts searched.
        artifacts: String,
    },
    /// `--subpath` is malformed or unsafe.
    #[error("invalid subpath {subpath:?}: {reason}")]
    InvalidSubpath {
        /// The subpath as given.
        subpath: String,
        /// Why it is refused.
        reason: String,
    },
    /// The target cannot take this volume.
    #[error("invalid target {target}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// umount(2) said EBUSY.
    #[error(
        "cannot unmount {target}: it is busy (a process has its working directory or an open file inside)"
    )]
    Busy {
        /// The mount point.
        target: PathBuf,
    },
    /// What is at a volume's target now is not what ferry put there (the
    /// volume was removed or unmounted by hand and something else took its
    /// place): ferry leaves it alone.
    #[error(
        "{target} is not the volume ferry made there any more ({found}): left it untouched; `ferry mounts` drops the stale record"
    )]
    Replaced {
        /// The target.
        target: PathBuf,
        /// What is there now.
        found: String,
    },
    /// No mount record names this target.
    #[error("no ferry mount at {0}")]
    NotMounted(PathBuf),
    /// The target already carries a ferry mount.
    #[error("{target} is already a ferry mount (id {id})")]
    AlreadyMounted {
        /// The mount point.
        target: PathBuf,
        /// The existing mount's id.
        id: String,
    },
    /// A `record.json` that cannot be read.
    #[error("corrupt mount record {path}: {reason}")]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A request ferry cannot honour (e.g. keeping changes of a read-only mount).
    #[error("{0}")]
    Unsupported(String),
}

/// Result alias for the mount crate.
pub type Result<T, E = MountError> = std::result::Result<T, E>;

/// Attaches an action and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| MountError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
