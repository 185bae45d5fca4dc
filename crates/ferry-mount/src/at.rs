//! Descriptor-relative file operations that never follow a symlink.
//!
//! Trees ferry reads or writes may be writable by someone else (the upper
//! directory of a read-write volume, a copied volume, the parent of a
//! target). A path looked up twice can be redirected in between by a
//! symlink swap, so each walk opens a directory once and works relative to
//! that descriptor, with `O_NOFOLLOW` on every open and `O_EXCL` on every
//! create.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags, Stat};

use crate::error::{IoContext, MountError, Result};
use crate::record::TreeIdentity;

/// Copies deeper than this are refused (each level holds a descriptor, and
/// no model needs such depth); removals handle any depth.
pub const MAX_DEPTH: usize = 128;

/// The kind of an entry, from `lstat`.
pub fn kind(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// Opens the directory at `path`; its last component must not be a
/// symlink (earlier components are the caller's choice of path).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(CWD, path, dir_flags(), Mode::empty())
        .map_err(io::Error::from)
        .ctx("opening directory", path)
}

/// Opens the parent directory of `path` and returns it with the last
/// component's name.
pub fn open_parent(path: &Path) -> Result<(OwnedFd, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| MountError::InvalidTarget {
            target: path.to_path_buf(),
            reason: "it has no final component".into(),
        })?
        .to_os_string();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = rustix::fs::openat(
        CWD,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .ctx("opening directory", parent)?;
    Ok((fd, name))
}

/// [`open_parent`] for a canonical path (a mount target): no component
/// may be a symlink, so a parent swapped for one since the path was
/// resolved is refused (ELOOP) instead of followed.
pub fn open_parent_no_symlinks(path: &Path) -> Result<(OwnedFd, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| MountError::InvalidTarget {
            target: path.to_path_buf(),
            reason: "it has no final component".into(),
        })?
        .to_os_string();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat2(
        CWD,
        parent,
        flags,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // Before Linux 5.6 there is no openat2: the last component at least.
        Err(rustix::io::Errno::NOSYS) => {
            rustix::fs::openat(CWD, parent, flags | OFlags::NOFOLLOW, Mode::empty())
        }
        other => other,
    }
    .map_err(io::Error::from)
    .ctx("opening directory", parent)?;
    Ok((fd, name))
}

/// Creates a new directory (mode 0700) named `prefix` and a unique suffix
/// in `dir`, and opens it: the descriptor names the directory made here,
/// whatever is renamed to its name later.
pub fn make_private_dir(dir: BorrowedFd<'_>, prefix: &str) -> io::Result<(OsString, OwnedFd)> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = OsString::from(format!("{prefix}{}-{nanos:x}-{n}", std::process::id()));
        match rustix::fs::mkdirat(dir, &name, Mode::from_raw_mode(0o700)) {
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
        let fd = open_subdir(dir, &name)?;
        return Ok((name, fd));
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens the directory `name` in `dir`, refusing a symlink.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, dir_flags(), Mode::empty())?)
}

/// Opens `relative` beneath `dir` without following any symlink and
/// without leaving `dir`.
pub fn open_beneath(dir: BorrowedFd<'_>, relative: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    if relative.as_os_str().is_empty() {
        return Ok(rustix::fs::openat(
            dir,
            ".",
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    Ok(rustix::fs::openat2(
        dir,
        relative,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in `dir` (without `.` and `..`), read through a fresh
/// descriptor so the caller's stays usable.
pub fn names(dir: BorrowedFd<'_>) -> io::Result<impl Iterator<Item = io::Result<OsString>>> {
    let mut stream = rustix::fs::Dir::read_from(dir)?;
    Ok(std::iter::from_fn(move || {
        loop {
            match stream.read()? {
                Err(e) => return Some(Err(e.into())),
                Ok(entry) => {
                    let name = entry.file_name().to_bytes();
                    if name == b"." || name == b".." {
                        continue;
                    }
                    return Some(Ok(OsStr::from_bytes(name).to_os_string()));
                }
            }
        }
    }))
}

/// Creates the file `name` in `dir` (never through a symlink, never over
/// an existing entry), private until the caller sets owner and mode.
pub fn create_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?)
}

/// Opens `name` in `dir` as an `O_PATH` descriptor, never following a
/// symlink (the descriptor then names the symlink itself), with its
/// `fstat`: metadata of exactly the object later read through it.
pub fn open_entry(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(OwnedFd, Stat)> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((fd, stat))
}

/// Opens the directory `name` in `dir` (refusing a symlink) with its
/// `fstat`.
pub fn open_subdir_stat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(OwnedFd, Stat)> {
    let fd = open_subdir(dir, name)?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((fd, stat))
}

/// The error of an entry whose kind changed since it was listed.
pub fn changed_kind(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not {what} any more"))
}

/// Opens the regular file `name` in `dir` for reading, refusing a symlink
/// and never blocking on a fifo swapped in after the caller's `lstat`.
pub fn open_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(OwnedFd, Stat)> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    if kind(&stat) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file any more",
        ));
    }
    Ok((fd, stat))
}

/// Copies the contents of `from` to `to`: a reflink where the filesystem
/// can, else an in-kernel copy (memory stays constant).
pub fn copy_contents(from: &OwnedFd, to: &OwnedFd) -> io::Result<u64> {
    if rustix::fs::ioctl_ficlone(to, from).is_ok() {
        return Ok(rustix::fs::fstat(from)?.st_size.max(0) as u64);
    }
    let mut reader = std::fs::File::from(from.try_clone()?);
    let mut writer = std::fs::File::from(to.try_clone()?);
    io::copy(&mut reader, &mut writer)
}

