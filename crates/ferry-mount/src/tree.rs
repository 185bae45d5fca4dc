//! Directory trees built from the layer cache without mounting: merged
//! hardlink trees (the fallback view, and the flattened lower of an
//! artifact with too many layers for one overlay), copies for read-write
//! fallbacks, read-only marking, removal of read-only trees, and the export
//! of an overlay's changes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::at;
use crate::error::{IoContext, MountError, Result};

pub use crate::at::MAX_DEPTH;

/// How files get from the cache into a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Hardlinks: no data copied, the cache's (read-only) inodes shared.
    Hardlink,
    /// Private copies (reflinks where the filesystem can), writable.
    Copy,
}

/// What building a tree did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Built {
    /// Files hardlinked from the cache.
    pub linked: usize,
    /// Files copied or reflinked (all of them with [`LinkMode::Copy`]; with
    /// [`LinkMode::Hardlink`] only where the tree is on another filesystem).
    pub copied: usize,
}

/// Applies `sources` (directories, bottom first) onto `dest` with overlay
/// semantics: directories merge, anything else replaces what was there
/// (a later layer's file wins, and a file hides a directory below it).
/// `dest` must exist. Directory modes are those of the topmost source that
/// has the directory, made writable for the owner with [`LinkMode::Copy`];
/// setuid, setgid and sticky bits are never carried over. Everything is
/// placed through descriptors, so a symlink swapped into `dest` meanwhile
/// is never followed.
pub fn merge_into(sources: &[PathBuf], dest: &Path, mode: LinkMode) -> Result<Built> {
    let dest_fd = at::open_dir(dest)?;
    merge_into_dir(sources, dest_fd.as_fd(), dest, mode)
}

/// [`merge_into`] the directory `dest_fd` (`dest` is for messages).
pub(crate) fn merge_into_dir(
    sources: &[PathBuf],
    dest_fd: BorrowedFd<'_>,
    dest: &Path,
    mode: LinkMode,
) -> Result<Built> {
    let mut built = Built::default();
    // Modes last, relative to `dest`: the build needed writable directories.
    let mut dir_modes = BTreeMap::new();
    for source in sources {
        let source_fd = at::open_dir(source)?;
        let stat = rustix::fs::fstat(&source_fd)
            .map_err(io::Error::from)
            .ctx("reading", source)?;
        dir_modes.insert(PathBuf::new(), stat.st_mode & 0o777);
        let walk = Walk { source, dest, mode };
        walk.apply(
            source_fd.as_fd(),
            dest_fd,
            Path::new(""),
            &mut built,
            &mut dir_modes,
        )?;
    }
    for (relative, dir_mode) in dir_modes {
        let dir_mode = match mode {
            LinkMode::Hardlink => dir_mode,
            LinkMode::Copy => dir_mode | 0o700,
        };
        let path = at::display(dest, &relative);
        let fd = at::open_beneath(dest_fd, &relative, OFlags::RDONLY | OFlags::DIRECTORY)
            .ctx("opening", &path)?;
        at::set_mode(fd.as_fd(), dir_mode).ctx("setting mode of", &path)?;
    }
    Ok(built)
}

/// One source being merged into a destination (paths for messages only).
struct Walk<'a> {
    source: &'a Path,
    dest: &'a Path,
    mode: LinkMode,
}

