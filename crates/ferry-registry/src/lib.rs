//! ferry-registry: the OCI distribution client.
//!
//! [`client::Client`] owns transport concerns (TLS, proxies, auth challenges
//! and tokens, retries with backoff from [`retry`]; every URL a registry
//! names is resolved in one place, which keeps credentials on the
//! registry's origin and refuses HTTPS-to-HTTP moves); [`body`] reads every
//! buffered response body within a limit; [`api`] holds every
//! endpoint of the distribution API; [`upload`] is the one way a blob goes
//! up; [`sources`] sends every read to the configured mirrors before the
//! registry; [`transfer`] moves artifacts between the local store and
//! registries, verifying every byte before it enters the store; [`referrers`]
//! attaches artifacts to manifests and discovers them (with the fallback tag
//! where a registry lacks the referrers API); [`signatures`] finds, stores
//! and moves cosign signatures (bundle referrers and `.sig` tags) as bytes,
//! on registries and in the store; [`image_index`] builds
//! multi-platform indexes; [`copy`] moves artifacts between registries, OCI
//! layouts and layout archives; [`remote_extract`] writes files from a
//! registry straight into a directory; [`pack_push`] packs a directory while
//! uploading it.

pub mod admission;
pub mod api;
pub mod archive;
pub mod artifact_files;
mod auth;
pub mod body;
pub mod bridge;
pub mod client;
pub mod copy;
pub mod credentials;
mod download;
pub mod error;
pub mod hosts;
pub mod image_index;
mod net;
mod origin;
pub mod pack_push;
pub mod platform;
pub mod progress;
pub mod referrers;
mod remote_diff_ids;
pub mod remote_extract;
mod request;
pub mod retry;
pub mod signatures;
pub mod sources;
pub mod transfer;
pub mod upload;

pub use client::{Client, ClientOptions, Endpoint, RangeOptions};
pub use error::{ClientError, Result};
