//! Finding the files to pack: filters, symlinks, stable order.

use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

use super::hf_cache::Snapshot;
use super::kitignore::KitIgnore;
use super::recipe::below;
use crate::error::{IoContext, Result, StoreError};

/// A file found under the model directory.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the model root, `/`-separated.
    pub rel: String,
    /// What to read: the file itself, or a symlink's resolved target.
    pub read_from: PathBuf,
    /// Set when the file is a symlink kept as a link (tar layers only).
    pub link_target: Option<String>,
    /// Metadata of the file whose bytes are packed.
    pub metadata: fs::Metadata,
}

impl SourceFile {
    /// Opens the bytes to pack: the very file the walk saw (same device and
    /// inode), so a link, fifo or other file put in its place since is
    /// refused rather than read (the scan before pack and the pack itself
    /// read the same file).
    pub fn open(&self) -> Result<fs::File> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let path = &self.read_from;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => StoreError::ChangedWhilePacking(path.clone()),
                _ => StoreError::Io {
                    action: "reading",
                    path: path.clone(),
                    source: e,
                },
            })?;
        let now = file.metadata().ctx("reading", path)?;
        if !now.is_file() || now.dev() != self.metadata.dev() || now.ino() != self.metadata.ino() {
            return Err(StoreError::ChangedWhilePacking(path.clone()));
        }
        Ok(file)
    }
}

/// Opens `path` for reading when it is (or a link leads to) a regular
/// file; a fifo is refused rather than waited on.
pub fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Include/exclude patterns, gitignore-style: a pattern without `/` matches a
/// file name at any depth, one with `/` matches the whole relative path;
/// `**` crosses directories.
#[derive(Debug, Clone)]
pub struct Filter {
    include: GlobSet,
    exclude: GlobSet,
    kit: Option<KitScope>,
}

/// What a Kitfile chooses: every file below the paths it lists, hidden
/// ones too, less what `.kitignore` names.
#[derive(Debug, Clone)]
pub struct KitScope {
    /// The listed paths (`""` for the whole directory).
    pub listed: Vec<String>,
    /// The directory's `.kitignore`.
    pub ignore: KitIgnore,
}

impl Filter {
    /// Compiles the user's patterns.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter> {
        Ok(Filter {
            include: compile(include)?,
            exclude: compile(exclude)?,
            kit: None,
        })
    }

    /// Only what `scope` chooses (and `--exclude` does not).
    pub fn within(self, scope: KitScope) -> Filter {
        Filter {
            kit: Some(scope),
            ..self
        }
    }

    /// True when `rel` should be packed.
    pub fn accepts(&self, rel: &str) -> bool {
        if self.excludes(rel) {
            return false;
        }
        match &self.kit {
            Some(kit) => kit.listed.iter().any(|l| below(rel, l)) && !kit.ignore.ignores(rel),
            None => {
                let name = rel.rsplit('/').next().unwrap_or(rel);
                self.include.is_match(rel)
                    || self.include.is_match(name)
                    || !skipped_by_default(rel)
            }
        }
    }

    /// True when the walk should enter the directory `rel`.
    fn descends(&self, rel: &str) -> bool {
        match &self.kit {
            Some(kit) => {
                !self.excludes(&format!("{rel}/x"))
                    && kit.listed.iter().any(|l| below(rel, l) || below(l, rel))
                    && !(kit.ignore.prunes_directories() && kit.ignore.ignores(rel))
            }
            None => self.accepts(&format!("{rel}/x")),
        }
    }

    fn excludes(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.exclude.is_match(rel) || self.exclude.is_match(name)
    }
}

fn compile(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| StoreError::InvalidGlob {
                pattern: pattern.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| StoreError::InvalidGlob {
        pattern: patterns.join(" "),
        source,
    })
}

/// Hidden files and directories (which covers `.git/`), `__pycache__/` and `*.pyc`.
fn skipped_by_default(rel: &str) -> bool {
    rel.split('/')
        .any(|part| part.starts_with('.') || part == "__pycache__")
        || rel.ends_with(".pyc")
}

/// Whether symlinks become links (tar layers) or their targets' bytes (raw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymlinkMode {
    /// Read the target's bytes.
    Follow,
    /// Keep the link itself.
    Keep,
}

/// Where a symlink may lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reach {
    /// Inside the model directory; for a Hugging Face cache snapshot also
    /// into its own repository's `blobs/` (see [`super::hf_cache`]).
    #[default]
    Contained,
    /// To a regular file anywhere (`--follow-symlinks`).
    Anywhere,
}

