//! Integration tests of `ferry serve`: the server runs in-process on a free
//! loopback port; tests speak HTTP to it (reqwest, raw sockets) and drive
//! real clients (skopeo, oras-py).
//!
//! - `conformance`: the OCI distribution-spec v1.1 conformance checklist,
//!   section by section, for sha256 and sha512.
//! - `hostile`: traversal, malformed input, stalled and concurrent clients,
//!   restarts.
//! - `auth`: htpasswd Basic auth, anonymous pull, read-only.
//! - `limits`: timeouts, connection and upload-session caps, password
//!   checks under attack.
//! - `gc`: garbage collection.
//! - `clients`: skopeo and oras-py.

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod clients;
mod common;
mod conformance;
mod gc;
mod hostile;
mod limits;
