//! The synthetic-model generator: valid safetensors, deterministic, close
//! to the requested size, streamed; the cache; the bench binary.

mod cli;
mod generator;
mod python;