impl Walk<'_> {
    fn apply(
        &self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        relative: &Path,
        built: &mut Built,
        dir_modes: &mut BTreeMap<PathBuf, u32>,
    ) -> Result<()> {
        if relative.components().count() >= at::MAX_DEPTH {
            return Err(at::too_deep()).ctx("reading", self.source.join(relative));
        }
        let here = self.source.join(relative);
        for name in at::names(from).ctx("reading", &here)? {
            let name = name.ctx("reading", &here)?;
            let child = relative.join(&name);
            let from_path = self.source.join(&child);
            let to_path = self.dest.join(&child);
            let Some(stat) = at::stat_at(from, &name).ctx("reading", &from_path)? else {
                continue;
            };
            let existing = at::stat_at(to, &name).ctx("reading", &to_path)?;
            if at::kind(&stat) == FileType::Directory {
                match existing {
                    Some(s) if at::kind(&s) == FileType::Directory => {}
                    Some(_) => {
                        at::remove_at(to, &name).ctx("removing", &to_path)?;
                        make_dir(to, &name, &to_path)?;
                    }
                    None => make_dir(to, &name, &to_path)?,
                }
                let (sub_from, opened) =
                    at::open_subdir_stat(from, &name).ctx("opening", &from_path)?;
                dir_modes.insert(child.clone(), opened.st_mode & 0o777);
                let sub_to = at::open_subdir(to, &name).ctx("opening", &to_path)?;
                self.apply(sub_from.as_fd(), sub_to.as_fd(), &child, built, dir_modes)?;
                continue;
            }
            if existing.is_some() {
                at::remove_at(to, &name).ctx("removing", &to_path)?;
                dir_modes.retain(|dir, _| !dir.starts_with(&child));
            }
            place_at(from, &name, &stat, to, &name, self.mode, built)
                .map_err(|e| e.at(&from_path, &to_path))?;
        }
        Ok(())
    }
}

fn make_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
        .map_err(io::Error::from)
        .ctx("creating", path)
}

/// Why placing one entry failed, before the paths are known.
enum PlaceError {
    Io(&'static str, io::Error),
    Special,
}

impl PlaceError {
    fn at(self, from: &Path, to: &Path) -> MountError {
        match self {
            PlaceError::Io(action, source) => MountError::Io {
                action,
                path: to.to_path_buf(),
                source,
            },
            PlaceError::Special => MountError::Unsupported(format!(
                "{} in the layer cache is neither a file, a directory nor a symlink",
                from.display()
            )),
        }
    }
}

fn io_step(action: &'static str) -> impl FnOnce(io::Error) -> PlaceError {
    move |e| PlaceError::Io(action, e)
}

/// Places one non-directory cache entry `name` of `from` as `to_name` in
/// `to`: a symlink verbatim, a file hardlinked or copied (without setuid,
/// setgid or sticky bits; writable by the owner with [`LinkMode::Copy`]).
fn place_at(
    from: BorrowedFd<'_>,
    name: &OsStr,
    stat: &Stat,
    to: BorrowedFd<'_>,
    to_name: &OsStr,
    mode: LinkMode,
    built: &mut Built,
) -> std::result::Result<(), PlaceError> {
    match at::kind(stat) {
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(from, name, Vec::new())
                .map_err(io::Error::from)
                .map_err(io_step("reading link"))?;
            rustix::fs::symlinkat(target.as_c_str(), to, to_name)
                .map_err(io::Error::from)
                .map_err(io_step("creating symlink"))?;
            return Ok(());
        }
        FileType::RegularFile => {}
        _ => return Err(PlaceError::Special),
    }
    if mode == LinkMode::Hardlink {
        match rustix::fs::linkat(from, name, to, to_name, AtFlags::empty()) {
            Ok(()) => {
                built.linked += 1;
                return Ok(());
            }
            // Another filesystem: a private copy keeps the store safe too.
            Err(rustix::io::Errno::XDEV) => {}
            Err(e) => return Err(PlaceError::Io("linking", e.into())),
        }
    }
    // The mode of the file opened and copied, not of the earlier lstat.
    let (source, stat) = at::open_file(from, name).map_err(io_step("opening"))?;
    let copy = at::create_file(to, to_name).map_err(io_step("creating"))?;
    at::copy_contents(&source, &copy).map_err(io_step("copying to"))?;
    let file_mode = match mode {
        LinkMode::Hardlink => stat.st_mode & 0o777,
        LinkMode::Copy => (stat.st_mode & 0o777) | 0o200,
    };
    at::set_mode(copy.as_fd(), file_mode).map_err(io_step("setting mode of"))?;
    built.copied += 1;
    Ok(())
}

