//! `index.json`: the names of the manifests in the store.
//!
//! Each entry is a manifest descriptor whose `org.opencontainers.image.ref.name`
//! holds the full normalized reference (`docker.io/library/m:latest`), as
//! CRI-O and Podman expect. Updates hold the index lock and replace the file
//! atomically, so concurrent processes never lose an entry and a crash never
//! leaves a torn file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::Path;

use ferry_spec::Reference;
use ferry_spec::annotations::REF_NAME;
use ferry_spec::oci::{Descriptor, Digest, ImageIndex};

use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;

/// The index of an empty store.
pub const EMPTY_INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// Replaces `path` with `bytes` durably. The temp file lives in tmp/ (same
/// filesystem), so a crash leaves debris only where prune looks for it.
pub fn write_atomically(store: &Store, path: &Path, bytes: &[u8]) -> Result<()> {
    ferry_spec::durable::write_file(
        path,
        bytes,
        Some(&store.tmp_dir()),
        ferry_spec::durable::SHARED_FILE_MODE,
    )
    .ctx("replacing", path)
}

/// The reference name recorded on an index entry, if any.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// What a user's reference resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The normalized name, when the lookup was by name.
    pub reference: Option<String>,
    /// The manifest descriptor.
    pub descriptor: Descriptor,
}

/// Parses a user reference and returns its normalized full form (see
/// [`ferry_spec::names::parse_reference`]).
pub fn normalize_reference(input: &str) -> Result<Reference> {
    ferry_spec::names::parse_reference(input).map_err(|e| StoreError::InvalidReference {
        input: e.input,
        reason: e.reason,
    })
}

impl Store {
    /// Reads and parses `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = fs::read(&path).ctx("reading", &path)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptIndex {
            path: path.clone(),
            reason: e.to_string(),
        })
    }

    /// Every manifest descriptor in the index, in index order.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index()?.manifests().clone())
    }

    pub(crate) fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Vec<Descriptor>) -> T,
    ) -> Result<T> {
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        let out = change(&mut manifests);
        index.set_manifests(manifests);
        let bytes =
            ferry_spec::json::canonical_json(&index).map_err(|source| StoreError::Serialize {
                what: "index.json",
                source,
            })?;
        write_atomically(self, &self.index_path(), &bytes)?;
        Ok(out)
    }

    /// Names `descriptor` as `reference`, replacing what that name pointed to.
    pub fn set_reference(&self, reference: &Reference, descriptor: &Descriptor) -> Result<()> {
        let name = reference.whole();
        let mut entry = descriptor.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.clone());
        entry.set_annotations(Some(annotations));
        self.update_index(|manifests| {
            manifests.retain(|d| ref_name(d) != Some(name.as_str()));
            manifests.push(entry);
        })
    }

    /// Names `descriptor` as `reference` only if that name still points at
    /// `expected` (`None`: the name is unused); returns whether it did. A
    /// read-modify-write of a named document (a signature tag) retries
    /// when another writer changed it in between.
    pub fn compare_and_set_reference(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
        descriptor: &Descriptor,
    ) -> Result<bool> {
        let name = reference.whole();
        let mut entry = descriptor.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.clone());
        entry.set_annotations(Some(annotations));
        self.update_index(|manifests| {
            let current = manifests
                .iter()
                .find(|d| ref_name(d) == Some(name.as_str()))
                .map(|d| d.digest());
            if current != expected {
                return false;
            }
            manifests.retain(|d| ref_name(d) != Some(name.as_str()));
            manifests.push(entry);
            true
        })
    }

    /// Adds `descriptor` as an unnamed entry (how the store keeps
    /// referrers) unless an unnamed entry for its digest exists.
    pub fn add_unnamed(&self, descriptor: &Descriptor) -> Result<()> {
        let mut entry = descriptor.clone();
        if let Some(mut annotations) = entry.annotations().clone() {
            annotations.remove(REF_NAME);
            entry.set_annotations((!annotations.is_empty()).then_some(annotations));
        }
        self.update_index(|manifests| {
            let listed = manifests
                .iter()
                .any(|d| d.digest() == entry.digest() && ref_name(d).is_none());
            if !listed {
                manifests.push(entry);
            }
        })
    }

    /// Removes the entry named `reference`; returns its descriptor.
    pub fn remove_reference(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let name = reference.whole();
        self.update_index(|manifests| {
            let position = manifests
                .iter()
                .position(|d| ref_name(d) == Some(name.as_str()))?;
            Some(manifests.remove(position))
        })
    }

    /// Removes every entry pointing at `digest`; returns how many there were.
    pub fn remove_digest(&self, digest: &Digest) -> Result<usize> {
        self.update_index(|manifests| {
            let before = manifests.len();
            manifests.retain(|d| d.digest() != digest);
            before - manifests.len()
        })
    }

    /// Resolves a name (`m`, `host/m:v1`), `name@sha256:...` or a bare
    /// `sha256:...` digest to a manifest descriptor in the index.
    pub fn resolve(&self, input: &str) -> Result<Resolved> {
        let entries = self.entries()?;
        if input.starts_with("sha256:") || input.starts_with("sha512:") {
            return entry_by_digest(entries, &parse_digest(input)?, input);
        }
        // A name exactly as the index records it needs no parsing, which
        // matters for `ferry mount`'s latency: building the reference
        // grammar's regex costs tens of milliseconds.
        if let Some(descriptor) = entries.iter().find(|d| ref_name(d) == Some(input)) {
            return Ok(Resolved {
                reference: Some(input.to_string()),
                descriptor: descriptor.clone(),
            });
        }
        let reference = normalize_reference(input)?;
        if let Some(digest) = reference.digest() {
            return entry_by_digest(entries, &parse_digest(digest)?, input);
        }
        let name = reference.whole();
        entries
            .into_iter()
            .find(|d| ref_name(d) == Some(name.as_str()))
            .map(|descriptor| Resolved {
                reference: Some(name.clone()),
                descriptor,
            })
            .ok_or(StoreError::NotFound(name))
    }

    /// Every blob reachable from the index: manifests, configs, layers,
    /// subjects' referrers (all by digest), for GC and fsck.
    pub fn reachable_blobs(&self) -> Result<HashMap<Digest, Reach>> {
        self.reachable_from(self.entries()?)
    }

    /// Every blob reachable from `roots` (manifest or index descriptors,
    /// and what they reference), as [`Store::reachable_blobs`] walks them.
    pub fn reachable_from(&self, roots: Vec<Descriptor>) -> Result<HashMap<Digest, Reach>> {
        let mut reach = HashMap::new();
        let mut stack: Vec<Descriptor> = roots;
        while let Some(descriptor) = stack.pop() {
            let digest = descriptor.digest().clone();
            if reach.contains_key(&digest) {
                continue;
            }
            let media_type = descriptor.media_type().to_string();
            reach.insert(
                digest.clone(),
                Reach {
                    size: descriptor.size(),
                },
            );
            let is_manifest = ferry_spec::media::is_image_manifest(&media_type);
            let is_index = ferry_spec::media::is_image_index(&media_type);
            if !(is_manifest || is_index) || !self.has_blob(&digest) {
                continue;
            }
            let Ok(bytes) = self.read_document(&digest) else {
                continue;
            };
            if is_manifest {
                if let Ok(manifest) =
                    serde_json::from_slice::<ferry_spec::oci::ImageManifest>(&bytes)
                {
                    stack.push(manifest.config().clone());
                    stack.extend(manifest.layers().iter().cloned());
                }
            } else if let Ok(index) = serde_json::from_slice::<ImageIndex>(&bytes) {
                stack.extend(index.manifests().iter().cloned());
            }
        }
        Ok(reach)
    }
}

