//! The mount operations ferry needs (and the mount table it reads), behind
//! a trait.
//!
//! Planning (which lower directories, in which order, with which options,
//! whether to bind a subpath or fall back to a hardlink tree) is plain code
//! that calls [`Syscalls`]; [`LinuxSyscalls`] performs the calls, and
//! [`crate::fake::RecordingSyscalls`] records them so the planning is tested
//! without root.
//!
//! [`LinuxSyscalls`] reaches every target through a descriptor opened
//! without following any symlink (`openat2`, `RESOLVE_NO_SYMLINKS`), and
//! mounts onto that descriptor, so a symlink swapped into the target's
//! path by someone who can write a parent cannot redirect a mount. It
//! unmounts through a descriptor of the parent opened the same way.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::mount::{MountAttrFlags, MountFlags, UnmountFlags};

use crate::mountinfo::MountEntry;

/// Per-mount flags. `nosuid` and `nodev` are always set: an artifact is
/// data, never a way to gain privileges or reach devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `MS_RDONLY`: every write fails with EROFS, the root directory included.
    pub read_only: bool,
    /// `MS_NOEXEC`: nothing in the volume can be executed.
    pub noexec: bool,
}

impl Flags {
    /// The `mount(2)` flags these stand for (`nosuid,nodev` included).
    pub fn mount_flags(self) -> MountFlags {
        let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
        if self.read_only {
            flags |= MountFlags::RDONLY;
        }
        if self.noexec {
            flags |= MountFlags::NOEXEC;
        }
        flags
    }

    /// The same as attributes of a mount made with `fsmount(2)`.
    pub fn mount_attrs(self) -> MountAttrFlags {
        let mut attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
        if self.read_only {
            attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
        }
        if self.noexec {
            attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
        }
        attrs
    }
}

/// The writable layer of a read-write overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upper {
    /// Where writes land (private to one mount).
    pub upper: PathBuf,
    /// overlayfs's scratch directory, on the same filesystem as `upper`.
    pub work: PathBuf,
}

/// An overlay to mount: read-only lower directories, optionally an upper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Lower directories, bottom first (a later directory's file wins).
    pub lowers: Vec<PathBuf>,
    /// The writable layer, for read-write mounts.
    pub upper: Option<Upper>,
}

impl Overlay {
    /// The option string for `mount(2)`. overlayfs lists lower directories
    /// top first, so the order is reversed here; `:`, `,` and `\` in paths
    /// are escaped with a backslash as overlayfs's option parser expects.
    pub fn options(&self) -> String {
        let lowers: Vec<String> = self.lowers.iter().rev().map(|p| escape(p)).collect();
        let mut options = format!("lowerdir={}", lowers.join(":"));
        if let Some(upper) = &self.upper {
            options.push_str(",upperdir=");
            options.push_str(&escape(&upper.upper));
            options.push_str(",workdir=");
            options.push_str(&escape(&upper.work));
            // A renamed directory is then copied up whole instead of being
            // recorded as a redirect xattr, so the upper directory is a
            // plain diff that `--keep-changes` can export.
            options.push_str(",redirect_dir=off");
        }
        options
    }
}

fn escape(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What mounting needs from the kernel.
pub trait Syscalls: Send + Sync {
    /// Mounts `overlay` at `target` with `flags`.
    fn mount_overlay(&self, overlay: &Overlay, target: &Path, flags: Flags) -> io::Result<()>;

    /// Bind-mounts `root/subpath` onto `target`, resolving `subpath` beneath
    /// `root` without following any symlink (so the bind cannot escape the
    /// volume). An empty `subpath` binds `root` itself.
    fn bind(&self, root: &Path, subpath: &[String], target: &Path) -> io::Result<()>;

    /// Applies `flags` to the bind mount at `target` (a bind mount takes
    /// read-only, noexec, nosuid and nodev only through a remount).
    fn remount_bind(&self, target: &Path, flags: Flags) -> io::Result<()>;

    /// Unmounts `target`; `detach` is `MNT_DETACH` (lazy).
    fn umount(&self, target: &Path, detach: bool) -> io::Result<()>;

    /// Unmounts `target` only if the mount there has the never-reused id
    /// `expected` (see [`Syscalls::unique_mount_id`]), checked on the
    /// object unmounted; else an error for which [`is_other_mount`] holds.
    /// EINVAL when nothing is mounted there any more.
    fn umount_if(&self, target: &Path, expected: u64, detach: bool) -> io::Result<()>;

    /// The mounts this process sees, bottom first (what
    /// `/proc/self/mountinfo` lists): unmounting checks that the mount at
    /// a target is still ferry's.
    fn mounts(&self) -> io::Result<Vec<MountEntry>>;

    /// The never-reused id of the mount at `target` (`None` where the
    /// kernel has none: before Linux 6.8, or nothing mounted there). The
    /// ids mountinfo lists are recycled, so a later mount can carry the
    /// id of one that is gone; these are not.
    fn unique_mount_id(&self, target: &Path) -> io::Result<Option<u64>>;
}

/// The error of [`Syscalls::umount_if`] when another mount is there.
#[derive(Debug)]
struct OtherMount;

impl std::fmt::Display for OtherMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another mount is there")
    }
}

