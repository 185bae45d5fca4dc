//! The "files" serialization of OpenSSF model signing: every regular file
//! under the model directory, hashed with SHA-256, named by its relative
//! path, sorted by path components.

use std::path::{Path, PathBuf};

use ferry_spec::digest::hash_file;
use ferry_spec::oci::DigestAlgorithm;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::error::{Result, SignError};

/// What model_signing leaves out of every model by default.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".gitignore", ".github"];

/// How to choose the files of a model.
#[derive(Debug, Clone, Default)]
pub struct HashOptions {
    /// Paths relative to the model directory ('/'-separated) to leave out;
    /// a directory leaves out everything under it. [`GIT_PATHS`] are always
    /// left out.
    pub ignore_paths: Vec<String>,
}

impl HashOptions {
    /// The ignored paths, normalized, with [`GIT_PATHS`], sorted and unique.
    pub fn effective_ignore_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = GIT_PATHS
            .iter()
            .map(|p| p.to_string())
            .chain(self.ignore_paths.iter().map(|p| normalize(p)))
            .filter(|p| !p.is_empty())
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

impl HashOptions {
    /// [`HashOptions::effective_ignore_paths`] with `more` added.
    pub fn with_ignored(&self, more: &[String]) -> Vec<String> {
        let mut options = self.clone();
        options.ignore_paths.extend(more.iter().cloned());
        options.effective_ignore_paths()
    }
}

/// `./a/b/` → `a/b`.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// One hashed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path relative to the model directory, '/'-separated.
    pub name: String,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// The files of a model in model_signing's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Sorted by path components (`a/b` before `a.txt`).
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    /// SHA-256 over the concatenated raw digests, in order: the statement's
    /// subject digest.
    pub fn root_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for entry in &self.files {
            hasher.update(entry.sha256);
        }
        hasher.finalize().into()
    }

    /// `files` in model_signing's order.
    pub fn sorted(mut files: Vec<ManifestEntry>) -> Manifest {
        sort_by_components(&mut files, |e| &e.name);
        Manifest { files }
    }

    /// [`Manifest::root_digest`] as `sha256:<hex>`.
    pub fn root_digest_string(&self) -> String {
        format!("sha256:{}", hex::encode(self.root_digest()))
    }
}

/// Sorts names the way model_signing sorts paths: component by component.
pub(crate) fn sort_by_components<T>(items: &mut [T], name: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| name(a).split('/').cmp(name(b).split('/')));
}

/// Hashes every regular file under `dir` not ignored by `options`, in
/// parallel, each read once through a bounded buffer. Symbolic links and
/// special files are refused.
pub fn hash_model(dir: &Path, options: &HashOptions) -> Result<Manifest> {
    let ignored = options.effective_ignore_paths();
    let mut files = Vec::new();
    collect(dir, "", &ignored, &mut files)?;
    let mut entries = files
        .into_par_iter()
        .map(|(name, path)| {
            let (digest, _) = hash_file(&path, &DigestAlgorithm::Sha256)
                .map_err(|source| SignError::Io { path, source })?;
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(digest.digest(), &mut sha256)
                .map_err(|e| SignError::malformed("file digest", e))?;
            Ok(ManifestEntry { name, sha256 })
        })
        .collect::<Result<Vec<_>>>()?;
    sort_by_components(&mut entries, |e| &e.name);
    Ok(Manifest { files: entries })
}

/// The files under `dir` (named `prefix` relative to the model root).
fn collect(
    dir: &Path,
    prefix: &str,
    ignored: &[String],
    files: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SignError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            return Err(SignError::ModelEntry {
                path,
                reason: "file name is not UTF-8",
            });
        };
        let name = if prefix.is_empty() {
            file_name.to_string()
        } else {
            format!("{prefix}/{file_name}")
        };
        if ignored.iter().any(|ignore| is_under(&name, ignore)) {
            continue;
        }
        // Not followed: a link is refused, never hashed through.
        let file_type = entry.file_type().map_err(io_error(&path))?;
        if file_type.is_symlink() {
            return Err(SignError::ModelEntry {
                path,
                reason: "symbolic link refused (model signing's allow_symlinks is false)",
            });
        } else if file_type.is_dir() {
            collect(&path, &name, ignored, files)?;
        } else if file_type.is_file() {
            files.push((name, path));
        } else {
            return Err(SignError::ModelEntry {
                path,
                reason: "not a regular file or directory",
            });
        }
    }
    Ok(())
}

/// True when `name` is `ignore` or lies under it.
pub(crate) fn is_under(name: &str, ignore: &str) -> bool {
    name.strip_prefix(ignore)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_by_components() {
        let mut names = vec!["a.txt", "a/b", "a/a/z", "A", "b"];
        sort_by_components(&mut names, |n| n);
        assert_eq!(names, ["A", "a/a/z", "a/b", "a.txt", "b"]);
    }

    #[test]
    fn ignore_paths_match_whole_components() {
        assert!(is_under(".git/config", ".git"));
        assert!(is_under(".git", ".git"));
        assert!(!is_under(".gitkeep", ".git"));
        assert!(!is_under("sub/.git", ".git"));
        assert_eq!(normalize("./sub//dir/"), "sub/dir");
    }
}
