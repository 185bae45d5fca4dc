//! Integration tests of ferry's distribution client against an in-process
//! hostile registry ([`hostile`]): wrong digests, cut and stalled bodies,
//! retries, auth challenges, redirects, oversized documents, interrupted
//! uploads, mounts, mirrors, and what copies leave on disk.

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod bodies;
mod common;
mod copy;
mod download;
mod hostile;
mod mirrors;
mod origins;
mod ranged;
mod remote_extract;
mod signatures;
mod upload;
