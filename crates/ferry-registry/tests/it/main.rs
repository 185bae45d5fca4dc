//! Integration tests of ferry's distribution client against an in-process
//! hostile registry ([`hostile`]): wrong digests, cut and stalled bodies,
//! retries, auth challenges, redirects, oversized documents, interrupted
//! uploads, mounts, mirrors, and what copies leave on disk.

mod auth;
mod common;
mod copy;
mod download;
mod hostile;
mod mirrors;
mod upload;
