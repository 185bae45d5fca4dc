//! Keeping the store healthy: `rm`, `prune` and `fsck`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use rayon::prelude::*;

use ferry_spec::oci::{Descriptor, Digest, DigestAlgorithm, MediaType};

use crate::error::{IoContext, Result, StoreError};
use crate::index::{normalize_reference, parse_digest, ref_name};
use crate::store::Store;

/// What `ferry rm` did.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// Index entries removed.
    pub entries: usize,
    /// Blobs deleted because nothing else needs them.
    pub blobs: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// Content kept alive beyond the index: manifests that active mounts use.
/// `rm` and `prune` ask with the collect lock held, and whoever pins holds
/// the ingest lock while pinning, so no pin appears between the check and
/// the deletion.
pub trait Pins {
    /// The pinned manifests and who holds each.
    fn pinned(&self, store: &Store) -> Result<Vec<Pin>>;
}

/// One pinned manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The manifest's digest.
    pub manifest: Digest,
    /// Who holds it, for messages ("the mount at /mnt/m").
    pub holder: String,
}

/// Nothing pinned: what `--force` means.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPins;

impl Pins for NoPins {
    fn pinned(&self, _store: &Store) -> Result<Vec<Pin>> {
        Ok(Vec::new())
    }
}

/// Removes a tag (`name:tag`) or, for a digest, every entry of that manifest,
/// then deletes the blobs no remaining entry reaches.
pub fn remove(store: &Store, input: &str) -> Result<Removed> {
    remove_with(store, input, &NoPins)
}

/// [`remove`], refusing with [`StoreError::InUse`] when the manifest `input`
/// names is pinned; the blobs of every pinned manifest survive the sweep.
pub fn remove_with(store: &Store, input: &str, pins: &dyn Pins) -> Result<Removed> {
    let _collect = store.lock_collect()?;
    let pinned = pins.pinned(store)?;
    if let Ok(resolved) = store.resolve(input) {
        let holders: Vec<&str> = pinned
            .iter()
            .filter(|pin| &pin.manifest == resolved.descriptor.digest())
            .map(|pin| pin.holder.as_str())
            .collect();
        if !holders.is_empty() {
            return Err(StoreError::InUse {
                what: input.to_string(),
                holders: holders.join(", "),
            });
        }
    }
    let entries = if input.starts_with("sha256:") {
        store.remove_digest(&parse_digest(input)?)?
    } else {
        let reference = normalize_reference(input)?;
        match reference.digest() {
            Some(digest) => store.remove_digest(&parse_digest(digest)?)?,
            None => usize::from(store.remove_reference(&reference)?.is_some()),
        }
    };
    if entries == 0 {
        return Err(StoreError::NotFound(input.to_string()));
    }
    let (blobs, bytes) = delete_unreachable(store, false, &pinned)?;
    Ok(Removed {
        entries,
        blobs: blobs.len(),
        bytes,
    })
}

/// What `ferry prune` removed (or would remove).
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Unreferenced blobs.
    pub blobs: Vec<String>,
    /// Leftover temporary files of interrupted writes.
    pub temp_files: Vec<PathBuf>,
    /// Bytes freed.
    pub bytes: u64,
}

/// Deletes blobs that no index entry reaches and leftovers in `tmp/`.
pub fn prune(store: &Store, dry_run: bool) -> Result<Pruned> {
    prune_with(store, dry_run, &NoPins)
}

/// [`prune`], keeping the blobs of every pinned manifest.
pub fn prune_with(store: &Store, dry_run: bool, pins: &dyn Pins) -> Result<Pruned> {
    let _collect = store.lock_collect()?;
    let pinned = pins.pinned(store)?;
    let (blobs, mut bytes) = delete_unreachable(store, dry_run, &pinned)?;
    let mut temp_files = Vec::new();
    // Holding the collect lock means no blob writer is active, and the index
    // lock that no index.json update is staging its new file in tmp/ (tags
    // are written without the ingest lock): all of tmp/ is debris.
    let _index = store.lock_index()?;
    let tmp = store.tmp_dir();
    if tmp.is_dir() {
        for entry in fs::read_dir(&tmp).ctx("reading", &tmp)? {
            let entry = entry.ctx("reading", &tmp)?;
            let path = entry.path();
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            if !dry_run {
                let removed = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.ctx("removing", &path)?;
            }
            temp_files.push(path);
        }
    }
    Ok(Pruned {
        blobs,
        temp_files,
        bytes,
    })
}

