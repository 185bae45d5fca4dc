//! Integration tests of ferry's distribution client against an in-process
//! hostile registry ([`hostile`]): wrong digests, cut and stalled bodies,
//! retries, auth challenges, redirects, oversized documents, interrupted
//! uploads, mounts and mirrors.

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod common;
mod download;
mod hostile;
mod mirrors;
mod upload;
