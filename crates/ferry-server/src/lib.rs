//! ferry-server: an embedded OCI distribution-spec v1.1 registry.
//!
//! Storage is behind the [`storage::Storage`] trait (streams in and out, no
//! files): [`storage::fs::FsStorage`] keeps blobs content-addressed once for
//! all repositories, durably, and its uploads survive restarts;
//! [`storage::memory::MemoryStorage`] is the in-memory reference backend.
//! Requests are streamed with bounded memory.
//!
//! Hostile clients meet limits ([`ServerConfig`]): open connections are
//! capped per client address and in total (under the open-file limit) and
//! silent, stalled or non-reading ones are closed; a manifest body has a
//! total deadline, a blob body an idle one; upload sessions are capped per
//! client address and in total and expire when idle or at their lifetime,
//! even mid-append; password checks run off the async threads, a few at a
//! time, each costing the same, and a client that keeps failing is told to
//! wait (429).
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
mod connections;
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
use axum::http::{HeaderValue, header};
pub use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use auth::{Access, AuthLimits};
use connections::ConnectionLimit;
pub use routes::UploadLimits;
use routes::{AppState, SessionTracker};
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
    /// A client that sends nothing for this long loses its request; also
    /// the limit for a connection's first request, for each request head,
    /// for HTTP/2 pings to be answered and for a client that reads nothing.
    pub idle_timeout: Duration,
    /// A whole manifest body must arrive within this.
    pub manifest_timeout: Duration,
    /// Connections open at once (lowered to what the open-file limit
    /// allows); an eighth as many more wait briefly, then are closed, and
    /// any beyond that are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client (an IPv4 address or an
    /// IPv6 /64); more are closed at once.
    pub max_connections_per_client: usize,
    /// Upload sessions are removed this long after they started.
    pub upload_ttl: Duration,
    /// Upload sessions that receive nothing for this long are removed.
    pub upload_idle_ttl: Duration,
    /// Caps on open upload sessions.
    pub upload_limits: UploadLimits,
    /// Limits on password checks.
    pub auth_limits: AuthLimits,
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
            manifest_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_client: 64,
            upload_ttl: Duration::from_secs(24 * 3600),
            upload_idle_ttl: Duration::from_secs(15 * 60),
            upload_limits: UploadLimits::default(),
            auth_limits: AuthLimits::default(),
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
    /// A whole manifest body must arrive within this (default 60 s).
    pub manifest_timeout: Duration,
    /// Caps on open upload sessions.
    pub upload_limits: UploadLimits,
    /// An upload session takes bytes for this long after it started
    /// (default 24 h).
    pub upload_ttl: Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            access: Access::default(),
            max_manifest_bytes: 4 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            manifest_timeout: Duration::from_secs(60),
            upload_limits: UploadLimits::default(),
            upload_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The registry's HTTP service (every `/v2/` route) over `storage`: what
/// [`serve`] listens with, and what embedders, tests and fuzzers call
/// directly (e.g. with `tower::ServiceExt::oneshot`).
pub fn app(storage: Arc<dyn Storage>, options: AppOptions) -> Router {
    let sessions = Arc::new(SessionTracker::new(
        options.upload_limits.clone(),
        options.upload_ttl,
    ));
    app_with_sessions(storage, options, sessions)
}

fn app_with_sessions(
    storage: Arc<dyn Storage>,
    options: AppOptions,
    sessions: Arc<SessionTracker>,
) -> Router {
    let state = Arc::new(AppState {
        storage,
        access: options.access,
        max_manifest_bytes: options.max_manifest_bytes,
        idle_timeout: options.idle_timeout,
        manifest_timeout: options.manifest_timeout,
        sessions,
    });
    Router::new()
        .fallback(routes::dispatch)
        .with_state(state)
        .layer(axum::middleware::map_response(add_api_version))
        // Manifests and errors carry client-chosen bytes: browsers must
        // never sniff them into HTML on the registry's origin.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TraceLayer::new_for_http())
}

/// Connection timeouts: a silent connection is closed by axum-server's
/// first-request timeout (which also covers protocol detection), an HTTP/1
/// client stalled in a request head (first or keep-alive) by hyper's header
/// timeout, an HTTP/2 peer that stops answering pings by keep-alive, and
/// one with nothing to do by [`ConnectionLimit`].
fn apply_timeouts(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    idle: Duration,
) {
    builder.http1().header_read_timeout(idle);
    // Pings are traffic: sent more often than `idle`, they would keep an
    // idle connection open forever (see `connections`).
    builder
        .http2()
        .keep_alive_interval(idle.saturating_mul(2))
        .keep_alive_timeout(idle)
        // Each stream may hold a blob file open: one HTTP/2 connection gets
        // no more than a busy HTTP/1 client would use in parallel (hyper's
        // default is 200).
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
}

