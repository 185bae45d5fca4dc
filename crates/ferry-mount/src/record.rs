//! Mount records: `<store root>/mounts/<id>/record.json`, one per volume.
//!
//! A record says what is mounted where, so `ferry umount` knows how to undo
//! it, `ferry mounts` can list it, and `rm`/`prune` keep what it uses. Its
//! directory also holds the read-write layer (`upper/`, `work/`) and the
//! staging mount point of subpath volumes (`view/`). While a mount or an
//! unmount is in progress, the process holds `lock` exclusively; a record
//! whose lock is free and whose mount is gone (the machine rebooted, or the
//! target is no longer a mount point) is stale.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ferry_store::Store;
use ferry_store::lock::{Existing, LockGuard};
use rustix::fs::{AtFlags, StatxFlags};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, MountError, Result};
use crate::mountinfo::{self, MountEntry};
use crate::sys::MOUNT_SOURCE;

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Nothing in the volume can be changed.
    #[serde(rename = "ro")]
    ReadOnly,
    /// Writes go to a private layer discarded at unmount.
    #[serde(rename = "rw")]
    ReadWrite,
}

impl Access {
    /// `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        }
    }
}

/// How the volume was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// An overlayfs mount (plus a bind mount for a subpath).
    Overlay,
    /// No mount: a tree of hardlinks to the read-only cache.
    Hardlink,
    /// No mount: a tree of private copies (reflinks where possible).
    Copy,
}

impl Method {
    /// `overlay`, `hardlink` or `copy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Overlay => "overlay",
            Method::Hardlink => "hardlink",
            Method::Copy => "copy",
        }
    }
}

/// One artifact of a volume (the base, then each stacked one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountedArtifact {
    /// The reference as resolved (`host/repo:tag`), or the digest given.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
}

/// The record format this ferry writes. 0 (no `format` field) is an older
/// ferry's, which did not always record the mount's ids.
pub const RECORD_FORMAT: u32 = 1;

/// What `record.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountRecord {
    /// [`RECORD_FORMAT`] of the ferry that wrote it (0: older).
    #[serde(default)]
    pub format: u32,
    /// The record's directory name.
    pub id: String,
    /// Base first, then stacked artifacts (later wins).
    pub artifacts: Vec<MountedArtifact>,
    /// The absolute mount point.
    pub target: PathBuf,
    /// The subpath mounted, if not the whole volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    /// `ro` or `rw`.
    pub access: Access,
    /// Mounted `noexec`.
    pub noexec: bool,
    /// How the volume was made.
    pub method: Method,
    /// Layer cache keys in use, bottom first.
    pub layers: Vec<String>,
    /// ferry created the target (and removes it at unmount).
    pub created_target: bool,
    /// The overlay (or subpath bind) mount ferry made at the target, by its
    /// mountinfo id: unmounting checks that what is mounted there now is
    /// still that mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_id: Option<u64>,
    /// The kernel's never-reused id of that mount (Linux 6.8 and later):
    /// mountinfo ids are recycled, so this one decides where it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_mount_id: Option<u64>,
    /// The directory (or file) a no-mount volume placed at the target:
    /// unmounting removes only that object, never what replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeIdentity>,
    /// The process that mounted.
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` when mounted.
    pub boot_id: String,
    /// The mount namespace mounted in (`mnt:[4026531841]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_namespace: Option<String>,
    /// When (RFC 3339).
    pub created: String,
}

/// What a no-mount volume's root is, whatever its path: a path can be
/// reused for something else after the volume is removed by hand. An inode
/// number can be reused too, so its birth time (where the filesystem keeps
/// one) is part of the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeIdentity {
    /// The filesystem's device number.
    pub device: u64,
    /// The inode number.
    pub inode: u64,
    /// Birth time (seconds, nanoseconds), when the filesystem records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<(i64, u32)>,
}

impl TreeIdentity {
    /// The identity of what is at `path` now (never following a symlink).
    pub fn of_path(path: &Path) -> Option<TreeIdentity> {
        rustix::fs::statx(
            rustix::fs::CWD,
            path,
            AtFlags::SYMLINK_NOFOLLOW,
            Self::wanted(),
        )
        .ok()
        .map(|stat| Self::of_statx(&stat))
    }

