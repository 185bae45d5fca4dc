//! Plain OCI image layouts (`oci:PATH[:TAG]`), read and written with the
//! store's own machinery.
//!
//! The store is an OCI image layout at `<root>/artifacts`; a [`LayoutDir`] is
//! one whose root is `PATH` itself. Blobs enter it exactly as they enter the
//! store (temp file, hash, verify, fsync, rename: [`crate::BlobWriter`]), and
//! `index.json` is replaced atomically under a lock on `PATH` itself, so no
//! lock file is left in the layout. Names are whatever the
//! `org.opencontainers.image.ref.name` annotation holds: a bare tag (`v1`, as
//! skopeo writes) or a full reference (`localhost:5000/m:v1`, as the store
//! writes).
//!
//! `PATH` may be a ferry store's own layout (`<store>/artifacts`): it is then
//! opened as the store, so writers take the store's locks (and hold its
//! ingest lock, so `prune` never collects blobs not yet named), and names
//! must be full references, as in the rest of the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_spec::annotations::REF_NAME;
use ferry_spec::oci::Descriptor;

use crate::error::{Result, StoreError};
use crate::index::{normalize_reference, parse_digest, ref_name};
use crate::lock::LockGuard;
use crate::store::Store;

/// An OCI image layout rooted at a directory.
#[derive(Debug, Clone)]
pub struct LayoutDir {
    store: Store,
    /// True when the layout is a ferry store's own.
    in_store: bool,
    /// Held while a store's layout is written (see the module docs).
    _ingest: Option<Arc<LockGuard>>,
}

/// The store root when `path` is a ferry store's layout.
fn store_root(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    let is_store = path.file_name().is_some_and(|n| n == "artifacts")
        && path.join("oci-layout").is_file()
        && parent.join("locks").is_dir()
        && parent.join("tmp").is_dir();
    is_store.then(|| parent.to_path_buf())
}

impl LayoutDir {
    /// Opens the layout at `path` for writing, creating it (and its parents)
    /// when missing.
    pub fn create(path: &Path) -> Result<LayoutDir> {
        if let Some(root) = store_root(path) {
            let store = Store::open(&root)?;
            let ingest = store.lock_ingest()?;
            return Ok(LayoutDir {
                store,
                in_store: true,
                _ingest: Some(Arc::new(ingest)),
            });
        }
        Ok(LayoutDir {
            store: Store::open_bare(path, true)?,
            in_store: false,
            _ingest: None,
        })
    }

    /// Opens an existing layout for reading; nothing is created.
    pub fn open(path: &Path) -> Result<LayoutDir> {
        if let Some(root) = store_root(path) {
            return Ok(LayoutDir {
                store: Store::open_existing(&root)?,
                in_store: true,
                _ingest: None,
            });
        }
        Ok(LayoutDir {
            store: Store::open_bare(path, false)?,
            in_store: false,
            _ingest: None,
        })
    }

    /// The layout's root directory (where `index.json` is).
    pub fn path(&self) -> PathBuf {
        self.store.layout_dir()
    }

    /// Blob access: `has_blob`, `open_blob`, `blob_writer`, `read_document`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every entry of `index.json`, in order.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        self.store.entries()
    }

    /// The entry named `name`; see [`find_entry`].
    pub fn find(&self, name: Option<&str>) -> Result<Descriptor> {
        find_entry(&self.entries()?, name, &self.path().display().to_string())
    }

    /// Names `descriptor` as `name` (replacing what that name pointed to);
    /// without a name, adds an unnamed entry unless that digest has one
    /// (referrers are kept this way).
    pub fn set_entry(&self, name: Option<&str>, descriptor: &Descriptor) -> Result<()> {
        if self.in_store
            && let Some(name) = name
        {
            // The store names manifests by full reference only.
            let mut plain = descriptor.clone();
            if let Some(mut annotations) = plain.annotations().clone() {
                annotations.remove(REF_NAME);
                plain.set_annotations((!annotations.is_empty()).then_some(annotations));
            }
            return self
                .store
                .set_reference(&normalize_reference(name)?, &plain);
        }
        let mut entry = descriptor.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.remove(REF_NAME);
        if let Some(name) = name {
            annotations.insert(REF_NAME.to_string(), name.to_string());
        }
        entry.set_annotations((!annotations.is_empty()).then_some(annotations));
        self.store.update_index(|manifests| match name {
            Some(name) => {
                manifests.retain(|d| ref_name(d) != Some(name));
                manifests.push(entry);
            }
            None => {
                if !manifests.iter().any(|d| d.digest() == entry.digest()) {
                    manifests.push(entry);
                }
            }
        })
    }
}

/// The entry of an index named `name`: `None` picks the only entry, and a
/// name starting with `sha256:` picks an entry by digest. `location` names
/// the layout in errors.
pub fn find_entry(
    entries: &[Descriptor],
    name: Option<&str>,
    location: &str,
) -> Result<Descriptor> {
    match name {
        Some(name) if name.starts_with("sha256:") => {
            let digest = parse_digest(name)?;
            entries
                .iter()
                .find(|d| d.digest() == &digest)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(format!("{name} in {location}")))
        }
        Some(name) => entries
            .iter()
            .find(|d| ref_name(d) == Some(name))
            .cloned()
            .ok_or_else(|| {
                StoreError::NotFound(format!("{name} in {location} (names: {})", names(entries)))
            }),
        None => {
            // Referrers are unnamed entries: one named entry is the artifact.
            let named: Vec<&Descriptor> =
                entries.iter().filter(|d| ref_name(d).is_some()).collect();
            match (entries, named.as_slice()) {
                ([only], _) => Ok(only.clone()),
                (_, [only]) => Ok((*only).clone()),
                ([], _) => Err(StoreError::NotFound(format!("any manifest in {location}"))),
                _ => Err(StoreError::AmbiguousLayout {
                    location: location.to_string(),
                    count: entries.len(),
                    names: names(entries),
                }),
            }
        }
    }
}

