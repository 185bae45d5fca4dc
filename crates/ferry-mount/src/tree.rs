//! Directory trees built from the layer cache without mounting: merged
//! hardlink trees (the fallback view, and the flattened lower of an
//! artifact with too many layers for one overlay), copies for read-write
//! fallbacks, read-only marking, removal of read-only trees, and the export
//! of an overlay's changes.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

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
/// has the directory, made writable for the owner with [`LinkMode::Copy`].
pub fn merge_into(sources: &[PathBuf], dest: &Path, mode: LinkMode) -> Result<Built> {
    let mut built = Built::default();
    let mut dir_modes = BTreeMap::new();
    for source in sources {
        let meta = fs::metadata(source).ctx("reading", source)?;
        dir_modes.insert(dest.to_path_buf(), meta.mode() & 0o7777);
        apply(source, dest, mode, &mut built, &mut dir_modes)?;
    }
    // Modes last: the build needed writable directories.
    for (dir, dir_mode) in dir_modes {
        let dir_mode = match mode {
            LinkMode::Hardlink => dir_mode,
            LinkMode::Copy => dir_mode | 0o700,
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode))
            .ctx("setting mode of", &dir)?;
    }
    Ok(built)
}

fn apply(
    source: &Path,
    dest: &Path,
    mode: LinkMode,
    built: &mut Built,
    dir_modes: &mut BTreeMap<PathBuf, u32>,
) -> Result<()> {
    for entry in fs::read_dir(source).ctx("reading", source)? {
        let entry = entry.ctx("reading", source)?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).ctx("reading", &from)?;
        let existing = fs::symlink_metadata(&to).ok();
        if meta.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    remove_tree(&to)?;
                    make_dir(&to)?;
                }
                None => make_dir(&to)?,
            }
            dir_modes.insert(to.clone(), meta.mode() & 0o7777);
            apply(&from, &to, mode, built, dir_modes)?;
            continue;
        }
        if existing.is_some() {
            remove_tree(&to)?;
            dir_modes.retain(|dir, _| !dir.starts_with(&to));
        }
        place_entry(&from, &meta, &to, mode, built)?;
    }
    Ok(())
}

fn make_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).ctx("creating", path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).ctx("setting mode of", path)
}

/// Places one non-directory entry of the cache at `to`.
pub fn place_entry(
    from: &Path,
    meta: &fs::Metadata,
    to: &Path,
    mode: LinkMode,
    built: &mut Built,
) -> Result<()> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(from).ctx("reading link", from)?;
        std::os::unix::fs::symlink(&target, to).ctx("creating symlink", to)?;
        return Ok(());
    }
    if !file_type.is_file() {
        return Err(crate::error::MountError::Unsupported(format!(
            "{} in the layer cache is neither a file, a directory nor a symlink",
            from.display()
        )));
    }
    if mode == LinkMode::Hardlink {
        match fs::hard_link(from, to) {
            Ok(()) => {
                built.linked += 1;
                return Ok(());
            }
            // Another filesystem: a private copy keeps the store safe too.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {}
            Err(e) => return Err(e).ctx("linking", to),
        }
    }
    reflink_copy::reflink_or_copy(from, to).ctx("copying to", to)?;
    let file_mode = match mode {
        LinkMode::Hardlink => meta.mode() & 0o7777,
        LinkMode::Copy => (meta.mode() & 0o7777) | 0o200,
    };
    fs::set_permissions(to, fs::Permissions::from_mode(file_mode)).ctx("setting mode of", to)?;
    built.copied += 1;
    Ok(())
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
/// that does not exist is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("reading", path),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).ctx("removing", path);
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .ctx("making writable to remove", path)?;
    }
    for entry in fs::read_dir(path).ctx("reading", path)? {
        let entry = entry.ctx("reading", path)?;
        remove_tree(&entry.path())?;
    }
    fs::remove_dir(path).ctx("removing", path)
}

/// Copies the upper directory of an overlay to `dest` (which must not
/// exist) in the OCI layer-diff form: a deleted entry (overlayfs whiteout,
/// a 0/0 character device) becomes an empty `.wh.NAME` file, and a
/// directory that hides everything below it (`trusted.overlay.opaque`)
/// gets a `.wh..wh..opq` file.
pub fn export_changes(upper: &Path, dest: &Path) -> Result<usize> {
    let meta = fs::metadata(upper).ctx("reading", upper)?;
    fs::create_dir(dest).ctx("creating", dest)?;
    fs::set_permissions(
        dest,
        fs::Permissions::from_mode(meta.mode() & 0o7777 | 0o700),
    )
    .ctx("setting mode of", dest)?;
    let mut count = 0;
    export_dir(upper, dest, &mut count)?;
    Ok(count)
}

fn export_dir(from_dir: &Path, to_dir: &Path, count: &mut usize) -> Result<()> {
    if is_opaque(from_dir) {
        let marker = to_dir.join(".wh..wh..opq");
        fs::File::create(&marker).ctx("creating", &marker)?;
        *count += 1;
    }
    for entry in fs::read_dir(from_dir).ctx("reading", from_dir)? {
        let entry = entry.ctx("reading", from_dir)?;
        let from = entry.path();
        let name = entry.file_name();
        let meta = fs::symlink_metadata(&from).ctx("reading", &from)?;
        let file_type = meta.file_type();
        if file_type.is_char_device() && meta.rdev() == 0 {
            let mut whiteout = std::ffi::OsString::from(".wh.");
            whiteout.push(&name);
            let to = to_dir.join(whiteout);
            fs::File::create(&to).ctx("creating", &to)?;
            *count += 1;
        } else if file_type.is_dir() {
            let to = to_dir.join(&name);
            fs::create_dir(&to).ctx("creating", &to)?;
            export_dir(&from, &to, count)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .ctx("setting mode of", &to)?;
        } else if file_type.is_file() || file_type.is_symlink() {
            let to = to_dir.join(&name);
            let mut built = Built::default();
            place_entry(&from, &meta, &to, LinkMode::Copy, &mut built)?;
            if file_type.is_file() {
                // Keep the mode the writer gave the file, not a widened one.
                fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .ctx("setting mode of", &to)?;
            }
            *count += 1;
        } else {
            tracing::warn!(path = %from.display(), "skipping a special file in the changes");
        }
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value),
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
