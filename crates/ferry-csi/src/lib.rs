//! ferry-csi: a Kubernetes CSI v1 plugin that mounts ModelPack artifacts
//! into pods with the `ferry mount` engine.
//!
//! - Identity ([`identity`]): name and version, the controller capability,
//!   a probe that fails while the store is unusable.
//! - Node ([`node`]): publish brings the artifacts into the store (the
//!   signature policy decides, credentials from the node's docker config or
//!   the request's secrets) and mounts them read-only (or with a private
//!   writable layer) at the target; unpublish unmounts and forgets. Inline
//!   volumes and persistent ones take the same attributes ([`attributes`]).
//! - Controller ([`controller`]): CreateVolume/DeleteVolume for
//!   PersistentVolumeClaims, ValidateVolumeCapabilities.
//!
//! What the driver published is recorded beside the store ([`records`]), so
//! a restarted driver unpublishes what an earlier one published. Errors are
//! the gRPC codes the CSI spec asks for ([`status`]). The protocol is
//! compiled from `proto/csi.proto` at build time ([`proto`]).

pub mod attributes;
pub mod controller;
pub mod credentials;
pub mod driver;
pub mod identity;
pub mod metrics;
pub mod node;
pub mod records;
pub mod server;
pub mod status;

pub use credentials::RegistrySettings;
pub use driver::{Driver, DriverError, DriverOptions};
pub use metrics::serve_metrics;
pub use server::{serve, shutdown_signal, socket_path};

/// The CSI v1 protocol, generated at build time from `proto/csi.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("csi.v1");
}
