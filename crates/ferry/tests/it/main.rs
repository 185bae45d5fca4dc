//! Integration tests of the `ferry` binary, run as real processes.
//!
//! Tests that need a component this machine may lack (skopeo, root for
//! mounts, setpriv, python with oras) print a note and skip, except with
//! `CI=true`, where a missing component fails the test (see `ferry_testkit`).
//! Models come from `ferry_testkit`'s generator.

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod cli_contract;
mod commands;
mod common;
mod compression;
mod concurrency;
mod copy;
mod crash;
mod csi;
mod hf_cache;
mod interop;
mod kit_hostile;
mod model_signatures;
mod mount;
mod neighbours;
mod referrers;
mod registry;
mod reproducible;
mod scan;
mod signing;
mod wasm;