/// Requests in flight on one HTTP/2 connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 32;

/// Removes upload sessions idle for `idle` or older than `lifetime`, and
/// stops counting them against their clients.
async fn expire_sessions(
    storage: Arc<dyn Storage>,
    sessions: Arc<SessionTracker>,
    idle: Duration,
    lifetime: Duration,
) {
    let period =
        (idle.min(lifetime) / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        match storage.expire_sessions(idle, lifetime).await {
            Ok(expired) => {
                if !expired.is_empty() {
                    tracing::info!("expired {} stale upload sessions", expired.len());
                }
                for id in &expired {
                    sessions.release(id);
                }
            }
            Err(e) => tracing::warn!("expiring upload sessions: {e}"),
        }
    }
}

/// Descriptors kept for everything but connections: the listener, storage
/// directories, logs, files of gc and of requests beyond one per connection.
const RESERVED_FILES: usize = 128;

/// Descriptors one connection may need: its socket and the blob or upload
/// file it streams.
const FILES_PER_CONNECTION: usize = 2;

/// Raises the soft limit on open files to the hard limit, so the connection
/// cap is reached before the process runs out of descriptors (EMFILE would
/// fail blob opens and accepts alike); returns the soft limit now in force.
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct passed, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(
            "reading the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct passed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                "raised the open-file limit from {} to {}",
                limit.rlim_cur,
                raised.rlim_cur
            );
            limit = raised;
        } else {
            tracing::warn!(
                "raising the open-file limit from {}: {}",
                limit.rlim_cur,
                std::io::Error::last_os_error()
            );
        }
    }
    Some(limit.rlim_cur)
}

/// The connection cap in force: `configured`, lowered so that connections
/// and a reserve for files fit under the open-file limit.
fn connection_cap(configured: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else {
        return configured;
    };
    let open_files = usize::try_from(open_files).unwrap_or(usize::MAX);
    let fits = (open_files.saturating_sub(RESERVED_FILES) / FILES_PER_CONNECTION).max(1);
    if fits < configured {
        tracing::warn!(
            "at most {fits} connections at once, not {configured}: the open-file limit is {open_files}"
        );
        return fits;
    }
    configured
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
    let access = Access::with_limits(
        config.htpasswd.as_deref(),
        config.anonymous_pull,
        config.read_only,
        config.auth_limits.clone(),
    )?;
    // Loaded before anything is spawned, so a bad certificate leaves nothing running.
    let tls = match &config.tls {
        Some((cert, key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(ServerError::Tls)?,
        ),
        None => None,
    };
    let sessions = Arc::new(SessionTracker::new(
        config.upload_limits.clone(),
        config.upload_ttl,
    ));
    let app = app_with_sessions(
        storage.clone(),
        AppOptions {
            access,
            max_manifest_bytes: config.max_manifest_bytes,
            idle_timeout: config.idle_timeout,
            manifest_timeout: config.manifest_timeout,
            upload_limits: config.upload_limits.clone(),
            upload_ttl: config.upload_ttl,
        },
        sessions.clone(),
    );
    let expiry = tokio::spawn(expire_sessions(
        storage,
        sessions,
        config.upload_idle_ttl,
        config.upload_ttl,
    ));
    let addr = config.addr;
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let limit = ConnectionLimit::new(
        DefaultAcceptor::new(),
        connection_cap(config.max_connections, raise_open_file_limit()),
        config.max_connections_per_client,
        config.idle_timeout,
    );
    let result = match tls {
        Some(tls) => {
            let mut server = axum_server::bind_rustls(addr, tls)
                .map(|tls| tls.acceptor(limit))
                .handle(handle)
                .first_request_timeout(config.idle_timeout);
            apply_timeouts(server.http_builder(), config.idle_timeout);
            server.serve(service).await
        }
        None => {
            let mut server = axum_server::bind(addr)
                .acceptor(limit)
                .handle(handle)
                .first_request_timeout(config.idle_timeout);
            apply_timeouts(server.http_builder(), config.idle_timeout);
            server.serve(service).await
        }
    };
    expiry.abort();
    result.map_err(|source| ServerError::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_under_the_open_file_limit() {
        assert_eq!(connection_cap(1024, None), 1024);
        assert_eq!(connection_cap(1024, Some(u64::MAX)), 1024);
        assert_eq!(connection_cap(1024, Some(1_048_576)), 1024);
        // The usual soft limit: 1024 connections would run out of files.
        let capped = connection_cap(1024, Some(1024));
        assert_eq!(capped, (1024 - RESERVED_FILES) / FILES_PER_CONNECTION);
        assert_eq!(connection_cap(1024, Some(10)), 1);
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let soft = raise_open_file_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(soft, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
