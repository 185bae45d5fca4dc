//! A recording stand-in for [`Syscalls`]: it mounts nothing, remembers every
//! call and keeps a mount table of what it "mounted", and fails on request,
//! so planning is tested without root.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::mountinfo::MountEntry;
use crate::sys::{Flags, MOUNT_SOURCE, Overlay, Syscalls};

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
    table: Mutex<Vec<MountEntry>>,
    last_mount_id: Mutex<u64>,
    unlisted: Mutex<bool>,
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

    /// Puts a mount that is not ferry's on top of `target` (someone else's
    /// tmpfs, say), as if mounted outside ferry.
    pub fn mount_foreign(&self, target: &Path, fs_type: &str) {
        self.add_mount(target, fs_type, fs_type, "rw");
    }

    /// Removes the topmost mount at `target`, as if unmounted outside ferry.
    pub fn unmount_behind_our_back(&self, target: &Path) {
        let mut table = lock(&self.table);
        if let Some(i) = table.iter().rposition(|e| e.mount_point == target) {
            table.remove(i);
        }
    }

    /// Mounts made from here on are missing from the mount table, as when
    /// the kernel's mountinfo does not show them where ferry looks.
    pub fn leave_new_mounts_unlisted(&self) {
        *lock(&self.unlisted) = true;
    }

    fn add_mount(&self, target: &Path, fs_type: &str, source: &str, super_options: &str) {
        if *lock(&self.unlisted) {
            return;
        }
        // Never reused, like the kernel's unique mount ids.
        let mount_id = {
            let mut last = lock(&self.last_mount_id);
            *last = (*last).max(100) + 1;
            *last
        };
        lock(&self.table).push(MountEntry {
            mount_id,
            mount_point: target.to_path_buf(),
            options: String::new(),
            fs_type: fs_type.to_string(),
            source: source.to_string(),
            super_options: super_options.to_string(),
        });
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
        )?;
        // The options as the kernel shows them for a mount(2) overlay.
        let options = format!(
            "{},{}",
            if flags.read_only { "ro" } else { "rw" },
            overlay.options()
        );
        self.add_mount(target, "overlay", MOUNT_SOURCE, &options);
        Ok(())
    }

    fn bind(&self, root: &Path, subpath: &[String], target: &Path) -> io::Result<()> {
        self.record(
            Kind::Bind,
            Call::Bind {
                root: root.to_path_buf(),
                subpath: subpath.to_vec(),
                target: target.to_path_buf(),
            },
        )?;
        // A bind shows the type and source of what it binds.
        let bound = lock(&self.table)
            .iter()
            .rev()
            .find(|e| root.starts_with(&e.mount_point))
            .map(|e| (e.fs_type.clone(), e.source.clone(), e.super_options.clone()));
        let (fs_type, source, options) =
            bound.unwrap_or_else(|| ("none".into(), "none".into(), String::new()));
        self.add_mount(target, &fs_type, &source, &options);
        Ok(())
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
        )?;
        let mut table = lock(&self.table);
        match table.iter().rposition(|e| e.mount_point == target) {
            Some(i) => {
                table.remove(i);
                Ok(())
            }
            // What umount(2) says when nothing is mounted there.
            None => Err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            )),
        }
    }

    fn umount_if(&self, target: &Path, expected: u64, detach: bool) -> io::Result<()> {
        let top = lock(&self.table)
            .iter()
            .rev()
            .find(|e| e.mount_point == target)
            .map(|e| e.mount_id);
        match top {
            Some(id) if id != expected => Err(crate::sys::other_mount()),
            _ => self.umount(target, detach),
        }
    }

    fn mounts(&self) -> io::Result<Vec<MountEntry>> {
        Ok(lock(&self.table).clone())
    }

    fn unique_mount_id(&self, target: &Path) -> io::Result<Option<u64>> {
        let table = lock(&self.table);
        let entry = table.iter().rev().find(|e| e.mount_point == target);
        Ok(entry.map(|e| e.mount_id))
    }
}
