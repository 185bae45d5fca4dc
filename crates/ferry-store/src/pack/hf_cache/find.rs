//! Finding a model's snapshot in the cache: the cache root, the revision
//! (commit, prefix or ref), and errors that say what was looked for and
//! what is there.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::{RepoId, RepoType, is_commit_hash};
use crate::error::{IoContext, Result, StoreError};

/// How many names an error lists before it says how many more there are.
const LISTED: usize = 20;

/// The most of a ref file read: a hash, a newline, room for a mistake.
const MAX_REF_BYTES: u64 = 256;

/// Why a cache lookup found nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum HfCacheError {
    /// Not `ORG/NAME[@REV]` as the hub spells repo ids.
    #[error("invalid Hugging Face repo id {input:?}: {reason}")]
    InvalidRepoId {
        /// What the user typed.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No cache directory could be named (no variable set, no `$HOME`).
    #[error(
        "no Hugging Face cache: set HF_HUB_CACHE, HF_HOME or HOME (looked for HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HOME)"
    )]
    NoCacheRoot,
    /// The repository's folder is not in the cache.
    #[error("{id} is not in the Hugging Face cache: {} does not exist ({})", path.display(), present(cache, "models", available))]
    RepoNotFound {
        /// The repo id looked for.
        id: String,
        /// The folder looked for.
        path: PathBuf,
        /// The cache root.
        cache: PathBuf,
        /// The model repo ids the cache holds.
        available: Vec<String>,
    },
    /// The revision is neither a ref, a snapshot nor a unique prefix of one.
    #[error("{id}: revision {revision:?} is not in the cache: neither {} nor {} exists (refs: {}; snapshots: {})", ref_path.display(), snapshot_path.display(), listed(refs), listed(snapshots))]
    RevisionNotFound {
        /// The repo id.
        id: String,
        /// What the user asked for.
        revision: String,
        /// The ref file looked for.
        ref_path: PathBuf,
        /// The snapshot looked for.
        snapshot_path: PathBuf,
        /// The refs present.
        refs: Vec<String>,
        /// The snapshots present.
        snapshots: Vec<String>,
    },
    /// A commit prefix that matches more than one snapshot.
    #[error(
        "{id}: revision {revision:?} matches several snapshots: {}",
        listed(matches)
    )]
    AmbiguousRevision {
        /// The repo id.
        id: String,
        /// The prefix.
        revision: String,
        /// The snapshots it matches.
        matches: Vec<String>,
    },
    /// A ref file that does not hold a commit hash.
    #[error("{} does not hold a commit hash (it holds {content:?})", path.display())]
    BadRef {
        /// The ref file.
        path: PathBuf,
        /// Its content, trimmed.
        content: String,
    },
    /// A ref names a commit whose snapshot was not downloaded (or was deleted).
    #[error("{id}: ref {revision} ({}) names commit {commit}, but {} does not exist (snapshots: {})", ref_path.display(), snapshot_path.display(), listed(snapshots))]
    SnapshotMissing {
        /// The repo id.
        id: String,
        /// The ref.
        revision: String,
        /// The ref file read.
        ref_path: PathBuf,
        /// The commit it names.
        commit: String,
        /// The snapshot looked for.
        snapshot_path: PathBuf,
        /// The snapshots present.
        snapshots: Vec<String>,
    },
}

impl From<HfCacheError> for StoreError {
    fn from(error: HfCacheError) -> StoreError {
        StoreError::HfCache(Box::new(error))
    }
}

fn listed(names: &[String]) -> String {
    match names.len() {
        0 => "none".to_string(),
        n if n <= LISTED => names.join(", "),
        n => format!("{}, and {} more", names[..LISTED].join(", "), n - LISTED),
    }
}

fn present(cache: &Path, what: &str, names: &[String]) -> String {
    if names.is_empty() && !cache.is_dir() {
        return format!("the cache {} does not exist", cache.display());
    }
    format!("{what} in {}: {}", cache.display(), listed(names))
}

/// The cache root as huggingface_hub picks it: `$HF_HUB_CACHE`, else
/// `$HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
/// An empty variable counts as unset; a leading `~` is the home directory.
pub fn cache_root(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    let home = get("HOME").map(PathBuf::from);
    let expand = |value: OsString| -> PathBuf {
        let path = PathBuf::from(value);
        match (path.strip_prefix("~"), &home) {
            (Ok(rest), Some(home)) => home.join(rest),
            _ => path,
        }
    };
    if let Some(dir) = get("HF_HUB_CACHE").or_else(|| get("HUGGINGFACE_HUB_CACHE")) {
        return Some(expand(dir));
    }
    if let Some(dir) = get("HF_HOME") {
        return Some(expand(dir).join("hub"));
    }
    let cache = match get("XDG_CACHE_HOME") {
        Some(dir) => expand(dir),
        None => home?.join(".cache"),
    };
    Some(cache.join("huggingface/hub"))
}