impl std::error::Error for OtherMount {}

/// The error [`Syscalls::umount_if`] gives when the mount at the target
/// is not the one expected.
pub fn other_mount() -> io::Error {
    io::Error::other(OtherMount)
}

/// True for [`other_mount`]'s error.
pub fn is_other_mount(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<OtherMount>())
}

/// The real calls, through rustix.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSyscalls;

/// The source name ferry's overlays carry in `/proc/self/mountinfo`, so a
/// ferry mount is recognisable there.
pub const MOUNT_SOURCE: &str = "ferry";

/// Opens a mount target without following any symlink on its path: a
/// parent directory someone else can write cannot redirect the mount by a
/// symlink swap. ferry passes canonical paths, so a symlink found here was
/// put there after ferry resolved the target, and is refused (ELOOP).
fn open_target(target: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat2(
        CWD,
        target,
        flags,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // Before Linux 5.6: only the last component is checked here; the
        // caller compared the target's identity right before.
        Err(rustix::io::Errno::NOSYS) => Ok(rustix::fs::openat(CWD, target, flags, Mode::empty())?),
        other => Ok(other?),
    }
}

/// Opens the directory holding `target` (an `O_PATH` descriptor, no
/// symlink anywhere on the way) and returns it with the target's name in
/// it: what umount(2) reaches through `/proc/self/fd`.
fn open_target_parent(target: &Path) -> io::Result<(OwnedFd, std::ffi::OsString)> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "a mount target needs a parent");
    let name = target.file_name().ok_or_else(invalid)?.to_os_string();
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(invalid)?;
    // Without O_NOFOLLOW, RESOLVE_NO_SYMLINKS refuses a symlink in the
    // last component too (ELOOP), as everywhere else on the path.
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let parent = match rustix::fs::openat2(
        CWD,
        parent,
        flags,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(rustix::io::Errno::NOSYS) => {
            rustix::fs::openat(CWD, parent, flags | OFlags::NOFOLLOW, Mode::empty())
        }
        other => other,
    }?;
    Ok((parent, name))
}

/// Mounts the overlay with the new mount API: built detached
/// (`fsopen`/`fsconfig`/`fsmount`), then moved onto the target's
/// descriptor (`move_mount`), so no path is looked up at mount time.
/// `lowerdir+` (Linux 6.8) takes each lower as it is, without escaping.
/// `None` when this kernel cannot (no `fsopen`, or an overlayfs without
/// `lowerdir+`): the caller mounts with an option string instead.
fn mount_overlay_at(
    overlay: &Overlay,
    target: BorrowedFd<'_>,
    flags: Flags,
) -> Option<io::Result<()>> {
    use rustix::io::Errno;
    use rustix::mount::{FsMountFlags, FsOpenFlags, MoveMountFlags, fsconfig_set_string};
    let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => fs,
        Err(Errno::NOSYS) => return None,
        // EPERM (no privilege) and ENODEV (no overlayfs) mean the same as
        // they do for mount(2).
        Err(e) => return Some(Err(e.into())),
    };
    let configure = || -> rustix::io::Result<()> {
        fsconfig_set_string(&fs, "source", MOUNT_SOURCE)?;
        // Top first, as overlayfs stacks them.
        for lower in overlay.lowers.iter().rev() {
            fsconfig_set_string(&fs, "lowerdir+", lower.as_path())?;
        }
        if let Some(upper) = &overlay.upper {
            fsconfig_set_string(&fs, "upperdir", upper.upper.as_path())?;
            fsconfig_set_string(&fs, "workdir", upper.work.as_path())?;
            fsconfig_set_string(&fs, "redirect_dir", "off")?;
        }
        rustix::mount::fsconfig_create(&fs)
    };
    match configure() {
        Ok(()) => {}
        Err(Errno::INVAL) => return None,
        Err(e) => return Some(Err(e.into())),
    }
    let attach = || -> rustix::io::Result<()> {
        let mount =
            rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, flags.mount_attrs())?;
        rustix::mount::move_mount(
            &mount,
            "",
            target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Some(attach().map_err(io::Error::from))
}

