//! ferry-sign's integration tests: one binary (link time stays low).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod keys;
