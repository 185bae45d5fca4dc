//! Helpers shared by ferry's fuzz targets: checks that a directory tree
//! stayed where it belongs.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The names in `dir` (not recursive), sorted.
pub fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// A device and inode, to recognize a file under another name.
pub type FileId = (u64, u64);

/// The identity of the file at `path`.
pub fn file_id(path: &Path) -> FileId {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.dev(), meta.ino())
}

/// Walks `root` without following symlinks and panics unless every entry is
/// a directory, a regular file or a symlink that stays inside `root`; no
/// file has setuid, setgid or sticky bits; and no file is a hardlink to one
/// of `foreign` (files outside the tree). Returns the number of entries.
pub fn check_contained(root: &Path, foreign: &[FileId]) -> usize {
    let canonical_root = fs::canonicalize(root).expect("canonical root");
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata of an entry just listed");
            let kind = meta.file_type();
            count += 1;
            if kind.is_symlink() {
                check_symlink(root, &canonical_root, &path);
                continue;
            }
            assert!(
                kind.is_dir() || kind.is_file(),
                "{} is neither a file, a directory nor a symlink ({kind:?}): device nodes, fifos and sockets must be refused",
                path.display()
            );
            assert_eq!(
                meta.permissions().mode() & 0o7000,
                0,
                "{} has setuid/setgid/sticky bits: {:o}",
                path.display(),
                meta.permissions().mode()
            );
            if kind.is_dir() {
                stack.push(path);
            } else {
                let id = (meta.dev(), meta.ino());
                assert!(
                    !foreign.contains(&id),
                    "{} is a hardlink to a file outside the tree",
                    path.display()
                );
            }
        }
    }
    count
}

fn check_symlink(root: &Path, canonical_root: &Path, link: &Path) {
    let target = fs::read_link(link).expect("reading a symlink");
    assert!(
        !target.is_absolute(),
        "symlink {} has the absolute target {}",
        link.display(),
        target.display()
    );
    // Lexically, from the link's directory, the target must not climb
    // above the root...
    let rel_dir = link
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .expect("a link inside the root");
    let mut depth: Vec<PathBuf> = rel_dir.components().map(|c| c.as_os_str().into()).collect();
    for component in target.components() {
        match component {
            Component::ParentDir => {
                assert!(
                    depth.pop().is_some(),
                    "symlink {} -> {} leaves the tree",
                    link.display(),
                    target.display()
                );
            }
            Component::Normal(part) => depth.push(part.into()),
            _ => {}
        }
    }
    // ...and resolved through whatever symlinks the tree now holds, it
    // must land inside it (a dangling or looping link resolves nowhere).
    if let Ok(resolved) = fs::canonicalize(link) {
        assert!(
            resolved.starts_with(canonical_root),
            "symlink {} -> {} resolves to {}, outside the tree",
            link.display(),
            target.display(),
            resolved.display()
        );
    }
}

/// A fresh temporary directory, on tmpfs when there is one: the code under
/// test fsyncs, and on a disk that costs milliseconds per call.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("ferry-fuzz-")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}