/// Where the links of one walk may lead, resolved once.
struct Bounds {
    /// The model directory, canonical.
    root: PathBuf,
    /// A canonical directory outside it whose files links may name.
    blobs: Option<PathBuf>,
    anywhere: bool,
}

impl Bounds {
    fn new(root: &Path, reach: Reach) -> Result<Bounds> {
        let canonical = fs::canonicalize(root).ctx("resolving", root)?;
        let blobs = Snapshot::from_path(&canonical).and_then(|s| s.blobs_dir());
        Ok(Bounds {
            root: canonical,
            blobs,
            anywhere: reach == Reach::Anywhere,
        })
    }

    /// True when a link outside the root may be followed to `target`
    /// (canonical, so neither `..` nor a chain of links gets past this).
    fn may_follow_outside(&self, target: &Path) -> bool {
        self.anywhere || self.blobs.as_ref().is_some_and(|b| target.starts_with(b))
    }

    /// Where links may lead, for an error message.
    fn describe(&self) -> String {
        match &self.blobs {
            Some(blobs) => format!(
                "the model directory and its Hugging Face repository's {}",
                blobs.display()
            ),
            None => "the model directory".to_string(),
        }
    }
}

/// Walks `root` and returns the files to pack, sorted by relative path.
pub fn collect_files(
    root: &Path,
    filter: &Filter,
    skip: &[String],
    symlinks: SymlinkMode,
    reach: Reach,
) -> Result<Vec<SourceFile>> {
    let meta = fs::metadata(root).ctx("reading model directory", root)?;
    if !meta.is_dir() {
        return Err(StoreError::NotADirectory(root.to_path_buf()));
    }
    let bounds = Bounds::new(root, reach)?;
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            // Prune skipped directories early (.git can be huge).
            let Ok(rel) = e.path().strip_prefix(root) else {
                return true;
            };
            let rel = rel.to_string_lossy();
            rel.is_empty() || !e.file_type().is_dir() || filter.descends(&rel)
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.into());
            match e.into_io_error() {
                Some(source) => StoreError::Io {
                    action: "reading",
                    path,
                    source,
                },
                None => StoreError::FilesystemLoop(path),
            }
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = relative_string(root, entry.path())?;
        if !filter.accepts(&rel) || skip.iter().any(|s| s == &rel) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_symlink() {
            files.push(symlink_source(&bounds, path, rel, symlinks)?);
        } else if entry.file_type().is_file() {
            let metadata = fs::metadata(path).ctx("reading", path)?;
            files.push(SourceFile {
                rel,
                read_from: path.to_path_buf(),
                link_target: None,
                metadata,
            });
        } else {
            return Err(StoreError::SpecialFile(path.to_path_buf()));
        }
    }
    if files.is_empty() {
        return Err(StoreError::NoFiles(root.to_path_buf()));
    }
    Ok(files)
}

fn relative_string(root: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| StoreError::OutsideModel(path.to_path_buf()))?;
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| StoreError::NonUtf8Path(path.to_path_buf()))?,
            ),
            _ => {
                return Err(StoreError::OutsideModel(path.to_path_buf()));
            }
        }
    }
    Ok(parts.join("/"))
}

/// What to read for `path`, an entry of the directory `root` that is
/// not walked (a recipe): itself when it is a regular file, a link's
/// target when the walk would follow that link, else the walk's error.
pub(super) fn readable_in(root: &Path, path: &Path, reach: Reach) -> Result<PathBuf> {
    let metadata = fs::symlink_metadata(path).ctx("reading", path)?;
    if metadata.is_file() {
        return Ok(path.to_path_buf());
    }
    if !metadata.is_symlink() {
        return Err(StoreError::SpecialFile(path.to_path_buf()));
    }
    let bounds = Bounds::new(root, reach)?;
    let rel = relative_string(root, path)?;
    Ok(symlink_source(&bounds, path, rel, SymlinkMode::Follow)?.read_from)
}