/// The path through which mount(2) reaches exactly the object `fd` names
/// (the kernel follows this magic link to the object, not to a path).
fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

impl Syscalls for LinuxSyscalls {
    fn mount_overlay(&self, overlay: &Overlay, target: &Path, flags: Flags) -> io::Result<()> {
        let options = std::ffi::CString::new(overlay.options())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in overlay options"))?;
        let target = open_target(target)?;
        if let Some(done) = mount_overlay_at(overlay, target.as_fd(), flags) {
            return done;
        }
        rustix::mount::mount(
            MOUNT_SOURCE,
            fd_path(target.as_fd()).as_str(),
            "overlay",
            flags.mount_flags(),
            options.as_c_str(),
        )?;
        Ok(())
    }

    fn bind(&self, root: &Path, subpath: &[String], target: &Path) -> io::Result<()> {
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if subpath.is_empty() {
            return bind_fd(root_fd.as_fd(), target);
        }
        // RESOLVE_BENEATH refuses `..` and absolute jumps out of the view;
        // RESOLVE_NO_SYMLINKS refuses every symlink on the way, so the
        // bound object is exactly the path the planner looked up.
        let fd = rustix::fs::openat2(
            root_fd.as_fd(),
            subpath.join("/"),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?;
        bind_fd(fd.as_fd(), target)
    }

    fn remount_bind(&self, target: &Path, flags: Flags) -> io::Result<()> {
        // Opened after the bind, the descriptor names the bind mount's root.
        let target = open_target(target)?;
        rustix::mount::mount_remount(
            fd_path(target.as_fd()).as_str(),
            MountFlags::BIND | flags.mount_flags(),
            "",
        )?;
        Ok(())
    }

    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        // umount(2) takes no descriptor, and one held on the target would
        // make the mount busy. The parent is held instead (opened without
        // following any symlink) and the target reached through it: a
        // parent swapped for a symlink or another directory meanwhile
        // cannot redirect the unmount. NOFOLLOW covers the last component.
        let (parent, name) = open_target_parent(target)?;
        crate::race::window("umount: parent opened", &name);
        unmount_in(parent.as_fd(), &name, detach)
    }

    fn umount_if(&self, target: &Path, expected: u64, detach: bool) -> io::Result<()> {
        // With the parent held, the name cannot come to hold another
        // mount: a mount point cannot be renamed, nor renamed onto.
        let (parent, name) = open_target_parent(target)?;
        let found = unique_mount_id_at(parent.as_fd(), &name)?;
        if found != Some(expected) {
            // The parent's own mount: nothing is mounted there any more.
            if found.is_some() && found == unique_mount_id_at(parent.as_fd(), OsStr::new(""))? {
                return Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::INVAL.raw_os_error(),
                ));
            }
            return Err(other_mount());
        }
        unmount_in(parent.as_fd(), &name, detach)
    }

    fn mounts(&self) -> io::Result<Vec<MountEntry>> {
        crate::mountinfo::try_read()
    }

    fn unique_mount_id(&self, target: &Path) -> io::Result<Option<u64>> {
        let target = open_target(target)?;
        unique_mount_id_at(target.as_fd(), OsStr::new(""))
    }
}

/// The never-reused id of the mount `name` in `dir` is on (`dir` itself
/// for an empty name), never following a symlink.
fn unique_mount_id_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<u64>> {
    let flags = match name.is_empty() {
        true => AtFlags::EMPTY_PATH,
        false => AtFlags::SYMLINK_NOFOLLOW,
    };
    let stat = rustix::fs::statx(
        dir,
        name,
        flags,
        StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE),
    )?;
    Ok((stat.stx_mask & STATX_MNT_ID_UNIQUE != 0).then_some(stat.stx_mnt_id))
}

