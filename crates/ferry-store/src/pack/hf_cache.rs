//! The Hugging Face hub cache layout: recognising a snapshot directory,
//! naming what it came from, and finding a snapshot by repo id and revision.
//!
//! A repository's folder is `<cache>/<type>s--<org>--<name>` (`--<name>` alone
//! without an org). It holds `blobs/<etag>` (the content), `refs/<ref>` (the
//! commit a branch or tag pointed at when downloaded) and
//! `snapshots/<commit>/<path>`, relative symlinks into `blobs/`. A snapshot's
//! links may be followed into its own repository's `blobs/` and nowhere else.
//!
//! This module recognises the layout from a path; its `find` part looks a model
//! up in the cache (`--from-hf-cache`).

mod find;

use std::fs;
use std::path::{Path, PathBuf};

pub use find::{HfCacheError, Request, cache_root, find_snapshot, parse_request};

use crate::error::{IoContext, Result};

/// The kinds of repository the hub (and so the cache) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoType {
    /// `models--`.
    Model,
    /// `datasets--`.
    Dataset,
    /// `spaces--`.
    Space,
}

impl RepoType {
    fn folder_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
}

/// A repository on the hub: its type and id (`org/name`, or `name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    /// Model, dataset or space.
    pub repo_type: RepoType,
    /// `org/name` or `name`.
    pub id: String,
}

impl RepoId {
    /// A model repo id as typed (`org/name` or `name`), checked against the
    /// hub's rules so it can only name one folder of the cache.
    pub fn model(input: &str) -> Result<RepoId> {
        let invalid = |reason| HfCacheError::InvalidRepoId {
            input: input.to_string(),
            reason,
        };
        let parts: Vec<&str> = input.split('/').collect();
        if parts.len() > 2 {
            return Err(invalid("expected ORG/NAME or NAME").into());
        }
        if let Some(reason) = parts.iter().find_map(|p| name_problem(p)) {
            return Err(invalid(reason).into());
        }
        Ok(RepoId {
            repo_type: RepoType::Model,
            id: input.to_string(),
        })
    }

    /// The repository's folder in the cache: `models--org--name`.
    pub fn folder_name(&self) -> String {
        format!(
            "{}--{}",
            self.repo_type.folder_prefix(),
            self.id.replace('/', "--")
        )
    }

    /// Reads a cache folder name back; `None` for anything the hub would
    /// not have written (an unknown type, an empty part, or more than two
    /// parts: the hub forbids `--` inside names, so a split is never
    /// ambiguous).
    pub fn from_folder_name(folder: &str) -> Option<RepoId> {
        let mut parts = folder.split("--");
        let repo_type = match parts.next()? {
            "models" => RepoType::Model,
            "datasets" => RepoType::Dataset,
            "spaces" => RepoType::Space,
            _ => return None,
        };
        let parts: Vec<&str> = parts.collect();
        if parts.is_empty() || parts.len() > 2 || parts.iter().any(|p| name_problem(p).is_some()) {
            return None;
        }
        Some(RepoId {
            repo_type,
            id: parts.join("/"),
        })
    }

    /// The repository's page on the hub.
    pub fn url(&self) -> String {
        let kind = match self.repo_type {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        };
        format!("https://huggingface.co/{kind}{}", self.id)
    }
}

/// What the hub allows in an org or a name: ASCII letters, digits, `-`,
/// `_` and `.`, neither `--` nor `..`, no `-` or `.` at either end.
fn name_problem(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        return Some("an empty org or name");
    }
    if part.len() > 96 {
        return Some("longer than 96 characters");
    }
    if !part
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Some("only letters, digits, '-', '_' and '.' are allowed");
    }
    if part.contains("--") || part.contains("..") {
        return Some("'--' and '..' are not allowed");
    }
    if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
        return Some("must not start or end with '-' or '.'");
    }
    None
}

/// A full commit hash, as the cache names snapshots.
pub fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A snapshot directory of the cache: `<repo_dir>/snapshots/<commit>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The repository.
    pub repo: RepoId,
    /// The commit the snapshot holds.
    pub commit: String,
    /// The repository's folder.
    pub repo_dir: PathBuf,
}

/// What a model snapshot says about the artifact: the ModelPack name,
/// revision and source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `org/name`, as the hub names the model.
    pub name: String,
    /// The commit hash.
    pub revision: String,
    /// `https://huggingface.co/org/name`.
    pub source_url: String,
}

