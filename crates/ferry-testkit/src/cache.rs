//! Generated models cached across test binaries and runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::{ModelSpec, generate};

/// One generation at a time in this process (others wait and reuse it).
static GENERATING: Mutex<()> = Mutex::new(());

/// The model `spec` describes, generated once into
/// `cache_root/ferry-models/<spec.cache_key()>` and reused by every later
/// call, test binary and run (the key includes the generator version).
/// Treat it as read-only: copy it to change it. Tests pass their
/// `env!("CARGO_TARGET_TMPDIR")` as `cache_root`.
///
/// Concurrent test processes are safe: each generates into a private
/// staging directory and renames it into place; the directory only ever
/// appears complete, and a loser of the race uses the winner's copy.
pub fn cached_model(cache_root: impl AsRef<Path>, spec: &ModelSpec) -> PathBuf {
    let cache = cache_root.as_ref().join("ferry-models");
    let target = cache.join(spec.cache_key());
    let _one = GENERATING.lock().unwrap_or_else(|e| e.into_inner());
    if target.is_dir() {
        return target;
    }
    fs::create_dir_all(&cache)
        .unwrap_or_else(|e| panic!("create model cache {}: {e}", cache.display()));
    let staging = tempfile::Builder::new()
        .prefix(".gen-")
        .tempdir_in(&cache)
        .unwrap_or_else(|e| panic!("create a staging directory in {}: {e}", cache.display()));
    let out = staging.path().join("model");
    generate(&out, spec).unwrap_or_else(|e| panic!("generate {spec:?}: {e}"));
    if fs::rename(&out, &target).is_err() {
        assert!(target.is_dir(), "cannot cache {}", target.display());
    }
    target
}
