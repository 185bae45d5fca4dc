//! What live volumes keep alive: `rm` and `prune` ask [`MountPins`], and the
//! layer cache collector keeps [`active_layer_keys`].

use ferry_spec::oci::Digest;
use ferry_store::Store;
use ferry_store::maintenance::{Pin, Pins};

use crate::error::Result;
use crate::layers::LayerKey;
use crate::volume::active_records;

/// The manifests of live volumes (and of mounts in progress): `rm` refuses
/// to remove them and `prune` keeps their blobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountPins;

impl Pins for MountPins {
    fn pinned(&self, store: &Store) -> ferry_store::Result<Vec<Pin>> {
        let records = active_records(store).map_err(|e| match e {
            crate::MountError::Store(e) => e,
            other => ferry_store::StoreError::PinsUnreadable {
                source: Box::new(other),
            },
        })?;
        let mut pins = Vec::new();
        for record in records {
            for artifact in &record.artifacts {
                // A record is a file a user could edit; a digest that does
                // not parse pins nothing.
                if let Ok(manifest) = Digest::try_from(artifact.digest.as_str()) {
                    pins.push(Pin {
                        manifest,
                        holder: format!("the mount at {}", record.target.display()),
                    });
                }
            }
        }
        Ok(pins)
    }
}

/// The layer cache entries live volumes use.
pub fn active_layer_keys(store: &Store) -> Result<Vec<LayerKey>> {
    Ok(active_records(store)?
        .iter()
        .flat_map(|r| r.layers.iter().filter_map(|k| LayerKey::parse(k)))
        .collect())
}
