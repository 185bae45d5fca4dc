//! The CSI driver driven through its socket as kubelet and the sidecars
//! drive it: a tonic client over the unix socket, real mounts (as root), a
//! real registry (`ferry serve` in process) for the pulls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod controller;
mod identity;
mod node;
mod registry;