impl Snapshot {
    /// Recognises a snapshot from its path alone; give it a canonical path
    /// (see [`Snapshot::of_dir`]) so `..` and links do not fool it.
    pub fn from_path(dir: &Path) -> Option<Snapshot> {
        let commit = dir.file_name()?.to_str()?;
        let snapshots = dir.parent()?;
        let repo_dir = snapshots.parent()?;
        let repo = RepoId::from_folder_name(repo_dir.file_name()?.to_str()?)?;
        (is_commit_hash(commit) && snapshots.file_name()? == "snapshots").then(|| Snapshot {
            repo,
            commit: commit.to_string(),
            repo_dir: repo_dir.to_path_buf(),
        })
    }

    /// The snapshot `dir` is, if it is one (`dir` is canonicalized first).
    pub fn of_dir(dir: &Path) -> Result<Option<Snapshot>> {
        let canonical = fs::canonicalize(dir).ctx("resolving", dir)?;
        Ok(Snapshot::from_path(&canonical))
    }

    /// The repository's `blobs/`; `None` when it is missing or not a
    /// directory of its own (then no link of the snapshot can be followed
    /// out of it). A `blobs` that is itself a link would widen where the
    /// snapshot's links may lead to wherever it points (`/`, another repo).
    pub fn blobs_dir(&self) -> Option<PathBuf> {
        let blobs = self.repo_dir.join("blobs");
        // `repo_dir` is canonical, so a real directory there is too.
        fs::symlink_metadata(&blobs)
            .is_ok_and(|m| m.is_dir())
            .then_some(blobs)
    }

    /// The metadata a model snapshot gives; `None` for datasets and spaces.
    pub fn origin(&self) -> Option<Origin> {
        (self.repo.repo_type == RepoType::Model).then(|| Origin {
            name: self.repo.id.clone(),
            revision: self.commit.clone(),
            source_url: self.repo.url(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn folder_names_round_trip() {
        let repo = RepoId::from_folder_name("models--meta-llama--Llama-3.1-8B").unwrap();
        assert_eq!(repo.repo_type, RepoType::Model);
        assert_eq!(repo.id, "meta-llama/Llama-3.1-8B");
        assert_eq!(repo.folder_name(), "models--meta-llama--Llama-3.1-8B");
        assert_eq!(repo.url(), "https://huggingface.co/meta-llama/Llama-3.1-8B");

        let no_org = RepoId::from_folder_name("models--gpt2").unwrap();
        assert_eq!(no_org.id, "gpt2");
        assert_eq!(no_org.url(), "https://huggingface.co/gpt2");

        let dataset = RepoId::from_folder_name("datasets--org--data").unwrap();
        assert_eq!(dataset.repo_type, RepoType::Dataset);
        assert_eq!(dataset.url(), "https://huggingface.co/datasets/org/data");
        let space = RepoId::from_folder_name("spaces--org--app").unwrap();
        assert_eq!(space.repo_type, RepoType::Space);
    }

    #[test]
    fn folder_names_the_hub_would_not_write_are_not_recognised() {
        // The hub forbids `--` in names, so three parts cannot come from it.
        assert_eq!(RepoId::from_folder_name("models--a--b--c"), None);
        assert_eq!(RepoId::from_folder_name("models--a----b"), None);
        assert_eq!(RepoId::from_folder_name("models--"), None);
        assert_eq!(RepoId::from_folder_name("models"), None);
        assert_eq!(RepoId::from_folder_name("model--a--b"), None);
        assert_eq!(RepoId::from_folder_name("models--a--b c"), None);
        assert_eq!(RepoId::from_folder_name("models--..--b"), None);
    }

    #[test]
    fn snapshot_paths_are_recognised_with_their_origin() {
        let dir = PathBuf::from(format!("/c/hub/models--org--m/snapshots/{COMMIT}"));
        let snapshot = Snapshot::from_path(&dir).unwrap();
        assert_eq!(snapshot.repo_dir, Path::new("/c/hub/models--org--m"));
        assert_eq!(
            snapshot.origin().unwrap(),
            Origin {
                name: "org/m".into(),
                revision: COMMIT.into(),
                source_url: "https://huggingface.co/org/m".into(),
            }
        );
        let dataset = format!("/c/datasets--org--d/snapshots/{COMMIT}");
        let dataset = Snapshot::from_path(Path::new(&dataset)).unwrap();
        assert_eq!(dataset.origin(), None, "only models map to metadata");

        for not in [
            "/c/hub/models--org--m/snapshots/main".to_string(),
            format!("/c/hub/models--org--m/blobs/{COMMIT}"),
            format!("/c/hub/models--a--b--c/snapshots/{COMMIT}"),
            format!("/c/hub/org/m/snapshots/{COMMIT}"),
            format!("/c/hub/models--org--m/snapshots/{}", COMMIT.to_uppercase()),
            format!("/snapshots/{COMMIT}"),
        ] {
            assert_eq!(Snapshot::from_path(Path::new(&not)), None, "{not}");
        }
    }
}