/// Blob files present in the store, by digest.
fn stored_blobs(store: &Store) -> Result<Vec<(String, PathBuf)>> {
    let dir = store.blobs_dir("sha256");
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in fs::read_dir(&dir).ctx("reading", &dir)? {
        let entry = entry.ctx("reading", &dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((format!("sha256:{name}"), entry.path()));
    }
    out.sort();
    Ok(out)
}

fn delete_unreachable(store: &Store, dry_run: bool, pinned: &[Pin]) -> Result<(Vec<String>, u64)> {
    let mut roots = store.entries()?;
    roots.extend(
        pinned
            .iter()
            .map(|pin| Descriptor::new(MediaType::ImageManifest, 0, pin.manifest.clone())),
    );
    let reachable: HashSet<String> = store
        .reachable_from(roots)?
        .into_keys()
        .map(|d| d.to_string())
        .collect();
    let mut deleted = Vec::new();
    let mut bytes = 0;
    for (digest, path) in stored_blobs(store)? {
        if reachable.contains(&digest) {
            continue;
        }
        bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if !dry_run {
            fs::remove_file(&path).ctx("removing", &path)?;
        }
        deleted.push(digest);
    }
    Ok((deleted, bytes))
}

/// What `ferry fsck` found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub checked: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Blobs whose content does not match their name (deleted with repair).
    pub corrupt: Vec<String>,
    /// Blobs the index needs that are absent.
    pub missing: Vec<String>,
    /// Blobs nothing references (`prune` removes them).
    pub unreferenced: Vec<String>,
    /// Leftovers of interrupted writes in `tmp/` (`prune` removes them).
    pub leftovers: usize,
    /// Set when `index.json` cannot be read.
    pub index_error: Option<String>,
    /// The index entries that reach a corrupt or missing blob, in index order.
    pub damaged: Vec<Damaged>,
}

/// An index entry some of whose blobs are corrupt or missing: what a user
/// must re-fetch or re-pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The entry's full reference (`registry.example.com/org/m:v1`), which
    /// says where it can be pulled from again; `None` for an unnamed entry.
    pub reference: Option<String>,
    /// The manifest (or index) the entry names.
    pub digest: Digest,
    /// Its blobs that are corrupt or missing, sorted.
    pub blobs: Vec<String>,
}

impl FsckReport {
    /// True when nothing is corrupt or missing and the index parses.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.index_error.is_none()
    }
}

/// A blob's name, path and what hashing its content gave.
type Hashed = (String, PathBuf, io::Result<(Digest, u64)>);

/// Re-hashes every blob and checks that everything the index needs is there;
/// lists the index entries that reach a corrupt or missing blob. With
/// `repair`, corrupt blobs are deleted (re-fetching what the damaged entries
/// need is the caller's part: only it can reach a registry).
pub fn fsck(store: &Store, repair: bool) -> Result<FsckReport> {
    let mut report = FsckReport::default();
    let reachable = match store.reachable_blobs() {
        Ok(r) => Some(r),
        Err(e @ StoreError::CorruptIndex { .. }) => {
            report.index_error = Some(e.to_string());
            None
        }
        Err(e) => return Err(e),
    };
    let stored = stored_blobs(store)?;
    let results: Vec<Hashed> = stored
        .into_par_iter()
        .map(|(name, path)| {
            let hashed = ferry_spec::digest::hash_file(&path, &DigestAlgorithm::Sha256);
            (name, path, hashed)
        })
        .collect();
    let mut present = HashSet::new();
    for (name, path, hashed) in results {
        report.checked += 1;
        let ok = match hashed {
            Ok((digest, size)) => {
                report.bytes += size;
                let size_ok = reachable
                    .as_ref()
                    .and_then(|r| parse_digest(&name).ok().and_then(|d| r.get(&d).copied()))
                    .is_none_or(|reach| reach.size == size);
                digest.to_string() == name && size_ok
            }
            Err(_) => false,
        };
        if ok {
            present.insert(name.clone());
        } else {
            if repair {
                fs::remove_file(&path).ctx("removing corrupt blob", &path)?;
            }
            report.corrupt.push(name);
            continue;
        }
        if let Some(reachable) = &reachable
            && !reachable.keys().any(|d| d.to_string() == name)
        {
            report.unreferenced.push(name);
        }
    }
    if let Some(reachable) = &reachable {
        let mut missing: Vec<String> = reachable
            .keys()
            .map(|d| d.to_string())
            .filter(|d| !present.contains(d) && !report.corrupt.contains(d))
            .collect();
        missing.sort();
        report.missing = missing;
    }
    let tmp = store.tmp_dir();
    if tmp.is_dir() {
        report.leftovers = fs::read_dir(&tmp).ctx("reading", &tmp)?.count();
    }
    if reachable.is_some() {
        report.damaged = damaged_entries(store, &report)?;
    }
    Ok(report)
}

/// The index entries that reach a blob `report` found corrupt or missing.
fn damaged_entries(store: &Store, report: &FsckReport) -> Result<Vec<Damaged>> {
    let bad: HashSet<&str> = report
        .corrupt
        .iter()
        .chain(&report.missing)
        .map(String::as_str)
        .collect();
    if bad.is_empty() {
        return Ok(Vec::new());
    }
    let mut damaged = Vec::new();
    for entry in store.entries()? {
        let mut blobs: Vec<String> = store
            .reachable_from(vec![entry.clone()])?
            .into_keys()
            .map(|d| d.to_string())
            .filter(|d| bad.contains(d.as_str()))
            .collect();
        if blobs.is_empty() {
            continue;
        }
        blobs.sort();
        damaged.push(Damaged {
            reference: ref_name(&entry).map(str::to_string),
            digest: entry.digest().clone(),
            blobs,
        });
    }
    Ok(damaged)
}