/// A model in the cache at a revision: `org/name[@revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The model.
    pub repo: RepoId,
    /// A commit hash, a unique prefix of one, or a ref name.
    pub revision: String,
}

impl Request {
    /// The snapshot directory this names in `cache` ([`find_snapshot`]).
    pub fn find_in(&self, cache: &Path) -> Result<PathBuf> {
        find_snapshot(cache, &self.repo, &self.revision)
    }
}

/// Splits `org/name[@revision]`; the revision defaults to `main`.
pub fn parse_request(input: &str) -> Result<Request> {
    let (id, revision) = match input.split_once('@') {
        Some((id, revision)) => (id, revision),
        None => (input, "main"),
    };
    if !valid_revision(revision) {
        return Err(HfCacheError::InvalidRepoId {
            input: input.to_string(),
            reason: "the revision after '@' must be a commit hash or a ref name without '.' or '..' components",
        }
        .into());
    }
    Ok(Request {
        repo: RepoId::model(id)?,
        revision: revision.to_string(),
    })
}

/// A ref name (`main`, `v1.0`, `refs/pr/1`) or a commit: relative, plain
/// components only, so it cannot lead out of `refs/` or `snapshots/`.
fn valid_revision(revision: &str) -> bool {
    !revision.is_empty()
        && !revision.contains(['\\', '\0'])
        && revision
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && Path::new(revision)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Finds the snapshot directory of `repo` at `revision` in `cache`: a
/// commit hash, a ref name (read from `refs/`), or a unique commit prefix
/// of at least 7 characters.
pub fn find_snapshot(cache: &Path, repo: &RepoId, revision: &str) -> Result<PathBuf> {
    let repo_dir = cache.join(repo.folder_name());
    if !repo_dir.is_dir() {
        return Err(HfCacheError::RepoNotFound {
            id: repo.id.clone(),
            path: repo_dir,
            cache: cache.to_path_buf(),
            available: cached_models(cache),
        }
        .into());
    }
    let snapshots_dir = repo_dir.join("snapshots");
    let snapshots = names_in(&snapshots_dir);
    let snapshot_path = snapshots_dir.join(revision);
    if is_commit_hash(revision) && snapshot_path.is_dir() {
        return Ok(snapshot_path);
    }
    let ref_path = repo_dir.join("refs").join(revision);
    if ref_path.is_file() {
        // A ref holds a 40-character hash: read no more than a little past
        // it, whatever file the name leads to.
        let mut bytes = Vec::new();
        fs::File::open(&ref_path)
            .and_then(|f| f.take(MAX_REF_BYTES).read_to_end(&mut bytes))
            .ctx("reading", &ref_path)?;
        let text = String::from_utf8_lossy(&bytes);
        let commit = text.trim();
        if !is_commit_hash(commit) {
            return Err(HfCacheError::BadRef {
                path: ref_path,
                content: commit.chars().take(80).collect(),
            }
            .into());
        }
        let path = snapshots_dir.join(commit);
        if path.is_dir() {
            return Ok(path);
        }
        return Err(HfCacheError::SnapshotMissing {
            id: repo.id.clone(),
            revision: revision.to_string(),
            ref_path,
            commit: commit.to_string(),
            snapshot_path: path,
            snapshots,
        }
        .into());
    }
    let is_prefix = revision.len() >= 7 && revision.len() < 40 && is_hex(revision);
    let matches: Vec<String> = snapshots
        .iter()
        .filter(|s| is_prefix && s.starts_with(revision) && is_commit_hash(s))
        .cloned()
        .collect();
    match matches.as_slice() {
        [one] => Ok(snapshots_dir.join(one)),
        [] => Err(HfCacheError::RevisionNotFound {
            id: repo.id.clone(),
            revision: revision.to_string(),
            ref_path,
            snapshot_path,
            refs: refs_in(&repo_dir.join("refs")),
            snapshots,
        }
        .into()),
        _ => Err(HfCacheError::AmbiguousRevision {
            id: repo.id.clone(),
            revision: revision.to_string(),
            matches,
        }
        .into()),
    }
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Sorted entry names of `dir`; empty when it cannot be read (the list
/// only makes an error message more helpful).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The ref names under `refs/` (`main`, `refs/pr/1`), sorted.
fn refs_in(dir: &Path) -> Vec<String> {
    let mut refs: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(dir).ok()?;
            Some(rel.to_str()?.to_string())
        })
        .collect();
    refs.sort();
    refs
}

/// The model repo ids the cache holds.
fn cached_models(cache: &Path) -> Vec<String> {
    names_in(cache)
        .iter()
        .filter_map(|name| RepoId::from_folder_name(name))
        .filter(|repo| repo.repo_type == RepoType::Model)
        .map(|repo| repo.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn requests_parse_and_reject_escapes() {
        let request = parse_request("org/m").unwrap();
        assert_eq!(request.repo.id, "org/m");
        assert_eq!(request.revision, "main");
        assert_eq!(request.repo.folder_name(), "models--org--m");
        let request = parse_request("gpt2@refs/pr/1").unwrap();
        assert_eq!(request.repo.id, "gpt2");
        assert_eq!(request.revision, "refs/pr/1");
        for bad in [
            "",
            "a/b/c",
            "org/m@",
            "org/m@../x",
            "org/m@/etc",
            "org/a--b",
            "../m",
            "org/m@a//b",
            "-org/m",
            "org/m.",
        ] {
            assert!(parse_request(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn cache_root_follows_huggingface_hub_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let all = [
            ("HF_HUB_CACHE", "/a"),
            ("HUGGINGFACE_HUB_CACHE", "/b"),
            ("HF_HOME", "/c"),
            ("XDG_CACHE_HOME", "/d"),
            ("HOME", "/home/u"),
        ];
        for (skip, expected) in [
            (0, "/a"),
            (1, "/b"),
            (2, "/c/hub"),
            (3, "/d/huggingface/hub"),
            (4, "/home/u/.cache/huggingface/hub"),
        ] {
            let pairs: &'static [(&str, &str)] = Vec::leak(all[skip..].to_vec());
            assert_eq!(cache_root(env(pairs)), Some(PathBuf::from(expected)));
        }
        assert_eq!(
            cache_root(env(&[
                ("HF_HUB_CACHE", ""),
                ("HF_HOME", "~/hf"),
                ("HOME", "/h")
            ])),
            Some(PathBuf::from("/h/hf/hub")),
            "empty counts as unset; ~ is HOME"
        );
        assert_eq!(cache_root(env(&[])), None);
    }

    #[test]
    fn find_snapshot_by_hash_ref_and_prefix_with_clear_errors() {
        let cache = tempfile::tempdir().unwrap();
        let repo_dir = cache.path().join("models--org--m");
        let other = "0123456789abcdef0123456789abcdef0123ffff";
        fs::create_dir_all(repo_dir.join("snapshots").join(COMMIT)).unwrap();
        fs::create_dir_all(repo_dir.join("snapshots").join(other)).unwrap();
        fs::create_dir_all(repo_dir.join("refs/refs/pr")).unwrap();
        fs::write(repo_dir.join("refs/main"), COMMIT).unwrap();
        fs::write(repo_dir.join("refs/refs/pr/1"), format!("{other}\n")).unwrap();
        fs::write(repo_dir.join("refs/broken"), "not a hash").unwrap();
        fs::write(repo_dir.join("refs/stale"), "f".repeat(40)).unwrap();
        let repo = RepoId::model("org/m").unwrap();
        let find = |rev: &str| find_snapshot(cache.path(), &repo, rev);
        let snapshot = repo_dir.join("snapshots").join(COMMIT);
        assert_eq!(find("main").unwrap(), snapshot);
        assert_eq!(find(COMMIT).unwrap(), snapshot);
        assert_eq!(find(&COMMIT[..38]).unwrap(), snapshot);
        assert_eq!(
            find("refs/pr/1").unwrap(),
            repo_dir.join("snapshots").join(other)
        );

        let error = find("0123456").unwrap_err().to_string();
        assert!(error.contains("matches several snapshots"), "{error}");
        let error = find("v2").unwrap_err().to_string();
        assert!(
            error.contains(&repo_dir.join("refs/v2").display().to_string())
                && error.contains("refs: broken, main, refs/pr/1, stale")
                && error.contains(COMMIT),
            "{error}"
        );
        let error = find("broken").unwrap_err().to_string();
        assert!(error.contains("does not hold a commit hash"), "{error}");
        let error = find("stale").unwrap_err().to_string();
        assert!(
            error.contains(
                &repo_dir
                    .join("snapshots")
                    .join("f".repeat(40))
                    .display()
                    .to_string()
            ),
            "{error}"
        );

        let missing = RepoId::model("org/absent").unwrap();
        let error = find_snapshot(cache.path(), &missing, "main")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                &cache
                    .path()
                    .join("models--org--absent")
                    .display()
                    .to_string()
            ) && error.contains("org/m"),
            "{error}"
        );
        let error = find_snapshot(&cache.path().join("nope"), &missing, "main")
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }
}