/// Gives `fd` the owner `uid:gid`. Without the privilege to do so (an
/// unprivileged ferry), the file stays the caller's, which is never more
/// than the caller already had.
pub fn give_owner(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    give(rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    ))
}

/// [`give_owner`] for a symlink `name` in `dir` (never followed).
pub fn give_link_owner(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    give(rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    ))
}

fn give(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) | Err(rustix::io::Errno::PERM) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sets the permission bits of `fd`.
pub fn set_mode(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// Removes `path` whatever it is, walking by descriptor so nothing outside
/// it is touched even if someone swaps a directory for a symlink meanwhile.
/// Directories made read-only are made writable first. A path that does
/// not exist is not an error.
pub fn remove_path(path: &Path) -> Result<()> {
    let (parent, name) = match open_parent(path) {
        Ok(found) => found,
        Err(MountError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    remove_at(parent.as_fd(), &name).ctx("removing", path)
}

/// Removes `path` only if it is the object `expected`; an error when
/// something else is there. `path` is canonical (a target ferry resolved):
/// a symlink on it now is refused. See [`remove_at_if`].
pub fn remove_path_if(path: &Path, expected: &TreeIdentity) -> Result<()> {
    let (parent, name) = open_parent_no_symlinks(path)?;
    remove_at_if(parent.as_fd(), &name, expected, path)
}

/// Removes `name` in `dir` only if it is the object `expected`; an error
/// when something else is there (`path` is for messages). The object
/// checked is the object emptied (by descriptor), and the name is unlinked
/// relative to the same parent descriptor: a swap between the check and
/// the removal cannot redirect it to another directory.
pub fn remove_at_if(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    expected: &TreeIdentity,
    path: &Path,
) -> Result<()> {
    let replaced = || MountError::Replaced {
        target: path.to_path_buf(),
        found: "another file or directory is there".into(),
    };
    let (object, stat) = match open_entry(parent, name) {
        Ok(found) => found,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("opening", path),
    };
    if TreeIdentity::of_fd(&object).ctx("reading", path)? != *expected {
        return Err(replaced());
    }
    if kind(&stat) != FileType::Directory {
        return ignore_missing(rustix::fs::unlinkat(parent, name, AtFlags::empty()))
            .ctx("removing", path);
    }
    let dir = open_subdir(parent, name).ctx("opening", path)?;
    if TreeIdentity::of_fd(&dir).ctx("reading", path)? != *expected {
        return Err(replaced());
    }
    if stat.st_mode & 0o700 != 0o700 {
        set_mode(dir.as_fd(), 0o700).ctx("making writable to remove", path)?;
    }
    empty(dir.as_fd()).ctx("removing", path)?;
    ignore_missing(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)).ctx("removing", path)
}

/// Removes `name` in `dir` (recursively, never following a symlink).
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(stat) = stat_at(dir, name)? else {
        return Ok(());
    };
    if kind(&stat) != FileType::Directory {
        return ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::empty()));
    }
    let top = open_subdir(dir, name)?;
    if stat.st_mode & 0o700 != 0o700 {
        set_mode(top.as_fd(), 0o700)?;
    }
    empty(top.as_fd())?;
    ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))
}

/// Empties the directory `top`. Each level holds a descriptor, so a
/// directory found [`MAX_DEPTH`] levels down is moved up into `top` and
/// removed from there: any depth is removed with bounded descriptors and
/// stack (a writer of a volume can nest directories without limit).
fn empty(top: BorrowedFd<'_>) -> io::Result<()> {
    let mut moved = 0u64;
    loop {
        let mut found = false;
        for name in names(top)? {
            found = true;
            remove_below(top, top, &name?, 1, &mut moved)?;
        }
        if !found {
            return Ok(());
        }
    }
}

fn remove_below(
    top: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    depth: usize,
    moved: &mut u64,
) -> io::Result<()> {
    let Some(stat) = stat_at(dir, name)? else {
        return Ok(());
    };
    if kind(&stat) != FileType::Directory {
        return ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::empty()));
    }
    if depth >= MAX_DEPTH {
        // Up into `top`, under a name nothing else there has.
        loop {
            *moved += 1;
            let new_name = format!(".ferry-removing-{moved}");
            match rustix::fs::renameat_with(
                dir,
                name,
                top,
                new_name.as_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Err(rustix::io::Errno::EXIST) => continue,
                other => return ignore_missing(other),
            }
        }
    }
    let sub = open_subdir(dir, name)?;
    if stat.st_mode & 0o700 != 0o700 {
        set_mode(sub.as_fd(), 0o700)?;
    }
    for child in names(sub.as_fd())? {
        remove_below(top, sub.as_fd(), &child?, depth + 1, moved)?;
    }
    ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))
}

fn ignore_missing(result: rustix::io::Result<()>) -> io::Result<()> {
    match result {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The error of a walk deeper than [`MAX_DEPTH`].
pub fn too_deep() -> io::Error {
    io::Error::other(format!("the tree is deeper than {MAX_DEPTH} levels"))
}

/// `base/relative` for messages.
pub fn display(base: &Path, relative: &Path) -> PathBuf {
    if relative.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(relative)
    }
}