    /// The identity of `name` in `dir` now (never following a symlink).
    pub fn of_at(dir: impl std::os::fd::AsFd, name: &std::ffi::OsStr) -> Option<TreeIdentity> {
        rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, Self::wanted())
            .ok()
            .map(|stat| Self::of_statx(&stat))
    }

    /// The identity of what `fd` names.
    pub fn of_fd(fd: impl std::os::fd::AsFd) -> io::Result<TreeIdentity> {
        let stat = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, Self::wanted())?;
        Ok(Self::of_statx(&stat))
    }

    fn wanted() -> StatxFlags {
        StatxFlags::BASIC_STATS | StatxFlags::BTIME
    }

    fn of_statx(stat: &rustix::fs::Statx) -> TreeIdentity {
        let born = StatxFlags::from_bits_retain(stat.stx_mask)
            .contains(StatxFlags::BTIME)
            .then_some((stat.stx_btime.tv_sec, stat.stx_btime.tv_nsec));
        TreeIdentity {
            device: rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            inode: stat.stx_ino,
            born,
        }
    }
}

/// Where a store keeps what its overlays name, as the kernel shows them
/// (symlinks resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePaths {
    /// The layer cache (`<root>/layers`).
    pub layers: PathBuf,
    /// The record directories (`<root>/mounts`).
    pub mounts: PathBuf,
}

impl StorePaths {
    /// The paths of `store`.
    pub fn of(store: &Store) -> StorePaths {
        let resolve = |path: PathBuf| fs::canonicalize(&path).unwrap_or(path);
        StorePaths {
            layers: resolve(crate::layers::cache_root(store)),
            mounts: resolve(mounts_root(store)),
        }
    }
}

/// True when `entry` (the topmost mount at the record's target) is the
/// mount the record made: a ferry overlay (a subpath bind shows the
/// overlay's type and source too) with the recorded mount id.
///
/// A record without a mount id is either being written (the mount is in
/// progress) or an older ferry's ([`RECORD_FORMAT`] 0), which did not
/// always record one. For those, the strictest check without an id: the
/// overlay's options name this record's upper directory (read-write) or
/// exactly this record's cache entries (read-only). Unmounting refuses a
/// current record without an id anyway (see `volume::umount`).
pub fn is_our_mount(record: &MountRecord, entry: &MountEntry, store: &StorePaths) -> bool {
    if entry.fs_type != "overlay" || entry.source != MOUNT_SOURCE {
        return false;
    }
    match record.mount_id {
        Some(id) => id == entry.mount_id,
        None => names_this_record(record, entry, store),
    }
}

fn names_this_record(record: &MountRecord, entry: &MountEntry, store: &StorePaths) -> bool {
    let (lowers, upper) = mountinfo::overlay_dirs(&entry.super_options);
    match record.access {
        Access::ReadWrite => upper == Some(store.mounts.join(&record.id).join("upper")),
        Access::ReadOnly => {
            let layers: Vec<PathBuf> = record
                .layers
                .iter()
                .map(|key| store.layers.join(key))
                .collect();
            let empty = store.layers.join("empty");
            upper.is_none()
                && !layers.is_empty()
                && layers.iter().all(|layer| lowers.contains(layer))
                && lowers.iter().all(|l| *l == empty || layers.contains(l))
        }
    }
}

/// `<root>/mounts`.
pub fn mounts_root(store: &Store) -> PathBuf {
    store.root().join("mounts")
}

/// A record's directory, locked by this process.
#[derive(Debug)]
pub struct RecordDir {
    /// The mount id (the directory's name).
    pub id: String,
    /// `<root>/mounts/<id>`.
    pub path: PathBuf,
    _lock: LockGuard,
}

impl RecordDir {
    /// Creates a fresh directory with a unique id and locks it.
    pub fn create(store: &Store) -> Result<RecordDir> {
        let root = mounts_root(store);
        fs::create_dir_all(&root).ctx("creating", &root)?;
        let dir = tempfile::Builder::new()
            .prefix("")
            .rand_bytes(16)
            .tempdir_in(&root)
            .ctx("creating mount directory in", &root)?
            .keep();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock = ferry_store::lock::exclusive(&dir.join("lock"))?;
        Ok(RecordDir {
            id,
            path: dir,
            _lock: lock,
        })
    }