/// Unmounts `name` in `dir`, reached through the descriptor (umount(2)
/// takes none, and one held on the mount itself would make it busy).
fn unmount_in(dir: BorrowedFd<'_>, name: &OsStr, detach: bool) -> io::Result<()> {
    let mut flags = UnmountFlags::NOFOLLOW;
    if detach {
        flags |= UnmountFlags::DETACH;
    }
    let through_parent = Path::new(&fd_path(dir)).join(name);
    rustix::mount::unmount(&through_parent, flags)?;
    Ok(())
}

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8), which rustix does not name yet.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// Binds what an `O_PATH` descriptor names onto the target, both reached
/// through `/proc/self/fd`: the kernel follows those links to the very
/// objects opened, not to paths that could be swapped in between.
fn bind_fd(fd: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    let target = open_target(target)?;
    rustix::mount::mount_bind(fd_path(fd).as_str(), fd_path(target.as_fd()).as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_lowers_top_first_and_escape_separators() {
        let overlay = Overlay {
            lowers: vec!["/s/a".into(), "/s/b:c".into(), "/s/d,e".into()],
            upper: Some(Upper {
                upper: "/m/up".into(),
                work: "/m/work".into(),
            }),
        };
        assert_eq!(
            overlay.options(),
            r"lowerdir=/s/d\,e:/s/b\:c:/s/a,upperdir=/m/up,workdir=/m/work,redirect_dir=off"
        );
    }

    fn is_mounted(path: &Path) -> bool {
        crate::mountinfo::mount_at(&crate::mountinfo::read(), path).is_some()
    }

    fn tmpfs(at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        rustix::mount::mount("tmpfs", at, "tmpfs", MountFlags::empty(), c"").unwrap();
    }

    #[test]
    fn a_parent_swapped_after_the_check_cannot_redirect_an_unmount() {
        if !ferry_testkit::require_root("for real mounts") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let (ours, theirs) = (dir.join("parent/mnt"), dir.join("elsewhere/mnt"));
        tmpfs(&ours);
        tmpfs(&theirs);
        // Once ferry checked the path, the parent becomes a symlink to a
        // directory holding another mount with the same last name.
        let (parent, moved) = (dir.join("parent"), dir.join("parent.old"));
        let link_to = dir.join("elsewhere");
        let _staged = crate::race::staged::stage("umount: parent opened", move |_| {
            std::fs::rename(&parent, &moved).unwrap();
            std::os::unix::fs::symlink(&link_to, &parent).unwrap();
        });
        let result = LinuxSyscalls.umount(&ours, false);
        let theirs_still = is_mounted(&theirs);
        let ours_still = is_mounted(&dir.join("parent.old/mnt"));
        for left in [dir.join("parent.old/mnt"), theirs.clone()] {
            while is_mounted(&left) {
                rustix::mount::unmount(&left, UnmountFlags::DETACH).unwrap();
            }
        }
        result.unwrap();
        assert!(theirs_still, "the other mount was unmounted");
        assert!(!ours_still, "the mount checked is the mount unmounted");
    }

    #[test]
    fn umount_if_unmounts_only_the_mount_with_the_expected_id() {
        if !ferry_testkit::require_root("for real mounts") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = std::fs::canonicalize(dir.path()).unwrap().join("mnt");
        tmpfs(&target);
        let gone = LinuxSyscalls.unique_mount_id(&target).unwrap().unwrap();
        rustix::mount::unmount(&target, UnmountFlags::empty()).unwrap();
        let result = LinuxSyscalls.umount_if(&target, gone, false);
        let nothing_there = result.as_ref().err().and_then(|e| e.raw_os_error());
        tmpfs(&target);
        let other = LinuxSyscalls.umount_if(&target, gone, false);
        let still = is_mounted(&target);
        let now = LinuxSyscalls.unique_mount_id(&target).unwrap().unwrap();
        let ours = LinuxSyscalls.umount_if(&target, now, false);
        while is_mounted(&target) {
            rustix::mount::unmount(&target, UnmountFlags::DETACH).unwrap();
        }
        assert_eq!(nothing_there, Some(libc_einval()), "{result:?}");
        assert!(other.as_ref().is_err_and(is_other_mount), "{other:?}");
        assert!(still, "another mount with the same path is left alone");
        ours.unwrap();
    }

    fn libc_einval() -> i32 {
        rustix::io::Errno::INVAL.raw_os_error()
    }

    #[test]
    fn flags_always_carry_nosuid_and_nodev() {
        let plain = Flags::default().mount_flags();
        assert!(plain.contains(MountFlags::NOSUID | MountFlags::NODEV));
        assert!(!plain.contains(MountFlags::RDONLY));
        let strict = Flags {
            read_only: true,
            noexec: true,
        }
        .mount_flags();
        assert!(strict.contains(MountFlags::RDONLY | MountFlags::NOEXEC | MountFlags::NOSUID));
    }
}
