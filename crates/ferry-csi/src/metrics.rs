//! Prometheus metrics (OpenMetrics text on `--metrics-addr`): publishes
//! and their failures by gRPC code, publish latency, bytes pulled, and the
//! bytes the store holds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::Status;

use crate::driver::{Driver, DriverError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    /// `OK`, or the gRPC code of the failure (`NotFound`, ...).
    code: String,
}

/// The driver's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    publishes: Family<Outcome, Counter>,
    latency: Histogram,
    pulled_bytes: Counter,
    store_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let publishes = Family::<Outcome, Counter>::default();
        // 5 ms to about 80 s: a cached publish to a large first pull.
        let latency = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let pulled_bytes = Counter::default();
        let store_bytes = Gauge::default();
        let mut registry = Registry::with_prefix("ferry_csi");
        registry.register(
            "publishes",
            "NodePublishVolume calls by outcome (OK or the gRPC code)",
            publishes.clone(),
        );
        registry.register(
            "publish_seconds",
            "NodePublishVolume latency, pull included",
            latency.clone(),
        );
        registry.register(
            "pulled_bytes",
            "Bytes downloaded from registries by publishes",
            pulled_bytes.clone(),
        );
        registry.register(
            "store_bytes",
            "Bytes of blobs in the store (the shared cache)",
            store_bytes.clone(),
        );
        Metrics {
            registry,
            publishes,
            latency,
            pulled_bytes,
            store_bytes,
        }
    }
}

impl Metrics {
    /// Counts a publish and its latency.
    pub(crate) fn published(&self, result: &Result<(), Status>, took: Duration) {
        let code = match result {
            Ok(()) => "OK".to_string(),
            Err(status) => format!("{:?}", status.code()),
        };
        self.publishes.get_or_create(&Outcome { code }).inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Counts downloaded bytes.
    pub(crate) fn pulled(&self, bytes: u64) {
        self.pulled_bytes.inc_by(bytes);
    }

    /// The OpenMetrics text, with the store's size measured now.
    pub fn render(&self, store_root: &Path) -> String {
        let bytes = blob_bytes(&store_root.join("artifacts/blobs"));
        self.store_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn blob_bytes(blobs: &Path) -> u64 {
    let Ok(algorithms) = std::fs::read_dir(blobs) else {
        return 0;
    };
    algorithms
        .flatten()
        .filter_map(|dir| std::fs::read_dir(dir.path()).ok())
        .flatten()
        .flatten()
        .filter_map(|blob| blob.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Serves `GET /metrics` on `addr` until `shutdown` completes.
pub async fn serve_metrics(
    driver: Arc<Driver>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DriverError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DriverError::Metrics { addr, source })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let driver = Arc::clone(&driver);
            async move {
                let root = driver.store.root().to_path_buf();
                let text = tokio::task::spawn_blocking(move || driver.metrics.render(&root))
                    .await
                    .unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| DriverError::Metrics { addr, source })
}