/// Places the cache file or symlink `from` at `to` (whose parent exists
/// and which must not exist).
pub fn place_file(from: &Path, to: &Path, mode: LinkMode) -> Result<Built> {
    let (to_dir, to_name) = at::open_parent(to)?;
    place_file_at(from, to_dir.as_fd(), &to_name, to, mode)
}

/// [`place_file`] as `to_name` in the directory `to_dir` (`to` is for
/// messages).
pub(crate) fn place_file_at(
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to_name: &OsStr,
    to: &Path,
    mode: LinkMode,
) -> Result<Built> {
    let (from_dir, from_name) = at::open_parent(from)?;
    let stat = at::stat_at(from_dir.as_fd(), &from_name)
        .ctx("reading", from)?
        .ok_or_else(|| MountError::Io {
            action: "reading",
            path: from.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        })?;
    let mut built = Built::default();
    place_at(
        from_dir.as_fd(),
        &from_name,
        &stat,
        to_dir,
        to_name,
        mode,
        &mut built,
    )
    .map_err(|e| e.at(from, to))?;
    Ok(built)
}

/// Removes the write bits of every file and directory under `root` (and of
/// `root` itself when `include_root`). Symlinks are left alone: their mode
/// means nothing and chmod would follow them.
pub fn make_read_only(root: &Path, include_root: bool) -> Result<()> {
    for entry in fs::read_dir(root).ctx("reading", root)? {
        let entry = entry.ctx("reading", root)?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).ctx("reading", &path)?;
        if meta.is_dir() {
            make_read_only(&path, true)?;
        } else if meta.is_file() && meta.mode() & 0o222 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode() & 0o7555))
                .ctx("setting mode of", &path)?;
        }
    }
    if include_root {
        let meta = fs::symlink_metadata(root).ctx("reading", root)?;
        fs::set_permissions(root, fs::Permissions::from_mode(meta.mode() & 0o7555))
            .ctx("setting mode of", root)?;
    }
    Ok(())
}

/// Removes `path` whatever it is, including trees whose directories were
/// made read-only (their owner may still make them writable first). A path
/// that does not exist is not an error. The walk goes by descriptor and
/// never follows a symlink, whatever is swapped in meanwhile, and handles
/// any depth.
pub fn remove_tree(path: &Path) -> Result<()> {
    at::remove_path(path)
}

/// What copying a tree someone else could write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    /// Entries written (files, symlinks, whiteout markers; directories are
    /// not counted).
    pub copied: usize,
    /// Device nodes, fifos and sockets left out (each logged with why).
    pub skipped: usize,
}

/// Removes the tree at `path` only if it is the object `placed`, else
/// fails with [`MountError::Replaced`]. The object checked is the one
/// emptied and removed (by descriptor), so a swap in between cannot
/// redirect the removal.
pub fn remove_tree_if(path: &Path, placed: crate::record::TreeIdentity) -> Result<()> {
    at::remove_path_if(path, &placed)
}

/// Copies the upper directory of an overlay to `dest` (which must not
/// exist) in the OCI layer-diff form: a deleted entry (overlayfs whiteout,
/// a 0/0 character device) becomes an empty `.wh.NAME` file, and a
/// directory that hides everything below it (`trusted.overlay.opaque`)
/// gets a `.wh..wh..opq` file. See [`export_tree`] for what is kept of
/// each entry.
pub fn export_changes(upper: &Path, dest: &Path) -> Result<Exported> {
    export(upper, dest, true)
}

/// Copies a tree whose content someone else controls (a read-write
/// volume's writes) to `dest`, which must not exist. Every entry is a new,
/// independent object: files are copied (hardlinks become separate files),
/// symlinks recreated verbatim, never followed, and never placed through.
/// Each copy gets the owner of its source, and only then its permission
/// bits, without setuid, setgid or sticky: nobody gains by the copy more
/// than the writer had. Device nodes, fifos and sockets are skipped.
pub fn export_tree(source: &Path, dest: &Path) -> Result<Exported> {
    export(source, dest, false)
}

