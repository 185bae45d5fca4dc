//! What the driver has done, on disk beside the store, so a restarted
//! driver knows it: one JSON file per published target (the node side) and
//! one per created volume (the controller side), each replaced durably
//! (temp file, fsync, rename). The mounts themselves are `ferry mount`'s
//! records; these add the CSI volume they belong to.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::attributes::VolumeSpec;

/// A volume published at a target path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The CSI volume id.
    pub volume_id: String,
    /// Where it is mounted.
    pub target: PathBuf,
    /// [`VolumeSpec::fingerprint`] of what was asked.
    pub fingerprint: String,
    /// What was asked.
    pub spec: VolumeSpec,
    /// An inline volume.
    pub ephemeral: bool,
}

/// A volume the controller created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// The name the CO asked for (a PV name).
    pub name: String,
    /// The id handed back.
    pub volume_id: String,
    /// [`VolumeSpec::fingerprint`] of its parameters.
    pub fingerprint: String,
}

/// The records of one driver, under `<store>/csi/`.
#[derive(Debug, Clone)]
pub struct Records {
    published: PathBuf,
    created: PathBuf,
}

impl Records {
    /// Opens (creating) the record directories under `store_root`.
    pub fn open(store_root: &Path) -> io::Result<Records> {
        let records = Records {
            published: store_root.join("csi/published"),
            created: store_root.join("csi/created"),
        };
        std::fs::create_dir_all(&records.published)?;
        std::fs::create_dir_all(&records.created)?;
        Ok(records)
    }

    /// The record of what is published at `target`.
    pub fn published(&self, target: &Path) -> io::Result<Option<Published>> {
        read(&self.published_path(target))
    }

    /// Records a publish.
    pub fn put_published(&self, record: &Published) -> io::Result<()> {
        write(&self.published_path(&record.target), record)
    }

    /// Forgets what was published at `target` (nothing to forget is fine).
    pub fn remove_published(&self, target: &Path) -> io::Result<()> {
        remove(&self.published_path(target))
    }

    /// Every published record (for volume stats by id and for metrics).
    pub fn all_published(&self) -> io::Result<Vec<Published>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.published)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(record) = read(&path)?
            {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// The volume created under `name`.
    pub fn created(&self, name: &str) -> io::Result<Option<Created>> {
        read(&self.created_path(name))
    }

    /// The volume created with id `volume_id`.
    pub fn created_by_id(&self, volume_id: &str) -> io::Result<Option<Created>> {
        for entry in std::fs::read_dir(&self.created)? {
            let path = entry?.path();
            if let Some(record) = read::<Created>(&path)?
                && record.volume_id == volume_id
            {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Records a created volume.
    pub fn put_created(&self, record: &Created) -> io::Result<()> {
        write(&self.created_path(&record.name), record)
    }

    /// Forgets a created volume.
    pub fn remove_created(&self, name: &str) -> io::Result<()> {
        remove(&self.created_path(name))
    }

    fn published_path(&self, target: &Path) -> PathBuf {
        self.published.join(format!(
            "{}.json",
            hashed(target.as_os_str().as_encoded_bytes())
        ))
    }

    fn created_path(&self, name: &str) -> PathBuf {
        self.created
            .join(format!("{}.json", hashed(name.as_bytes())))
    }
}

/// File names are hashes: targets and names are untrusted strings.
fn hashed(key: &[u8]) -> String {
    hex::encode(Sha256::digest(key))
}

fn read<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    ferry_spec::durable::write_file(path, &bytes, None, 0o600)
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => match path.parent() {
            Some(dir) => ferry_spec::durable::sync_dir(dir),
            None => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
