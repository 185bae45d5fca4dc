//! `ferry serve gc`: mark what tags reach, sweep the rest — through the
//! [`Storage`] trait only, so it works on any backend.
//!
//! Live manifests: every tagged manifest, every manifest an index or a live
//! manifest's referrer chain reaches, and (unless `delete_untagged`) every
//! manifest still stored. A blob is live when a live manifest names it.
//! Repository blob links and blob content that nothing live needs are
//! removed only when older than `grace`, so a push in progress (blobs
//! uploaded, manifest not yet sent) is never collected.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_spec::oci::Digest;
use serde_json::Value;

use crate::storage::fs::FsStorage;
use crate::storage::{Storage, StorageError};

/// Options of a collection.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report only.
    pub dry_run: bool,
    /// Also delete manifests no tag reaches.
    pub delete_untagged: bool,
    /// Leave anything younger than this.
    pub grace: Duration,
}

/// What a collection removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// Manifests removed (`repo@digest`).
    pub manifests: Vec<String>,
    /// Repository blob links removed.
    pub links: usize,
    /// Blob contents removed.
    pub blobs: Vec<String>,
    /// Bytes freed.
    pub bytes: u64,
}

/// Collects garbage in the filesystem storage at `root`, on a runtime of
/// its own: for the CLI, which has none. Must not be called from async code
/// (use [`run`] there).
pub fn collect(root: &Path, options: &GcOptions) -> io::Result<GcReport> {
    let storage = FsStorage::open(root)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(&storage, options))
        .map_err(|e| match e {
            StorageError::Io(e) => e,
            other => io::Error::other(other),
        })
}

/// Collects garbage in `storage`.
pub async fn run(storage: &dyn Storage, options: &GcOptions) -> Result<GcReport, StorageError> {
    let now = SystemTime::now();
    let old_enough = |t: SystemTime| now.duration_since(t).unwrap_or_default() >= options.grace;
    let mut report = GcReport::default();
    let mut live_blobs: HashSet<Digest> = HashSet::new();
    for repo in storage.repositories().await? {
        let stored: HashSet<Digest> = storage.manifests(&repo).await?.into_iter().collect();
        let live = mark(storage, &repo, &stored, options).await?;
        for digest in stored {
            if live.contains(&digest) {
                continue;
            }
            report.manifests.push(format!("{repo}@{digest}"));
            if !options.dry_run {
                sweep_manifest(storage, &repo, &digest).await?;
            }
        }
        // What the repository still needs: its live manifests and the
        // config and layers they name.
        let mut repo_live: HashSet<Digest> = HashSet::new();
        for digest in &live {
            repo_live.insert(digest.clone());
            if let Some(document) = read_manifest(storage, &repo, digest).await? {
                repo_live.extend(descriptor_digests(&document, "config"));
                repo_live.extend(descriptor_digests(&document, "layers"));
            }
        }
        for link in storage.blob_links(&repo).await? {
            if repo_live.contains(&link.digest) || !old_enough(link.modified) {
                live_blobs.insert(link.digest);
                continue;
            }
            report.links += 1;
            if !options.dry_run {
                storage.blob_unlink(&repo, &link.digest).await?;
            }
        }
        live_blobs.extend(repo_live);
    }
    for blob in storage.blobs().await? {
        if live_blobs.contains(&blob.digest) || !old_enough(blob.modified) {
            continue;
        }
        report.bytes += blob.size;
        report.blobs.push(blob.digest.to_string());
        if !options.dry_run {
            storage.blob_delete(&blob.digest).await?;
        }
    }
    Ok(report)
}

/// The live manifests of `repo`: from the roots (tags, or every manifest
/// when untagged ones are kept) through index children and referrers.
async fn mark(
    storage: &dyn Storage,
    repo: &str,
    stored: &HashSet<Digest>,
    options: &GcOptions,
) -> Result<HashSet<Digest>, StorageError> {
    let mut queue: VecDeque<Digest> = VecDeque::new();
    if options.delete_untagged {
        for tag in storage.tags(repo).await?.unwrap_or_default() {
            if let Some(digest) = storage.tag_get(repo, &tag).await? {
                queue.push_back(digest);
            }
        }
    } else {
        queue.extend(stored.iter().cloned());
    }
    let mut live: HashSet<Digest> = HashSet::new();
    while let Some(digest) = queue.pop_front() {
        if !stored.contains(&digest) || !live.insert(digest.clone()) {
            continue;
        }
        // Referrers of a live manifest stay alive.
        for referrer in storage.referrers(repo, &digest).await? {
            queue.push_back(referrer.digest);
        }
        if let Some(document) = read_manifest(storage, repo, &digest).await? {
            queue.extend(descriptor_digests(&document, "manifests"));
        }
    }
    Ok(live)
}

/// Removes a dead manifest and its referrer record.
async fn sweep_manifest(
    storage: &dyn Storage,
    repo: &str,
    digest: &Digest,
) -> Result<(), StorageError> {
    let document = read_manifest(storage, repo, digest).await?;
    storage.manifest_delete(repo, digest).await?;
    if let Some(document) = document {
        for subject in descriptor_digests(&document, "subject") {
            storage.referrer_remove(repo, &subject, digest).await?;
        }
    }
    Ok(())
}

/// A manifest of `repo` as JSON; `None` when gone or not JSON.
async fn read_manifest(
    storage: &dyn Storage,
    repo: &str,
    digest: &Digest,
) -> Result<Option<Value>, StorageError> {
    Ok(storage
        .manifest_get(repo, digest)
        .await?
        .and_then(|m| serde_json::from_slice(&m.bytes).ok()))
}

/// The digests of the descriptor (or array of descriptors) under `key`;
/// anything that is not a usable digest is ignored.
fn descriptor_digests(document: &Value, key: &str) -> Vec<Digest> {
    let digest_of = |descriptor: &Value| {
        descriptor
            .get("digest")?
            .as_str()
            .and_then(|d| ferry_spec::digest::parse_digest(d).ok())
    };
    match document.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(digest_of).collect(),
        Some(descriptor @ Value::Object(_)) => digest_of(descriptor).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_single_or_many_and_junk_ignored() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha512:{}", "b".repeat(128));
        let document = serde_json::json!({
            "config": {"digest": a},
            "layers": [{"digest": b}, {"digest": "sha256:short"}, {"size": 1}],
            "subject": "not a descriptor",
        });
        let names = |key| {
            descriptor_digests(&document, key)
                .iter()
                .map(Digest::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("config"), [a]);
        assert_eq!(names("layers"), [b]);
        assert!(names("subject").is_empty());
        assert!(names("manifests").is_empty());
    }
}
