//! Serving the three CSI services on a unix socket, as kubelet and the
//! sidecars expect: a stale socket from an earlier run is replaced, and
//! SIGTERM (or SIGINT) stops the server after the calls in progress.

use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::controller::ControllerService;
use crate::driver::{Driver, DriverError};
use crate::identity::IdentityService;
use crate::node::NodeService;
use crate::proto::controller_server::ControllerServer;
use crate::proto::identity_server::IdentityServer;
use crate::proto::node_server::NodeServer;

/// The socket path of `unix:///path` (or `unix:/path`, or a bare path).
pub fn socket_path(endpoint: &str) -> Result<PathBuf, DriverError> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(DriverError::Endpoint(endpoint.to_string()));
    }
    Ok(PathBuf::from(path))
}

/// Serves Identity, Node and Controller on `endpoint` until `shutdown`
/// completes, then removes the socket.
pub async fn serve(
    driver: Arc<Driver>,
    endpoint: &str,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DriverError> {
    let path = socket_path(endpoint)?;
    let listener = bind(&path)?;
    tracing::info!(
        "{} serving CSI on {} for node {}",
        driver.options.driver_name,
        path.display(),
        driver.options.node_id
    );
    let served = Server::builder()
        .add_service(IdentityServer::new(IdentityService::new(Arc::clone(
            &driver,
        ))))
        .add_service(NodeServer::new(NodeService::new(Arc::clone(&driver))))
        .add_service(ControllerServer::new(ControllerService::new(driver)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(&path);
    Ok(served?)
}

/// Binds `path`, replacing a socket left by an earlier run; anything else
/// at that path (a file, a directory) is refused, never deleted.
fn bind(path: &Path) -> Result<UnixListener, DriverError> {
    let socket_error = |what| {
        let path = path.to_path_buf();
        move |source| DriverError::Socket { what, path, source }
    };
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(socket_error("removing the stale socket"))?;
        }
        Ok(_) => {
            return Err(DriverError::Socket {
                what: "binding",
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "something other than a socket is there",
                ),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_error("reading")(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(socket_error("creating the directory of"))?;
    }
    UnixListener::bind(path).map_err(socket_error("binding"))
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the server runs until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
    }
}