/// [`export_tree`] of the directory at `source` (a canonical path) only if
/// it is the object `placed`, else [`MountError::Replaced`]. The directory
/// checked is the directory read, so a swap meanwhile cannot substitute
/// another tree for the volume's.
pub fn export_tree_if(
    source: &Path,
    placed: crate::record::TreeIdentity,
    dest: &Path,
) -> Result<Exported> {
    let (parent, name) = at::open_parent_no_symlinks(source)?;
    let source_fd = at::open_subdir(parent.as_fd(), &name).ctx("opening", source)?;
    if crate::record::TreeIdentity::of_fd(&source_fd).ctx("reading", source)? != placed {
        return Err(MountError::Replaced {
            target: source.to_path_buf(),
            found: "another file or directory is there".into(),
        });
    }
    export_from(source_fd, source, dest, false)
}

fn export(source: &Path, dest: &Path, whiteouts: bool) -> Result<Exported> {
    export_from(at::open_dir(source)?, source, dest, whiteouts)
}

fn export_from(
    source_fd: std::os::fd::OwnedFd,
    source: &Path,
    dest: &Path,
    whiteouts: bool,
) -> Result<Exported> {
    let root = rustix::fs::fstat(&source_fd)
        .map_err(io::Error::from)
        .ctx("reading", source)?;
    let (parent, name) = at::open_parent(dest)?;
    make_dir(parent.as_fd(), &name, dest)?;
    let dest_fd = at::open_subdir(parent.as_fd(), &name).ctx("opening", dest)?;
    let export = Export {
        source,
        dest,
        whiteouts,
    };
    let mut out = Exported::default();
    let result = export
        .dir(source_fd.as_fd(), dest_fd.as_fd(), Path::new(""), &mut out)
        .and_then(|()| {
            at::give_owner(dest_fd.as_fd(), root.st_uid, root.st_gid)
                .ctx("setting owner of", dest)?;
            at::set_mode(dest_fd.as_fd(), (root.st_mode & 0o777) | 0o700)
                .ctx("setting mode of", dest)
        });
    if result.is_err() {
        // Nothing half-written: the directory is ferry's, made above.
        if let Err(e) = at::remove_at(parent.as_fd(), &name) {
            tracing::warn!("cannot remove {} after a failed copy: {e}", dest.display());
        }
    }
    result.map(|()| out)
}

/// One export: where from, where to, whether overlay whiteouts are
/// translated.
struct Export<'a> {
    source: &'a Path,
    dest: &'a Path,
    whiteouts: bool,
}

