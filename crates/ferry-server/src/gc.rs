//! `ferry serve gc`: mark what tags reach, sweep the rest.
//!
//! Live manifests: every tagged manifest, every manifest an index or a live
//! manifest's referrer chain reaches, and (unless `delete_untagged`) every
//! manifest still stored. A blob is live when a live manifest names it.
//! Repository blob links and blob content that nothing live needs are
//! removed only when older than `grace`, so a push in progress (blobs
//! uploaded, manifest not yet sent) is never collected.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::names::BlobDigest;

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

fn list_dir(path: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(path) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Digests stored under `<dir>/<alg>/<hex>`.
fn digests_under(dir: &Path) -> io::Result<Vec<(BlobDigest, PathBuf)>> {
    let mut out = Vec::new();
    for alg in list_dir(dir)? {
        for entry in list_dir(&alg.path())? {
            let text = format!(
                "{}:{}",
                alg.file_name().to_string_lossy(),
                entry.file_name().to_string_lossy()
            );
            if let Ok(digest) = BlobDigest::parse(&text) {
                out.push((digest, entry.path()));
            }
        }
    }
    Ok(out)
}

fn old_enough(path: &Path, grace: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= grace)
        .unwrap_or(false)
}

fn descriptor_digests(document: &Value, key: &str) -> Vec<BlobDigest> {
    match document.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|d| d.get("digest")?.as_str())
            .filter_map(|d| BlobDigest::parse(d).ok())
            .collect(),
        Some(Value::Object(_)) => document
            .get(key)
            .and_then(|d| d.get("digest")?.as_str())
            .and_then(|d| BlobDigest::parse(d).ok())
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// Collects garbage in the storage tree at `root`.
pub fn collect(root: &Path, options: &GcOptions) -> io::Result<GcReport> {
    let mut report = GcReport::default();
    let blob_path = |d: &BlobDigest| root.join("blobs").join(d.algorithm().name()).join(d.hex());
    let read_manifest = |d: &BlobDigest| -> Option<Value> {
        fs::read(blob_path(d))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    };
    let mut live_blobs: HashSet<BlobDigest> = HashSet::new();
    let mut repos = Vec::new();
    let mut stack = vec![root.join("repos")];
    while let Some(dir) = stack.pop() {
        for entry in list_dir(&dir)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A repository with blobs but no manifest is one too: its links
            // must be swept along with the content they point to.
            if name == "_manifests" || name == "_blobs" {
                if !repos.contains(&dir) {
                    repos.push(dir.clone());
                }
            } else if !name.starts_with('_') && entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    for repo in &repos {
        let stored = digests_under(&repo.join("_manifests"))?;
        let stored_set: HashSet<BlobDigest> = stored.iter().map(|(d, _)| d.clone()).collect();
        // Roots: tags, or everything stored when untagged manifests are kept.
        let mut queue: VecDeque<BlobDigest> = VecDeque::new();
        if options.delete_untagged {
            for tag in list_dir(&repo.join("_tags"))? {
                if let Ok(text) = fs::read_to_string(tag.path())
                    && let Ok(d) = BlobDigest::parse(text.trim())
                {
                    queue.push_back(d);
                }
            }
        } else {
            queue.extend(stored_set.iter().cloned());
        }
        let mut live: HashSet<BlobDigest> = HashSet::new();
        while let Some(digest) = queue.pop_front() {
            if !stored_set.contains(&digest) || !live.insert(digest.clone()) {
                continue;
            }
            // Referrers of a live manifest stay alive.
            let referrers = repo
                .join("_referrers")
                .join(digest.algorithm().name())
                .join(digest.hex());
            for entry in list_dir(&referrers)? {
                let name = entry
                    .file_name()
                    .to_string_lossy()
                    .replace(".json", "")
                    .replacen('-', ":", 1);
                if let Ok(d) = BlobDigest::parse(&name) {
                    queue.push_back(d);
                }
            }
            if let Some(document) = read_manifest(&digest) {
                queue.extend(descriptor_digests(&document, "manifests"));
            }
        }
        for (digest, path) in &stored {
            if live.contains(digest) {
                continue;
            }
            report
                .manifests
                .push(format!("{}@{digest}", repo.display()));
            if !options.dry_run {
                fs::remove_file(path)?;
                if let Some(document) = read_manifest(digest) {
                    for subject in descriptor_digests(&document, "subject") {
                        let record = repo
                            .join("_referrers")
                            .join(subject.algorithm().name())
                            .join(subject.hex())
                            .join(format!(
                                "{}-{}.json",
                                digest.algorithm().name(),
                                digest.hex()
                            ));
                        let _ = fs::remove_file(record);
                    }
                }
            }
        }
        let mut repo_live: HashSet<BlobDigest> = HashSet::new();
        for digest in &live {
            repo_live.insert(digest.clone());
            if let Some(document) = read_manifest(digest) {
                repo_live.extend(descriptor_digests(&document, "config"));
                repo_live.extend(descriptor_digests(&document, "layers"));
            }
        }
        for (digest, path) in digests_under(&repo.join("_blobs"))? {
            if repo_live.contains(&digest) || !old_enough(&path, options.grace) {
                live_blobs.insert(digest);
                continue;
            }
            report.links += 1;
            if !options.dry_run {
                fs::remove_file(&path)?;
            }
        }
        live_blobs.extend(repo_live);
    }
    for (digest, path) in digests_under(&root.join("blobs"))? {
        if live_blobs.contains(&digest) || !old_enough(&path, options.grace) {
            continue;
        }
        report.bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        report.blobs.push(digest.to_string());
        if !options.dry_run {
            fs::remove_file(&path)?;
        }
    }
    Ok(report)
}