    /// Locks an existing record's directory, waiting for a mount or
    /// unmount in progress unless `try_only`.
    pub fn lock(dir: &Path, try_only: bool) -> Result<Lock> {
        // Never create the lock file here: a directory being removed would
        // get a new file and its removal would fail.
        let path = dir.join("lock");
        let lock = match ferry_store::lock::exclusive_if_exists(&path, !try_only)? {
            Existing::Held(guard) => guard,
            Existing::Busy => return Ok(Lock::Busy),
            Existing::Missing => return Ok(Lock::Gone),
        };
        // The holder before us may have removed the directory.
        if !path.exists() {
            return Ok(Lock::Gone);
        }
        Ok(Lock::Locked(RecordDir {
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: dir.to_path_buf(),
            _lock: lock,
        }))
    }

    /// The read-write layer.
    pub fn upper(&self) -> PathBuf {
        self.path.join("upper")
    }

    /// overlayfs's work directory.
    pub fn work(&self) -> PathBuf {
        self.path.join("work")
    }

    /// The staging mount point of a subpath volume.
    pub fn view(&self) -> PathBuf {
        self.path.join("view")
    }

    /// Writes `record.json` atomically (temp file, fsync, rename).
    pub fn write(&self, record: &MountRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| MountError::CorruptRecord {
            path: self.path.join("record.json"),
            reason: e.to_string(),
        })?;
        let path = self.path.join("record.json");
        ferry_spec::durable::write_file(&path, &bytes, None, ferry_spec::durable::SHARED_FILE_MODE)
            .ctx("replacing", path)
    }

    /// Removes the directory and everything in it (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        crate::tree::remove_tree(&self.path)
    }
}

/// The outcome of [`RecordDir::lock`].
#[derive(Debug)]
pub enum Lock {
    /// Held by this process now.
    Locked(RecordDir),
    /// Another process holds it (a mount or unmount in progress).
    Busy,
    /// The directory has no lock file: removed, or debris.
    Gone,
}

/// Reads one record.
pub fn read(dir: &Path) -> Result<MountRecord> {
    let path = dir.join("record.json");
    let bytes = fs::read(&path).ctx("reading", &path)?;
    serde_json::from_slice(&bytes).map_err(|e| MountError::CorruptRecord {
        path,
        reason: e.to_string(),
    })
}