impl Export<'_> {
    fn dir(
        &self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        relative: &Path,
        out: &mut Exported,
    ) -> Result<()> {
        let here = self.source.join(relative);
        if relative.components().count() >= at::MAX_DEPTH {
            return Err(at::too_deep()).ctx("reading", &here);
        }
        if self.whiteouts && is_opaque(from) {
            let marker = OsStr::new(".wh..wh..opq");
            let path = self.dest.join(relative).join(marker);
            let stat = rustix::fs::fstat(from)
                .map_err(io::Error::from)
                .ctx("reading", &here)?;
            self.marker(to, marker, &stat, &path)?;
            out.copied += 1;
        }
        for name in at::names(from).ctx("reading", &here)? {
            let name = name.ctx("reading", &here)?;
            let child = relative.join(&name);
            let from_path = self.source.join(&child);
            let to_path = self.dest.join(&child);
            // The kind decides how to read the entry; what is copied (owner,
            // mode, contents) is taken from the object opened, never from
            // this lstat: the writer can swap entries in between.
            let Some(listed) = at::stat_at(from, &name).ctx("reading", &from_path)? else {
                continue;
            };
            crate::race::window("export: entry listed", &name);
            match at::kind(&listed) {
                FileType::CharacterDevice if self.whiteouts && listed.st_rdev == 0 => {
                    let (_, stat) = at::open_entry(from, &name).ctx("opening", &from_path)?;
                    if at::kind(&stat) != FileType::CharacterDevice || stat.st_rdev != 0 {
                        return Err(at::changed_kind("a whiteout")).ctx("reading", &from_path);
                    }
                    let mut whiteout = std::ffi::OsString::from(".wh.");
                    whiteout.push(&name);
                    let path = self.dest.join(relative).join(&whiteout);
                    self.marker(to, &whiteout, &stat, &path)?;
                    out.copied += 1;
                }
                FileType::Directory => {
                    let (sub_from, stat) =
                        at::open_subdir_stat(from, &name).ctx("opening", &from_path)?;
                    make_dir(to, &name, &to_path)?;
                    let sub_to = at::open_subdir(to, &name).ctx("opening", &to_path)?;
                    self.dir(sub_from.as_fd(), sub_to.as_fd(), &child, out)?;
                    at::give_owner(sub_to.as_fd(), stat.st_uid, stat.st_gid)
                        .ctx("setting owner of", &to_path)?;
                    at::set_mode(sub_to.as_fd(), stat.st_mode & 0o777)
                        .ctx("setting mode of", &to_path)?;
                }
                FileType::RegularFile => {
                    let (source, stat) = at::open_file(from, &name).ctx("opening", &from_path)?;
                    let copy = at::create_file(to, &name).ctx("creating", &to_path)?;
                    at::copy_contents(&source, &copy).ctx("copying to", &to_path)?;
                    // Owner first, then the bits: there is never a moment
                    // with another owner and more rights than it had.
                    at::give_owner(copy.as_fd(), stat.st_uid, stat.st_gid)
                        .ctx("setting owner of", &to_path)?;
                    at::set_mode(copy.as_fd(), stat.st_mode & 0o777)
                        .ctx("setting mode of", &to_path)?;
                    out.copied += 1;
                }
                FileType::Symlink => {
                    let (link, stat) = at::open_entry(from, &name).ctx("opening", &from_path)?;
                    if at::kind(&stat) != FileType::Symlink {
                        return Err(at::changed_kind("a symlink")).ctx("reading", &from_path);
                    }
                    // Read through the descriptor: the target of the very
                    // link whose owner is copied.
                    let target = rustix::fs::readlinkat(&link, "", Vec::new())
                        .map_err(io::Error::from)
                        .ctx("reading link", &from_path)?;
                    rustix::fs::symlinkat(target.as_c_str(), to, &name)
                        .map_err(io::Error::from)
                        .ctx("creating symlink", &to_path)?;
                    at::give_link_owner(to, &name, stat.st_uid, stat.st_gid)
                        .ctx("setting owner of", &to_path)?;
                    out.copied += 1;
                }
                other => {
                    let what = match other {
                        FileType::CharacterDevice | FileType::BlockDevice => "a device node",
                        FileType::Fifo => "a fifo",
                        FileType::Socket => "a socket",
                        _ => "of an unknown type",
                    };
                    tracing::warn!(
                        path = %from_path.display(),
                        "not kept: it is {what}, and only files, directories and symlinks are"
                    );
                    out.skipped += 1;
                }
            }
        }
        Ok(())
    }

    /// An empty marker file with the owner of what it stands for.
    fn marker(&self, dir: BorrowedFd<'_>, name: &OsStr, stat: &Stat, path: &Path) -> Result<()> {
        let file = at::create_file(dir, name).ctx("creating", path)?;
        at::give_owner(file.as_fd(), stat.st_uid, stat.st_gid).ctx("setting owner of", path)?;
        at::set_mode(file.as_fd(), 0o644).ctx("setting mode of", path)
    }
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut value),
        Ok(n) if value[..n] == *b"y"
    )
}

