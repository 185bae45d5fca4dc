//! ferry-server: an embedded OCI distribution-spec v1.1 registry.
//!
//! Storage is behind the [`storage::Storage`] trait (streams in and out, no
//! files): [`storage::fs::FsStorage`] keeps blobs content-addressed once for
//! all repositories, durably, and its uploads survive restarts;
//! [`storage::memory::MemoryStorage`] is the in-memory reference backend.
//! Requests are streamed with bounded memory.
//!
//! ```no_run
//! # async fn run() -> Result<(), ferry_server::ServerError> {
//! let config = ferry_server::ServerConfig::new("/tmp/registry".into());
//! let handle = ferry_server::Handle::new();
//! ferry_server::serve(config, handle).await
//! # }
//! ```
//!
//! The HTTP service alone, over any backend (for embedding, tests, fuzzing):
//!
//! ```
//! use std::sync::Arc;
//! use ferry_server::{AppOptions, app, storage::memory::MemoryStorage};
//!
//! let router: axum::Router = app(Arc::new(MemoryStorage::new()), AppOptions::default());
//! ```

pub mod auth;
pub mod error;
pub mod gc;
pub mod names;
mod routes;
pub mod storage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
pub use axum_server::Handle;
use tower_http::trace::TraceLayer;

use auth::Access;
use routes::AppState;
use storage::Storage;
use storage::fs::FsStorage;

/// Everything `ferry serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (default 127.0.0.1:5000: loopback only).
    pub addr: SocketAddr,
    /// Storage root.
    pub root: PathBuf,
    /// htpasswd file (bcrypt) enabling Basic auth.
    pub htpasswd: Option<PathBuf>,
    /// Let anyone pull when auth is on.
    pub anonymous_pull: bool,
    /// Refuse every write.
    pub read_only: bool,
    /// TLS certificate and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest manifest accepted.
    pub max_manifest_bytes: usize,
    /// A client that sends nothing for this long loses its request.
    pub idle_timeout: Duration,
    /// Upload sessions untouched for this long are removed.
    pub upload_ttl: Duration,
}

impl ServerConfig {
    /// Defaults for a storage root.
    pub fn new(root: PathBuf) -> ServerConfig {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            root,
            htpasswd: None,
            anonymous_pull: false,
            read_only: false,
            tls: None,
            max_manifest_bytes: 4 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            upload_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage could not be opened.
    #[error("opening storage at {path}: {source}")]
    Storage {
        /// The root.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The htpasswd file is unusable.
    #[error(transparent)]
    Htpasswd(#[from] auth::HtpasswdError),
    /// TLS material is unusable.
    #[error("loading TLS certificate and key: {0}")]
    Tls(std::io::Error),
    /// Binding or serving failed.
    #[error("serving on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// How the HTTP service behaves, apart from its storage.
#[derive(Debug)]
pub struct AppOptions {
    /// Who may do what (default: anyone may do anything).
    pub access: Access,
    /// Largest manifest accepted (default 4 MiB).
    pub max_manifest_bytes: usize,
    /// A request body that sends nothing for this long fails (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            access: Access::default(),
            max_manifest_bytes: 4 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The registry's HTTP service (every `/v2/` route) over `storage`: what
/// [`serve`] listens with, and what embedders, tests and fuzzers call
/// directly (e.g. with `tower::ServiceExt::oneshot`).
pub fn app(storage: Arc<dyn Storage>, options: AppOptions) -> Router {
    let state = Arc::new(AppState {
        storage,
        access: options.access,
        max_manifest_bytes: options.max_manifest_bytes,
        idle_timeout: options.idle_timeout,
    });
    Router::new()
        .fallback(routes::dispatch)
        .with_state(state)
        .layer(axum::middleware::map_response(add_api_version))
        .layer(TraceLayer::new_for_http())
}

async fn add_api_version(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        axum::http::HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// [`app`] with the given access rules and manifest limit, and the default
/// idle timeout.
pub fn router(storage: Arc<dyn Storage>, access: Access, max_manifest_bytes: usize) -> Router {
    app(
        storage,
        AppOptions {
            access,
            max_manifest_bytes,
            ..AppOptions::default()
        },
    )
}

/// Serves the filesystem storage at `config.root` until `handle` is told to
/// shut down (in-flight requests finish).
pub async fn serve(config: ServerConfig, handle: Handle<SocketAddr>) -> Result<(), ServerError> {
    let storage = FsStorage::open(&config.root).map_err(|source| ServerError::Storage {
        path: config.root.clone(),
        source,
    })?;
    serve_storage(Arc::new(storage), config, handle).await
}

/// Serves `storage` with the settings of `config` (whose `root` is not
/// used) until `handle` is told to shut down.
pub async fn serve_storage(
    storage: Arc<dyn Storage>,
    config: ServerConfig,
    handle: Handle<SocketAddr>,
) -> Result<(), ServerError> {
    let access = Access::new(
        config.htpasswd.as_deref(),
        config.anonymous_pull,
        config.read_only,
    )?;
    let app = app(
        storage.clone(),
        AppOptions {
            access,
            max_manifest_bytes: config.max_manifest_bytes,
            idle_timeout: config.idle_timeout,
        },
    );
    let expiry = {
        let storage = storage.clone();
        let ttl = config.upload_ttl;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600).min(ttl));
            loop {
                tick.tick().await;
                match storage.expire_sessions(ttl).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("expired {n} stale upload sessions"),
                    Err(e) => tracing::warn!("expiring upload sessions: {e}"),
                }
            }
        })
    };
    let addr = config.addr;
    let service = app.into_make_service();
    let result = match &config.tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(ServerError::Tls)?;
            let mut server = axum_server::bind_rustls(addr, tls).handle(handle);
            // A client stalled in its request head is dropped too.
            server
                .http_builder()
                .http1()
                .header_read_timeout(config.idle_timeout);
            server.serve(service).await
        }
        None => {
            let mut server = axum_server::bind(addr).handle(handle);
            server
                .http_builder()
                .http1()
                .header_read_timeout(config.idle_timeout);
            server.serve(service).await
        }
    };
    expiry.abort();
    result.map_err(|source| ServerError::Serve { addr, source })
}