/// Every record directory with what reading its record gave.
pub fn read_all(store: &Store) -> Result<Vec<(PathBuf, Result<MountRecord>)>> {
    let root = mounts_root(store);
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("reading", &root),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("reading", &root)?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let dir = entry.path();
            let record = read(&dir);
            out.push((dir, record));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// What the machine looks like now, for staleness checks.
#[derive(Debug, Clone)]
pub struct Host {
    /// The current boot id.
    pub boot_id: String,
    /// This process's mount namespace.
    pub mount_namespace: Option<String>,
    /// The mounts this process sees.
    pub mounts: Vec<MountEntry>,
    /// What the store's overlays name.
    pub store: StorePaths,
}

impl Host {
    /// Reads the boot id, namespace and mountinfo of this process.
    pub fn current(store: &Store) -> Host {
        Host {
            boot_id: boot_id(),
            mount_namespace: mount_namespace(),
            mounts: mountinfo::read(),
            store: StorePaths::of(store),
        }
    }
}

/// `/proc/sys/kernel/random/boot_id`, changed by every reboot.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This process's mount namespace (`mnt:[N]`).
pub fn mount_namespace() -> Option<String> {
    fs::read_link("/proc/self/ns/mnt")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether a record still describes a live volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The volume is there.
    Active,
    /// The volume is gone; the reason says why ferry thinks so.
    Stale(&'static str),
}

/// Judges a record against the machine. A mount made in another mount
/// namespace cannot be seen from here and counts as active unless the
/// machine rebooted.
pub fn liveness(record: &MountRecord, host: &Host) -> Liveness {
    match record.method {
        Method::Overlay => {
            if !record.boot_id.is_empty() && record.boot_id != host.boot_id {
                return Liveness::Stale("the machine rebooted since it was mounted");
            }
            if record.mount_namespace.is_some() && record.mount_namespace != host.mount_namespace {
                return Liveness::Active;
            }
            match mountinfo::mount_at(&host.mounts, &record.target) {
                Some(entry) if is_our_mount(record, entry, &host.store) => Liveness::Active,
                Some(_) => Liveness::Stale("another mount replaced it at its target"),
                None => Liveness::Stale("its target is no longer mounted"),
            }
        }
        Method::Hardlink | Method::Copy => {
            match (TreeIdentity::of_path(&record.target), record.tree) {
                (None, _) => Liveness::Stale("its target no longer exists"),
                (Some(found), Some(placed)) if found != placed => {
                    Liveness::Stale("its target was replaced by something else")
                }
                _ => Liveness::Active,
            }
        }
    }
}

/// The current time, RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: Method, target: &str) -> MountRecord {
        MountRecord {
            format: RECORD_FORMAT,
            id: "x".into(),
            artifacts: vec![],
            target: target.into(),
            subpath: None,
            access: Access::ReadOnly,
            noexec: false,
            method,
            layers: vec![],
            created_target: false,
            mount_id: None,
            unique_mount_id: None,
            tree: None,
            pid: 1,
            boot_id: "boot-1".into(),
            mount_namespace: Some("mnt:[1]".into()),
            created: now(),
        }
    }

    fn host(mounts: &str) -> Host {
        Host {
            boot_id: "boot-1".into(),
            mount_namespace: Some("mnt:[1]".into()),
            mounts: mountinfo::parse(mounts),
            store: StorePaths {
                layers: "/s/layers".into(),
                mounts: "/s/mounts".into(),
            },
        }
    }

    const LIVE: &str = "1 2 0:5 / /mnt/m ro,nosuid - overlay ferry ro\n";

    #[test]
    fn overlay_records_follow_mountinfo_and_boot_id() {
        let mut r = record(Method::Overlay, "/mnt/m");
        r.mount_id = Some(1);
        assert_eq!(liveness(&r, &host(LIVE)), Liveness::Active);
        assert!(matches!(liveness(&r, &host("")), Liveness::Stale(_)));
        let not_ours = "1 2 0:5 / /mnt/m rw - tmpfs tmpfs rw\n";
        assert!(matches!(liveness(&r, &host(not_ours)), Liveness::Stale(_)));
        let mut with_id = r.clone();
        with_id.mount_id = Some(1);
        assert_eq!(liveness(&with_id, &host(LIVE)), Liveness::Active);
        with_id.mount_id = Some(7);
        assert!(
            matches!(liveness(&with_id, &host(LIVE)), Liveness::Stale(_)),
            "another ferry overlay at the same place is not this record's"
        );
        let mut rebooted = host(LIVE);
        rebooted.boot_id = "boot-2".into();
        assert!(matches!(liveness(&r, &rebooted), Liveness::Stale(_)));
    }

    #[test]
    fn without_a_mount_id_only_an_overlay_naming_this_record_is_ours() {
        let key = format!("sha256/{}", "a".repeat(64));
        let mut r = record(Method::Overlay, "/mnt/m");
        r.layers = vec![key.clone()];
        let overlay =
            |options: &str| host(&format!("1 2 0:5 / /mnt/m ro - overlay ferry {options}\n"));
        assert!(
            matches!(liveness(&r, &host(LIVE)), Liveness::Stale(_)),
            "any ferry overlay there is not enough"
        );
        let ours = format!("ro,lowerdir=/s/layers/{key}:/s/layers/empty");
        assert_eq!(liveness(&r, &overlay(&ours)), Liveness::Active);
        let other = format!(
            "ro,lowerdir=/s/layers/{key}:/s/layers/sha256/{}",
            "b".repeat(64)
        );
        assert!(matches!(liveness(&r, &overlay(&other)), Liveness::Stale(_)));
        r.access = Access::ReadWrite;
        let upper = |id: &str| format!("rw,lowerdir=/s/layers/{key},upperdir=/s/mounts/{id}/upper");
        assert!(matches!(liveness(&r, &overlay(&ours)), Liveness::Stale(_)));
        assert_eq!(liveness(&r, &overlay(&upper("x"))), Liveness::Active);
        assert!(matches!(
            liveness(&r, &overlay(&upper("y"))),
            Liveness::Stale(_)
        ));
    }

    #[test]
    fn other_namespaces_are_not_judged_by_our_mountinfo() {
        let r = record(Method::Overlay, "/mnt/m");
        let mut elsewhere = host("");
        elsewhere.mount_namespace = Some("mnt:[2]".into());
        assert_eq!(liveness(&r, &elsewhere), Liveness::Active);
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = record(Method::Hardlink, "/t");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""access":"ro""#), "{json}");
        assert!(json.contains(r#""method":"hardlink""#), "{json}");
        assert_eq!(serde_json::from_str::<MountRecord>(&json).unwrap(), r);
    }
}
