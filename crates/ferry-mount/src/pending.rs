//! Crash safety of the layer cache without waiting for the disk.
//!
//! A cache entry is trusted for as long as it exists, so a power loss must
//! never leave a named entry with half-written files. Syncing every entry
//! before its rename would make a first mount wait for the disk (slower
//! than `tar -x`). Instead, before any entry is renamed into place, a
//! marker naming the entries about to be built and the current boot id is
//! written and synced (`layers/pending/<random>`). Dirty page-cache data is
//! lost only with the boot that wrote it, so:
//!
//! - an entry listed in a marker from another boot may be torn: it is
//!   removed and rebuilt;
//! - a marker of this boot is settled later, once the kernel has had time
//!   to write the data back: one `syncfs`, then the marker is deleted.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_store::Store;
use ferry_store::lock::LockGuard;

use crate::error::{IoContext, Result};
use crate::layers::{LayerKey, cache_root};
use crate::record;
use crate::tree;

/// Markers of this boot younger than this are left alone: the kernel
/// writes dirty data back within 30 seconds by default, so syncing later
/// costs (almost) nothing.
pub const SETTLE_AFTER: Duration = Duration::from_secs(60);

fn pending_dir(store: &Store) -> PathBuf {
    cache_root(store).join("pending")
}

/// Holds `layers/.lock` while markers are judged: a process that removes
/// a torn entry must not race one that just rebuilt it.
fn lock(store: &Store) -> Result<LockGuard> {
    Ok(ferry_store::lock::exclusive(
        &cache_root(store).join(".lock"),
    )?)
}

/// A marker file: where it is, the boot that wrote it, its age, its keys.
struct Marker {
    path: PathBuf,
    boot: String,
    age: Duration,
    keys: Vec<LayerKey>,
}

/// Every marker.
fn markers(store: &Store) -> Result<Vec<Marker>> {
    let dir = pending_dir(store);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("reading", &dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.ctx("reading", &dir)?.path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let mut lines = text.lines();
        let boot = lines.next().unwrap_or_default().to_string();
        let keys = lines.filter_map(LayerKey::parse).collect();
        let age = fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        out.push(Marker {
            path,
            boot,
            age,
            keys,
        });
    }
    Ok(out)
}

/// Removes entries that a marker of another boot lists (they may be torn)
/// and settles markers of this boot older than `settle_after` (`None`:
/// leave them). Returns the keys removed.
pub fn recover(store: &Store, settle_after: Option<Duration>) -> Result<Vec<LayerKey>> {
    let found = markers(store)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = lock(store)?;
    let boot = record::boot_id();
    let mut removed = Vec::new();
    let mut settle = Vec::new();
    for Marker {
        path,
        boot: marker_boot,
        age,
        keys,
    } in markers(store)?
    {
        if marker_boot != boot {
            for key in keys {
                let dir = key.dir(store);
                if dir.exists() {
                    tracing::info!(%key, "rebuilding a cache entry written before a crash");
                    tree::remove_tree(&dir)?;
                    removed.push(key);
                }
            }
            fs::remove_file(&path).ctx("removing", &path)?;
        } else if settle_after.is_some_and(|after| age >= after) {
            settle.push(path);
        }
    }
    if !settle.is_empty() {
        let root = File::open(cache_root(store)).ctx("opening", cache_root(store))?;
        rustix::fs::syncfs(&root)
            .map_err(io::Error::from)
            .ctx("syncing", cache_root(store))?;
        for path in settle {
            fs::remove_file(&path).ctx("removing", &path)?;
        }
    }
    Ok(removed)
}

/// Writes (and syncs) a marker for `keys` before they are built.
pub fn mark(store: &Store, keys: &[&LayerKey]) -> Result<()> {
    let dir = pending_dir(store);
    fs::create_dir_all(&dir).ctx("creating", &dir)?;
    let mut text = record::boot_id();
    for key in keys {
        text.push('\n');
        text.push_str(key.as_str());
    }
    let mut file = ferry_spec::durable::temp_file_in(&dir, ferry_spec::durable::SHARED_FILE_MODE)
        .ctx("creating marker in", &dir)?;
    file.write_all(text.as_bytes())
        .ctx("writing", file.path().to_path_buf())?;
    file.as_file()
        .sync_all()
        .ctx("syncing", file.path().to_path_buf())?;
    let (_, path) = file
        .keep()
        .map_err(|e| e.error)
        .ctx("keeping marker in", &dir)?;
    sync_dir(&dir)?;
    tracing::debug!(marker = %path.display(), "cache entries pending sync");
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    ferry_spec::durable::sync_dir(dir).ctx("syncing directory", dir)
}

/// Keys listed by markers, with the boot that wrote them (for tests and
/// diagnostics).
pub fn pending_keys(store: &Store) -> Result<HashMap<LayerKey, String>> {
    Ok(markers(store)?
        .into_iter()
        .flat_map(|m| {
            let boot = m.boot;
            m.keys.into_iter().map(move |k| (k, boot.clone()))
        })
        .collect())
}