fn names(entries: &[Descriptor]) -> String {
    let names: Vec<&str> = entries.iter().filter_map(ref_name).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Splits `PATH[:TAG]` (what follows `oci:` or `oci-archive:`).
///
/// The name may itself contain `:` and `/` (`localhost:5000/m:v1`), so the
/// path ends at the first `:`, as skopeo reads it, unless a longer prefix
/// ending at a `:` names something that exists (a directory called `a:b`).
/// A spec that exists as a whole is a path without a name.
pub fn split_path_and_tag(spec: &str) -> (PathBuf, Option<String>) {
    if spec.is_empty() || Path::new(spec).exists() {
        return (PathBuf::from(spec), None);
    }
    let colons: Vec<usize> = spec.match_indices(':').map(|(i, _)| i).collect();
    let split = colons
        .iter()
        .rev()
        .copied()
        .find(|&i| i > 0 && Path::new(&spec[..i]).exists())
        .or_else(|| colons.first().copied());
    match split {
        Some(i) => {
            let tag = &spec[i + 1..];
            (
                PathBuf::from(&spec[..i]),
                (!tag.is_empty()).then(|| tag.to_string()),
            )
        }
        None => (PathBuf::from(spec), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_spec::oci::{Digest, MediaType};

    #[test]
    fn splits_plain_tags_and_full_references() {
        assert_eq!(
            split_path_and_tag("/no/such/dir:v1"),
            (PathBuf::from("/no/such/dir"), Some("v1".into()))
        );
        assert_eq!(
            split_path_and_tag("/no/such/artifacts:localhost:5000/m:v1"),
            (
                PathBuf::from("/no/such/artifacts"),
                Some("localhost:5000/m:v1".into())
            )
        );
        assert_eq!(
            split_path_and_tag("relative"),
            (PathBuf::from("relative"), None)
        );
        assert_eq!(
            split_path_and_tag("/no/such/dir:"),
            (PathBuf::from("/no/such/dir"), None)
        );
    }

    #[test]
    fn an_existing_directory_with_a_colon_is_one_path() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("a:b");
        std::fs::create_dir(&dir).unwrap();
        let spec = dir.to_str().unwrap().to_string();
        assert_eq!(split_path_and_tag(&spec), (dir.clone(), None));
        assert_eq!(
            split_path_and_tag(&format!("{spec}:host:5000/m:v1")),
            (dir, Some("host:5000/m:v1".into()))
        );
    }

    #[test]
    fn entries_are_named_replaced_and_found() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("layout");
        let layout = LayoutDir::create(&path).unwrap();
        assert!(path.join("oci-layout").is_file());
        assert!(path.join("blobs/sha256").is_dir());
        assert!(matches!(layout.find(None), Err(StoreError::NotFound(_))));

        let digest = |b: &[u8]| -> Digest { ferry_spec::digest::sha256_digest(b) };
        let one = Descriptor::new(MediaType::ImageManifest, 1, digest(b"1"));
        let two = Descriptor::new(MediaType::ImageManifest, 1, digest(b"2"));
        layout.set_entry(Some("v1"), &one).unwrap();
        assert_eq!(layout.find(None).unwrap().digest(), one.digest());
        layout.set_entry(Some("v1"), &two).unwrap();
        layout.set_entry(None, &one).unwrap();
        layout.set_entry(None, &one).unwrap();
        assert_eq!(layout.entries().unwrap().len(), 2);
        // One named entry among unnamed ones (referrers) is the artifact.
        assert_eq!(layout.find(None).unwrap().digest(), two.digest());
        layout.set_entry(Some("v2"), &one).unwrap();
        assert_eq!(layout.find(Some("v1")).unwrap().digest(), two.digest());
        let by_digest = layout.find(Some(one.digest().as_ref())).unwrap();
        assert_eq!(ref_name(&by_digest), None);
        assert!(matches!(
            layout.find(None),
            Err(StoreError::AmbiguousLayout { .. })
        ));
        // Temporary index files were renamed away and no lock file was
        // made: only the layout remains.
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["blobs", "index.json", "oci-layout"]);
        assert!(LayoutDir::open(&temp.path().join("missing")).is_err());
    }

    #[test]
    fn a_stores_layout_is_written_as_the_store() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path().join("store")).unwrap();
        let layout = LayoutDir::create(&store.layout_dir()).unwrap();
        assert_eq!(layout.path(), store.layout_dir());
        let manifest = Descriptor::new(
            MediaType::ImageManifest,
            1,
            ferry_spec::digest::sha256_digest(b"m"),
        );
        layout.set_entry(Some("localhost/m:v1"), &manifest).unwrap();
        assert_eq!(
            store.resolve("localhost/m:v1").unwrap().descriptor.digest(),
            manifest.digest()
        );
        assert!(
            layout
                .set_entry(Some("Not A Reference!"), &manifest)
                .is_err()
        );
        // The store's own lock and tmp were used, not files in artifacts/.
        assert!(!store.layout_dir().join("index.lock").exists());
        let mut writer = layout.store().blob_writer().unwrap();
        assert_eq!(writer.temp_path().parent(), Some(store.tmp_dir().as_path()));
        writer.write_all_bytes(b"m").unwrap();
        writer.commit(Some(manifest.digest())).unwrap();
        assert!(store.has_blob(manifest.digest()));
        drop(layout);
        assert!(LayoutDir::open(&store.layout_dir()).is_ok());
    }
}
