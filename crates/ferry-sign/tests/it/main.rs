//! ferry-sign's integration tests: one binary (link time stays low).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod artifact;
mod common;
mod cosign_policy;
mod hostile;
mod keys;
mod model;
mod policy;
