//! Integration tests of ferry-mount: planning against the recording fake
//! (no root), then real mounts (root; skipped with a note elsewhere, failed
//! under `CI=true`).

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gc;
mod hostile;
mod planning;
mod real;