/// What the index says about a reachable blob.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    /// The size the referencing descriptor declares.
    pub size: u64,
}

/// The index entry of manifest `digest` (what `input` asked for, in errors).
fn entry_by_digest(entries: Vec<Descriptor>, digest: &Digest, input: &str) -> Result<Resolved> {
    entries
        .into_iter()
        .find(|d| d.digest() == digest)
        .map(|descriptor| Resolved {
            reference: None,
            descriptor,
        })
        .ok_or_else(|| StoreError::NotFound(input.to_string()))
}

/// Parses a digest string with a clear error.
pub fn parse_digest(input: &str) -> Result<Digest> {
    ferry_spec::digest::parse_digest(input).map_err(|e| StoreError::InvalidReference {
        input: input.to_string(),
        reason: match e {
            ferry_spec::digest::DigestError::Invalid { reason, .. } => reason,
            unsupported => unsupported.to_string(),
        },
    })
}

/// Confirms a file is a readable index (used by fsck to report corruption).
pub fn check_index_file(path: &Path) -> Result<()> {
    let file = File::open(path).ctx("reading", path)?;
    serde_json::from_reader::<_, ImageIndex>(std::io::BufReader::new(file)).map_err(|e| {
        StoreError::CorruptIndex {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_spec::oci::MediaType;

    fn manifest(content: &[u8]) -> Descriptor {
        Descriptor::new(
            MediaType::ImageManifest,
            content.len() as u64,
            ferry_spec::digest::sha256_digest(content),
        )
    }

    #[test]
    fn compare_and_set_only_replaces_what_was_read() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        let name = normalize_reference("localhost/m:sha256-x.sig").unwrap();
        let (one, two) = (manifest(b"1"), manifest(b"2"));
        assert!(store.compare_and_set_reference(&name, None, &one).unwrap());
        assert!(
            !store.compare_and_set_reference(&name, None, &two).unwrap(),
            "the name is taken: a writer that read nothing loses"
        );
        assert!(
            !store
                .compare_and_set_reference(&name, Some(two.digest()), &two)
                .unwrap()
        );
        assert!(
            store
                .compare_and_set_reference(&name, Some(one.digest()), &two)
                .unwrap()
        );
        let resolved = store.resolve("localhost/m:sha256-x.sig").unwrap();
        assert_eq!(resolved.descriptor.digest(), two.digest());
        assert_eq!(store.entries().unwrap().len(), 1);
    }

    #[test]
    fn unnamed_entries_are_added_once() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(temp.path()).unwrap();
        let referrer = manifest(b"r");
        store
            .set_reference(&normalize_reference("localhost/m:v1").unwrap(), &referrer)
            .unwrap();
        store.add_unnamed(&referrer).unwrap();
        store.add_unnamed(&referrer).unwrap();
        let entries = store.entries().unwrap();
        assert_eq!(
            entries.len(),
            2,
            "a named entry does not stand for the unnamed one"
        );
        assert_eq!(entries.iter().filter(|d| ref_name(d).is_none()).count(), 1);
    }
}
