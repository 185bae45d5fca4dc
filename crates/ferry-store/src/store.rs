//! The store root: where things live and how blobs are read.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use ferry_spec::oci::{Digest, ImageManifest};

use crate::blob::BlobWriter;
use crate::error::{IoContext, Result, StoreError};
use crate::lock::{self, LockGuard};

/// Manifests and configs larger than this are refused (registries cap at a few MiB).
pub const MAX_DOCUMENT_SIZE: u64 = 4 * 1024 * 1024;

/// A local store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    shape: Shape,
}

/// Where the OCI layout sits relative to the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// ferry's store: the layout in `<root>/artifacts`, work files in
    /// `<root>/tmp` and `<root>/locks`.
    Store,
    /// A bare OCI image layout (`oci:PATH`): the root is the layout, and
    /// temporary files live in it (renamed or removed before ferry is done);
    /// `index.json` is guarded by a lock on the directory itself.
    Bare,
}

impl Store {
    /// The default root: `$FERRY_HOME`, else `$XDG_DATA_HOME/ferry`, else
    /// `~/.local/share/ferry`.
    pub fn default_root() -> PathBuf {
        if let Some(home) = std::env::var_os("FERRY_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home);
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(data).join("ferry");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".local/share/ferry")
    }

    /// Opens the store at `root`, creating its layout when missing.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let store = Store {
            root: root.as_ref().to_path_buf(),
            shape: Shape::Store,
        };
        if !store.layout_dir().join("oci-layout").is_file() {
            store.create_layout()?;
        } else {
            // A layout made by another tool, or one whose scratch space was
            // emptied, still needs ferry's work directories.
            for dir in [store.tmp_dir(), store.locks_dir()] {
                fs::create_dir_all(&dir).ctx("creating store directory", &dir)?;
            }
        }
        Ok(store)
    }

    /// Opens an existing store for reading only: nothing is created, so this
    /// works on a read-only filesystem.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Store> {
        let store = Store {
            root: root.as_ref().to_path_buf(),
            shape: Shape::Store,
        };
        let marker = store.layout_dir().join("oci-layout");
        if !marker.is_file() {
            return Err(StoreError::NotFound(format!(
                "store at {} (no {})",
                store.root.display(),
                marker.display()
            )));
        }
        Ok(store)
    }

    /// Opens the bare OCI image layout at `dir` (used by
    /// [`crate::layout::LayoutDir`]); with `create`, a missing layout is made.
    pub(crate) fn open_bare(dir: &Path, create: bool) -> Result<Store> {
        let store = Store {
            root: dir.to_path_buf(),
            shape: Shape::Bare,
        };
        let marker = store.layout_dir().join("oci-layout");
        if !marker.is_file() {
            if !create {
                return Err(StoreError::NotFound(format!(
                    "OCI image layout at {} (no {})",
                    dir.display(),
                    marker.display()
                )));
            }
            store.create_layout()?;
        } else if create {
            // A layout written by another tool may lack the directory of
            // the algorithm ferry writes.
            let blobs = store.blobs_dir("sha256");
            fs::create_dir_all(&blobs).ctx("creating layout directory", &blobs)?;
        }
        Ok(store)
    }

    fn create_layout(&self) -> Result<()> {
        for dir in [
            self.layout_dir().join("blobs/sha256"),
            self.tmp_dir(),
            self.locks_dir(),
        ] {
            fs::create_dir_all(&dir).ctx("creating store directory", &dir)?;
        }
        let _guard = self.lock_index()?;
        let index = self.index_path();
        if !index.exists() {
            crate::index::write_atomically(self, &index, crate::index::EMPTY_INDEX.as_bytes())?;
        }
        let marker = self.layout_dir().join("oci-layout");
        if !marker.exists() {
            crate::index::write_atomically(self, &marker, ferry_spec::media::OCI_LAYOUT_FILE)?;
        }
        Ok(())
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout directory (`<root>/artifacts`; the root itself
    /// for a bare layout).
    pub fn layout_dir(&self) -> PathBuf {
        match self.shape {
            Shape::Store => self.root.join("artifacts"),
            Shape::Bare => self.root.clone(),
        }
    }

    /// Where blobs are written before they are verified and renamed.
    pub fn tmp_dir(&self) -> PathBuf {
        match self.shape {
            Shape::Store => self.root.join("tmp"),
            Shape::Bare => self.root.clone(),
        }
    }

    fn locks_dir(&self) -> PathBuf {
        match self.shape {
            Shape::Store => self.root.join("locks"),
            Shape::Bare => self.root.clone(),
        }
    }

    /// `<root>/artifacts/index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.layout_dir().join("index.json")
    }

    /// The directory holding blobs of one algorithm.
    pub fn blobs_dir(&self, algorithm: &str) -> PathBuf {
        self.layout_dir().join("blobs").join(algorithm)
    }

    /// Where the blob named `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// True when the blob exists.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound(format!("blob {digest}"))
            } else {
                StoreError::Io {
                    action: "opening blob",
                    path,
                    source,
                }
            }
        })
    }

    /// Reads a small blob (manifest, config) whole, verifying its digest.
    pub fn read_document(&self, digest: &Digest) -> Result<Vec<u8>> {
        let file = self.open_blob(digest)?;
        let path = self.blob_path(digest);
        let len = file.metadata().ctx("reading", &path)?.len();
        if len > MAX_DOCUMENT_SIZE {
            return Err(StoreError::TooLarge {
                what: format!("blob {digest}"),
                size: len,
                limit: MAX_DOCUMENT_SIZE,
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_DOCUMENT_SIZE + 1)
            .read_to_end(&mut bytes)
            .ctx("reading", &path)?;
        let actual = ferry_spec::digest::sha256_digest(&bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                digest: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Reads and parses an image manifest.
    pub fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        let bytes = self.read_document(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidDocument {
            what: "manifest",
            digest: digest.to_string(),
            reason: e.to_string(),
        })
    }

    /// Starts writing a new blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::create(self)
    }

    /// Stores an in-memory document and returns its digest.
    pub fn put_document(&self, bytes: &[u8]) -> Result<Digest> {
        let mut writer = self.blob_writer()?;
        writer.write_all_bytes(bytes)?;
        writer.commit(None)
    }

    /// Where a resumable download of `digest` keeps its bytes until verified.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.tmp_dir().join(format!(
            "partial-{}-{}",
            digest.algorithm().as_ref(),
            digest.digest()
        ))
    }

    /// Moves a file from `tmp/` into the store as `digest`. The caller has
    /// verified that the file's content hashes to `digest` (as a download
    /// does while streaming); the file is fsynced and renamed.
    pub fn install_verified(&self, temp: &Path, digest: &Digest) -> Result<()> {
        if temp.parent() != Some(self.tmp_dir().as_path()) {
            return Err(StoreError::Internal(
                "install_verified takes files from the store's tmp directory only",
            ));
        }
        crate::blob::install_verified_file(self, temp, digest)
    }

    /// [`Store::install_verified`] for several files at once: every file is
    /// flushed (in parallel, so the disk takes the flushes as one batch)
    /// before any is renamed, and each blob directory is synced once.
    pub fn install_verified_batch(&self, files: &[(&Path, &Digest)]) -> Result<()> {
        if files
            .iter()
            .any(|(temp, _)| temp.parent() != Some(self.tmp_dir().as_path()))
        {
            return Err(StoreError::Internal(
                "install_verified_batch takes files from the store's tmp directory only",
            ));
        }
        crate::blob::install_verified_files(self, files)
    }

    /// Holds the index lock (blocking) for a read-modify-write of `index.json`.
    /// A bare layout locks its own directory: a lock file would stay in a
    /// tree that other tools (skopeo, tar) read as the layout.
    pub fn lock_index(&self) -> Result<LockGuard> {
        match self.shape {
            Shape::Store => lock::exclusive(&self.locks_dir().join("index.lock")),
            Shape::Bare => lock::exclusive_dir(&self.root),
        }
    }

    /// Held shared while blobs are added that the index does not name yet.
    pub fn lock_ingest(&self) -> Result<LockGuard> {
        lock::shared(&self.locks_dir().join("gc.lock"))
    }

    /// Held exclusively while unreferenced blobs are deleted.
    pub fn lock_collect(&self) -> Result<LockGuard> {
        lock::exclusive(&self.locks_dir().join("gc.lock"))
    }
}
