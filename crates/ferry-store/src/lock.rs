//! Advisory file locks that serialize writers across processes.
//!
//! Two locks: `index.lock` guards read-modify-write of `index.json`;
//! `gc.lock` is held shared by anything that adds blobs (pack, pull) and
//! exclusive by anything that deletes them (rm, prune), so a blob written but
//! not yet named in the index is never collected.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{IoContext, Result};

/// A held lock; released on drop (the kernel also drops it if the process dies).
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .ctx("opening lock file", path)
}

/// Blocks until the exclusive lock at `path` is held.
pub fn exclusive(path: &Path) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    file.lock().ctx("locking", path)?;
    Ok(LockGuard { file })
}

/// Blocks until the exclusive lock on the directory `dir` itself is held:
/// for directories that belong to other tools (a bare OCI layout), where a
/// lock file would be left behind in their tree.
pub fn exclusive_dir(dir: &Path) -> Result<LockGuard> {
    let file = File::open(dir).ctx("opening directory to lock", dir)?;
    file.lock().ctx("locking", dir)?;
    Ok(LockGuard { file })
}

/// Blocks until a shared lock at `path` is held.
pub fn shared(path: &Path) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    file.lock_shared().ctx("locking", path)?;
    Ok(LockGuard { file })
}

/// What locking a lock file that may be gone gave.
#[derive(Debug)]
pub enum Existing {
    /// The lock is held.
    Held(LockGuard),
    /// Another process holds it (only when not waiting).
    Busy,
    /// There is no lock file (its directory was removed, or is debris).
    Missing,
}

/// Locks `path` exclusively without creating it: a directory being removed
/// must not get a new lock file. With `wait` false, a held lock is `Busy`.
pub fn exclusive_if_exists(path: &Path, wait: bool) -> Result<Existing> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(e) => return Err(e).ctx("opening lock file", path),
    };
    if wait {
        file.lock().ctx("locking", path)?;
    } else {
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Existing::Busy),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).ctx("locking", path),
        }
    }
    Ok(Existing::Held(LockGuard { file }))
}