fn symlink_source(
    bounds: &Bounds,
    path: &Path,
    rel: String,
    mode: SymlinkMode,
) -> Result<SourceFile> {
    let target = fs::canonicalize(path).map_err(|source| StoreError::BrokenSymlink {
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(target_rel) = target.strip_prefix(&bounds.root) else {
        return outside_source(bounds, path, target, rel);
    };
    let metadata = fs::metadata(&target).ctx("reading", &target)?;
    match mode {
        SymlinkMode::Follow => {
            if !metadata.is_file() {
                return Err(StoreError::SymlinkToDirectory(path.to_path_buf()));
            }
            Ok(SourceFile {
                rel,
                read_from: target,
                link_target: None,
                metadata,
            })
        }
        SymlinkMode::Keep => {
            // A kept link is still read under its name (the scan, metadata
            // detection): one to a fifo or device would block them.
            if !metadata.is_file() && !metadata.is_dir() {
                return Err(StoreError::SymlinkToSpecialFile {
                    path: path.to_path_buf(),
                    target,
                });
            }
            let target_rel = target_rel.to_string_lossy().replace('\\', "/");
            let link_parent = rel.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
            let link_metadata = fs::symlink_metadata(path).ctx("reading", path)?;
            Ok(SourceFile {
                link_target: Some(relative_link(link_parent, &target_rel)),
                rel,
                read_from: path.to_path_buf(),
                metadata: link_metadata,
            })
        }
    }
}

/// A link out of the model directory: packed as the regular file it names
/// (in either [`SymlinkMode`]: a link out of the artifact would dangle),
/// with that file's metadata, which is what a loader reads.
fn outside_source(
    bounds: &Bounds,
    path: &Path,
    target: PathBuf,
    rel: String,
) -> Result<SourceFile> {
    if !bounds.may_follow_outside(&target) {
        return Err(StoreError::SymlinkEscapes {
            path: path.to_path_buf(),
            target,
            allowed: bounds.describe(),
        });
    }
    let metadata = fs::metadata(&target).ctx("reading", &target)?;
    if !metadata.is_file() {
        return Err(StoreError::SymlinkOutsideNotAFile {
            path: path.to_path_buf(),
            target,
        });
    }
    Ok(SourceFile {
        rel,
        read_from: target,
        link_target: None,
        metadata,
    })
}

/// The relative link text that leads from directory `from_dir` to `to`,
/// both relative to the model root.
pub fn relative_link(from_dir: &str, to: &str) -> String {
    let from: Vec<&str> = from_dir.split('/').filter(|s| !s.is_empty()).collect();
    let to_parts: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to_parts[common..]);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_skips_hidden_pycache_and_pyc() {
        let f = Filter::new(&[], &[]).unwrap();
        assert!(f.accepts("model.safetensors"));
        assert!(f.accepts("1_Pooling/config.json"));
        assert!(!f.accepts(".git/HEAD"));
        assert!(!f.accepts("a/.hidden"));
        assert!(!f.accepts("src/__pycache__/x.cpython-311.pyc"));
        assert!(!f.accepts("x.pyc"));
    }

    #[test]
    fn include_overrides_defaults_and_exclude_wins() {
        let f = Filter::new(
            &[".gitattributes".into()],
            &["**/*.bin".into(), "*.onnx".into()],
        )
        .unwrap();
        assert!(f.accepts(".gitattributes"));
        assert!(!f.accepts("sub/pytorch_model.bin"));
        assert!(!f.accepts("pytorch_model.bin"));
        assert!(!f.accepts("deep/a/model.onnx"));
        assert!(f.accepts("model.safetensors"));
    }

    /// A cache with two model repos; `org/m`'s snapshot links into its
    /// blobs (one from a subdirectory) and returns the snapshot.
    fn hf_cache(root: &Path) -> PathBuf {
        use std::os::unix::fs::symlink;
        let repo = root.join("models--org--m");
        let snapshot = repo.join("snapshots/0123456789abcdef0123456789abcdef01234567");
        fs::create_dir_all(snapshot.join("sub")).unwrap();
        fs::create_dir_all(repo.join("blobs")).unwrap();
        fs::create_dir_all(root.join("models--org--other/blobs")).unwrap();
        fs::write(repo.join("blobs/aa"), b"{}").unwrap();
        fs::write(repo.join("blobs/bb"), b"weights").unwrap();
        fs::write(root.join("models--org--other/blobs/cc"), b"other").unwrap();
        symlink("../../blobs/aa", snapshot.join("config.json")).unwrap();
        symlink("../../../blobs/bb", snapshot.join("sub/x.bin")).unwrap();
        snapshot
    }

    #[test]
    fn snapshot_links_into_their_own_blobs_are_followed_in_both_modes() {
        let root = tempfile::tempdir().unwrap();
        let snapshot = hf_cache(root.path());
        let filter = Filter::new(&[], &[]).unwrap();
        let blobs = fs::canonicalize(root.path().join("models--org--m/blobs")).unwrap();
        for mode in [SymlinkMode::Follow, SymlinkMode::Keep] {
            let files = collect_files(&snapshot, &filter, &[], mode, Reach::Contained).unwrap();
            let seen: Vec<(&str, PathBuf, bool)> = files
                .iter()
                .map(|f| (f.rel.as_str(), f.read_from.clone(), f.link_target.is_none()))
                .collect();
            assert_eq!(
                seen,
                [
                    ("config.json", blobs.join("aa"), true),
                    ("sub/x.bin", blobs.join("bb"), true),
                ],
                "{mode:?}"
            );
            assert_eq!(files[1].metadata.len(), 7, "the blob's metadata");
        }
    }

    #[test]
    fn snapshot_links_elsewhere_are_refused_unless_anywhere() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let snapshot = hf_cache(root.path());
        let filter = Filter::new(&[], &[]).unwrap();
        // Another repo's blob, through a `..` detour via this repo's blobs.
        symlink(
            "../../blobs/../../models--org--other/blobs/cc",
            snapshot.join("other.bin"),
        )
        .unwrap();
        let error = collect_files(
            &snapshot,
            &filter,
            &[],
            SymlinkMode::Follow,
            Reach::Contained,
        )
        .unwrap_err();
        assert!(
            matches!(&error, StoreError::SymlinkEscapes { path, .. } if path.ends_with("other.bin")),
            "{error}"
        );
        assert!(error.to_string().contains("--follow-symlinks"), "{error}");
        let files = collect_files(
            &snapshot,
            &filter,
            &[],
            SymlinkMode::Follow,
            Reach::Anywhere,
        )
        .unwrap();
        assert_eq!(files.len(), 3);
        // Outside, only regular files are followed.
        fs::remove_file(snapshot.join("other.bin")).unwrap();
        symlink(root.path(), snapshot.join("dir")).unwrap();
        let error =
            collect_files(&snapshot, &filter, &[], SymlinkMode::Keep, Reach::Anywhere).unwrap_err();
        assert!(
            matches!(error, StoreError::SymlinkOutsideNotAFile { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_tree_that_only_looks_like_a_cache_gets_no_exception() {
        let root = tempfile::tempdir().unwrap();
        let snapshot = hf_cache(root.path());
        // Same links, but the directory is not named by a commit.
        let renamed = snapshot.with_file_name("main");
        fs::rename(&snapshot, &renamed).unwrap();
        let filter = Filter::new(&[], &[]).unwrap();
        let error = collect_files(
            &renamed,
            &filter,
            &[],
            SymlinkMode::Follow,
            Reach::Contained,
        )
        .unwrap_err();
        assert!(
            matches!(error, StoreError::SymlinkEscapes { .. }),
            "{error}"
        );
    }

    #[test]
    fn open_refuses_what_took_the_walked_file_s_place() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("m");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("w.bin"), b"walked").unwrap();
        let filter = Filter::new(&[], &[]).unwrap();
        let walked =
            collect_files(&dir, &filter, &[], SymlinkMode::Follow, Reach::Contained).unwrap();
        let mut read = String::new();
        std::io::Read::read_to_string(&mut walked[0].open().unwrap(), &mut read).unwrap();
        assert_eq!(read, "walked");

        // Another file renamed over it, then a link to a file outside.
        let other = root.path().join("other");
        fs::write(&other, b"swapped").unwrap();
        fs::rename(&other, dir.join("w.bin")).unwrap();
        let error = walked[0].open().unwrap_err();
        assert!(
            matches!(error, StoreError::ChangedWhilePacking(_)),
            "{error}"
        );
        fs::remove_file(dir.join("w.bin")).unwrap();
        fs::write(&other, b"secret").unwrap();
        std::os::unix::fs::symlink(&other, dir.join("w.bin")).unwrap();
        let error = walked[0].open().unwrap_err();
        assert!(
            matches!(error, StoreError::ChangedWhilePacking(_)),
            "{error}"
        );
    }

    #[test]
    fn relative_links_climb_and_descend() {
        assert_eq!(relative_link("", "a/b"), "a/b");
        assert_eq!(relative_link("x/y", "x/z"), "../z");
        assert_eq!(relative_link("x", "y/z"), "../y/z");
    }
}