/// True when `dir` is a directory with nothing in it.
pub fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(fs::read_dir(dir).ctx("reading", dir)?.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn later_sources_win_and_directories_merge() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, out) = (t.path().join("a"), t.path().join("b"), t.path().join("out"));
        write(&a.join("shared/one"), "a1");
        write(&a.join("shared/two"), "a2");
        write(&a.join("hidden/x"), "ax");
        write(&b.join("shared/two"), "b2");
        write(&b.join("hidden"), "now a file");
        fs::create_dir(&out).unwrap();
        let built = merge_into(&[a, b], &out, LinkMode::Copy).unwrap();
        assert_eq!(fs::read_to_string(out.join("shared/one")).unwrap(), "a1");
        assert_eq!(fs::read_to_string(out.join("shared/two")).unwrap(), "b2");
        assert_eq!(
            fs::read_to_string(out.join("hidden")).unwrap(),
            "now a file"
        );
        assert_eq!(built.copied, 5, "every file of every source is placed once");
    }

    #[test]
    fn exported_directories_take_owner_and_mode_from_what_was_copied() {
        if !ferry_testkit::require_root("to own files as another user") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (source, kept) = (t.path().join("volume"), t.path().join("kept"));
        // The writer's directory, open to all, and one of root's.
        let (theirs, roots) = (source.join("a"), source.join("b"));
        write(&theirs.join("mine"), "w");
        std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
        write(&roots.join("secret"), "s");
        fs::set_permissions(&roots, fs::Permissions::from_mode(0o700)).unwrap();
        // Right after ferry looked at `a`, the writer swaps the two.
        let mut swapped = false;
        let (a, b) = (theirs.clone(), roots.clone());
        let _staged = crate::race::staged::stage("export: entry listed", move |name| {
            if name == "a" && !swapped {
                swapped = true;
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &a,
                    rustix::fs::CWD,
                    &b,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
            }
        });
        export_tree(&source, &kept).unwrap();
        for name in ["a", "b"] {
            let copy = kept.join(name);
            let meta = fs::symlink_metadata(&copy).unwrap();
            let expected = if copy.join("secret").exists() {
                (0, 0o700)
            } else {
                (1000, 0o777)
            };
            assert_eq!(
                (meta.uid(), meta.mode() & 0o7777),
                expected,
                "{} holds the contents of one directory and the owner of another",
                copy.display()
            );
        }
    }

    #[test]
    fn exported_symlinks_take_their_owner_from_the_link_copied() {
        if !ferry_testkit::require_root("to own files as another user") {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (source, kept) = (t.path().join("volume"), t.path().join("kept"));
        fs::create_dir(&source).unwrap();
        let (theirs, roots) = (source.join("a"), source.join("b"));
        std::os::unix::fs::symlink("their-target", &theirs).unwrap();
        std::os::unix::fs::lchown(&theirs, Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::symlink("roots-target", &roots).unwrap();
        let mut swapped = false;
        let _staged = crate::race::staged::stage("export: entry listed", move |name| {
            if name == "a" && !swapped {
                swapped = true;
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &theirs,
                    rustix::fs::CWD,
                    &roots,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
            }
        });
        export_tree(&source, &kept).unwrap();
        for name in ["a", "b"] {
            let copy = kept.join(name);
            let owner = fs::symlink_metadata(&copy).unwrap().uid();
            let target = fs::read_link(&copy).unwrap();
            let expected = if target == Path::new("roots-target") {
                0
            } else {
                1000
            };
            assert_eq!(
                owner,
                expected,
                "{} -> {}",
                copy.display(),
                target.display()
            );
        }
    }

    #[test]
    fn read_only_trees_can_still_be_removed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        write(&root.join("d/e/f"), "x");
        make_read_only(&root, true).unwrap();
        let mode = fs::metadata(root.join("d/e/f")).unwrap().mode();
        assert_eq!(mode & 0o222, 0);
        assert_eq!(fs::metadata(root.join("d")).unwrap().mode() & 0o222, 0);
        remove_tree(&root).unwrap();
        assert!(!root.exists());
    }
}
