//! The driver's state shared by its services: the store, its records, the
//! operations in flight, and how to reach registries.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tonic::Status;

use ferry_store::Store;

use crate::credentials::RegistrySettings;
use crate::metrics::Metrics;
use crate::records::Records;

/// What `ferry csi` is told.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// The store the driver pulls into and mounts from.
    pub store_root: PathBuf,
    /// This node's name (`NodeGetInfo`).
    pub node_id: String,
    /// The name registered with Kubernetes (`GetPluginInfo`).
    pub driver_name: String,
    /// A signature policy file; else the usual places (see `ferry_sign::policy`).
    pub policy: Option<PathBuf>,
    /// How registries are reached.
    pub registries: RegistrySettings,
    /// Blobs pulled at once.
    pub concurrency: usize,
}

/// The driver: one per process, shared by the Identity, Node and
/// Controller services.
#[derive(Debug)]
pub struct Driver {
    pub(crate) options: DriverOptions,
    pub(crate) store: Store,
    pub(crate) records: Records,
    pub(crate) metrics: Metrics,
    in_flight: Mutex<HashSet<String>>,
    pulls: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Driver {
    /// Opens the store (creating it) and the driver's records in it.
    pub fn new(options: DriverOptions) -> Result<Arc<Driver>, DriverError> {
        let store = Store::open(&options.store_root)?;
        let records = Records::open(store.root()).map_err(|source| DriverError::Records {
            path: store.root().join("csi"),
            source,
        })?;
        Ok(Arc::new(Driver {
            options,
            store,
            records,
            metrics: Metrics::default(),
            in_flight: Mutex::new(HashSet::new()),
            pulls: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// The metrics this driver keeps.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Marks an operation on `volume_id` in flight until the guard drops;
    /// `Aborted` when one already is (the CSI spec's answer: the caller
    /// retries later). The guard owns the driver, so it can move into the
    /// blocking task that does the work: a call the caller abandons (a
    /// kubelet timeout) keeps the volume busy until its work is done.
    pub(crate) fn begin(self: &Arc<Self>, volume_id: &str) -> Result<InFlight, Status> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !in_flight.insert(volume_id.to_string()) {
            return Err(Status::aborted(format!(
                "an operation on volume {volume_id} is in progress"
            )));
        }
        Ok(InFlight {
            driver: Arc::clone(self),
            volume_id: volume_id.to_string(),
        })
    }

    /// Serializes the pulls of one reference: concurrent publishes of an
    /// artifact pull it once, the others find it in the store.
    pub(crate) async fn pull_lock(&self, reference: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut pulls = self.pulls.lock().await;
            // References nobody pulls now are forgotten: pod authors choose
            // them, so the map must not grow with every one ever asked.
            pulls.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(pulls.entry(reference.to_string()).or_default())
        };
        lock.lock_owned().await
    }
}

/// An operation in flight on one volume.
pub(crate) struct InFlight {
    driver: Arc<Driver>,
    volume_id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.driver
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.volume_id);
    }
}

/// Why the driver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    /// The records directory cannot be made.
    #[error("{}: {source}", path.display())]
    Records {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket cannot be set up.
    #[error("{what} {}: {source}", path.display())]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint is not `unix://PATH`.
    #[error("endpoint {0:?}: only unix:///path/to/socket is supported")]
    Endpoint(String),
    /// Serving failed.
    #[error("serving gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The metrics listener failed.
    #[error("metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_operation_on_a_volume_is_aborted_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let driver = Driver::new(DriverOptions {
            store_root: dir.path().join("store"),
            node_id: "n".into(),
            driver_name: "d".into(),
            policy: None,
            registries: RegistrySettings::default(),
            concurrency: 1,
        })
        .unwrap();
        let first = driver.begin("vol").unwrap();
        let status = driver.begin("vol").err().expect("a second operation");
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(driver.begin("other").is_ok(), "other volumes go on");
        drop(first);
        assert!(driver.begin("vol").is_ok(), "the volume is free again");
    }
}
