//! Library-level integration tests of ferry-store: one test binary, one
//! module per concern.

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod compression;
mod concurrency;
mod extract_hostile;
mod files;
mod fsck;
mod gc;
mod kitfile;
mod modelfile;
mod pack_input;
mod reproducible;
mod roundtrip;
mod schema;
