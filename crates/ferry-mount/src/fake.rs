//! A recording stand-in for [`Syscalls`]: it mounts nothing, remembers every
//! call, and fails on request, so planning is tested without root.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::sys::{Flags, Overlay, Syscalls};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `mount -t overlay`.
    MountOverlay {
        /// The overlay, lowers bottom first.
        overlay: Overlay,
        /// The option string that would be passed to mount(2).
        options: String,
        /// Where.
        target: PathBuf,
        /// With which flags.
        flags: Flags,
    },
    /// A bind mount of `root/subpath`.
    Bind {
        /// The view the subpath is resolved in.
        root: PathBuf,
        /// The subpath's components.
        subpath: Vec<String>,
        /// Where.
        target: PathBuf,
    },
    /// A remount of a bind mount.
    RemountBind {
        /// Where.
        target: PathBuf,
        /// With which flags.
        flags: Flags,
    },
    /// An unmount.
    Umount {
        /// Where.
        target: PathBuf,
        /// `MNT_DETACH`.
        detach: bool,
    },
}

/// Which kind of call a planned failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Call::MountOverlay`].
    MountOverlay,
    /// [`Call::Bind`].
    Bind,
    /// [`Call::RemountBind`].
    RemountBind,
    /// [`Call::Umount`].
    Umount,
}

/// Records calls; fails the next call of a kind when told to.
#[derive(Debug, Default)]
pub struct RecordingSyscalls {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<(Kind, i32)>>,
}

impl RecordingSyscalls {
    /// A fake that succeeds at everything.
    pub fn new() -> RecordingSyscalls {
        RecordingSyscalls::default()
    }

    /// The next call of `kind` fails with `errno` (e.g. `libc`'s EPERM = 1).
    pub fn fail_next(&self, kind: Kind, errno: i32) {
        lock(&self.failures).push((kind, errno));
    }

    /// Every call so far, in order (failed calls included).
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        lock(&self.calls).clear();
    }

    fn record(&self, kind: Kind, call: Call) -> io::Result<()> {
        lock(&self.calls).push(call);
        let mut failures = lock(&self.failures);
        match failures.iter().position(|(k, _)| *k == kind) {
            Some(i) => Err(io::Error::from_raw_os_error(failures.remove(i).1)),
            None => Ok(()),
        }
    }
}

/// A poisoned lock only means another test thread panicked; the list is
/// still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Syscalls for RecordingSyscalls {
    fn mount_overlay(&self, overlay: &Overlay, target: &Path, flags: Flags) -> io::Result<()> {
        self.record(
            Kind::MountOverlay,
            Call::MountOverlay {
                overlay: overlay.clone(),
                options: overlay.options(),
                target: target.to_path_buf(),
                flags,
            },
        )
    }

    fn bind(&self, root: &Path, subpath: &[String], target: &Path) -> io::Result<()> {
        self.record(
            Kind::Bind,
            Call::Bind {
                root: root.to_path_buf(),
                subpath: subpath.to_vec(),
                target: target.to_path_buf(),
            },
        )
    }

    fn remount_bind(&self, target: &Path, flags: Flags) -> io::Result<()> {
        self.record(
            Kind::RemountBind,
            Call::RemountBind {
                target: target.to_path_buf(),
                flags,
            },
        )
    }

    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        self.record(
            Kind::Umount,
            Call::Umount {
                target: target.to_path_buf(),
                detach,
            },
        )
    }
}
