//! The synthetic-model generator: valid safetensors, deterministic, close
//! to the requested size, streamed; the cache; the bench binary.

// Test code may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod generator;
mod python;
