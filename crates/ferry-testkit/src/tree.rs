//! Directory trees as values: snapshot one, compare two, copy one.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// One entry of a directory tree, as compared after a round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory and its permission bits.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file: permission bits, size and `sha256:` digest.
    File {
        /// Permission bits.
        mode: u32,
        /// Length in bytes.
        size: u64,
        /// `sha256:<hex>` of the content.
        digest: String,
    },
    /// A symbolic link and its target text.
    Link {
        /// The link's target as stored.
        target: PathBuf,
    },
}

/// Every entry under `root` (not `root` itself) by `/`-separated relative
/// path; symbolic links are recorded as links.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, "", false, &mut out);
    out
}

/// Like [`tree`], but a symbolic link is recorded as what it points to (a
/// link to a directory is not descended into).
pub fn tree_following_links(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, "", true, &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, follow: bool, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display())))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        let own =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let meta = if follow && own.file_type().is_symlink() {
            fs::metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        } else {
            own.clone()
        };
        out.insert(rel.clone(), node(&path, &meta));
        if own.is_dir() {
            walk(&path, &format!("{rel}/"), follow, out);
        }
    }
}

fn node(path: &Path, meta: &Metadata) -> Node {
    let mode = meta.mode() & 0o7777;
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()));
        Node::Link { target }
    } else if meta.is_dir() {
        Node::Dir { mode }
    } else if meta.is_file() {
        Node::File {
            mode,
            size: meta.len(),
            digest: sha256_file(path),
        }
    } else {
        panic!("unexpected file type at {}", path.display())
    }
}

/// The entries of a tree that are not directories (for comparing where
/// directory modes are not the code under test's to keep).
pub fn files_only(tree: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    tree.into_iter()
        .filter(|(_, n)| !matches!(n, Node::Dir { .. }))
        .collect()
}

/// Asserts two trees hold the same entries, naming the first difference.
pub fn assert_same_tree(expected: &BTreeMap<String, Node>, actual: &BTreeMap<String, Node>) {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "trees differ: missing {missing:?}, unexpected {extra:?}"
    );
    for (path, node) in expected {
        assert_eq!(Some(node), actual.get(path), "entry {path} differs");
    }
}

/// The regular files (relative path -> size) under `dir`.
pub fn file_sizes(dir: &Path) -> BTreeMap<String, u64> {
    tree(dir)
        .into_iter()
        .filter_map(|(path, node)| match node {
            Node::File { size, .. } => Some((path, size)),
            _ => None,
        })
        .collect()
}

/// Every path under `dir`, relative and sorted; empty when `dir` does not
/// exist (unreadable directories are left out, not an error).
pub fn paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Copies the tree `from` to `to` (created with its parents; an existing
/// `to` should be empty), keeping permission bits, symbolic links and
/// modification times, like `cp -a` without the ownership.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to)
        .and_then(|()| copy_dir(from, to))
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

/// Copies the contents of `from` into the existing directory `to`.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            symlink(fs::read_link(&source)?, &target)?;
        } else if kind.is_dir() {
            fs::create_dir(&target)?;
            copy_dir(&source, &target)?;
        } else {
            fs::copy(&source, &target)?;
            // Setting times needs ownership, not write permission.
            File::open(&target)?.set_modified(fs::metadata(&source)?.modified()?)?;
        }
    }
    let meta = fs::metadata(from)?;
    fs::set_permissions(to, meta.permissions())?;
    File::open(to)?.set_modified(meta.modified()?)
}

/// `sha256:` and the hex digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:` and the hex digest of a file, streamed.
pub fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_copy_has_the_same_tree() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub/deeper")).unwrap();
        fs::write(src.join("a.txt"), "a").unwrap();
        fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.join("sub/deeper/secret"), "s").unwrap();
        fs::set_permissions(
            src.join("sub/deeper/secret"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        symlink("../a.txt", src.join("sub/link")).unwrap();
        let dst = dir.path().join("new/dst");
        copy_tree(&src, &dst);
        assert_same_tree(&tree(&src), &tree(&dst));
        assert_eq!(
            fs::metadata(src.join("a.txt")).unwrap().modified().unwrap(),
            fs::metadata(dst.join("a.txt")).unwrap().modified().unwrap()
        );
        let followed = tree_following_links(&dst);
        assert!(matches!(followed["sub/link"], Node::File { size: 1, .. }));
        assert_eq!(file_sizes(&dst).len(), 3);
        assert_eq!(paths(&dst).len(), 6);
        assert!(paths(&dir.path().join("missing")).is_empty());
        assert_eq!(
            sha256_file(&dst.join("a.txt")),
            sha256(b"a"),
            "the streamed digest matches"
        );
    }
}
