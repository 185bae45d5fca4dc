//! ferry-registry: the OCI distribution client.
//!
//! [`client::Client`] owns transport concerns (TLS, proxies, auth challenges
//! and tokens, retries with backoff); [`api`] speaks the distribution API;
//! [`transfer`] moves artifacts between the local store and registries,
//! verifying every byte before it enters the store; [`referrers`] attaches
//! artifacts to manifests and discovers them (with the fallback tag where a
//! registry lacks the referrers API); [`image_index`] builds multi-platform
//! indexes.

pub mod api;
pub mod auth;
pub mod client;
pub mod credentials;
pub mod error;
pub mod hosts;
pub mod image_index;
pub mod platform;
pub mod progress;
pub mod referrers;
pub mod retry;
pub mod transfer;

pub use client::{Client, ClientOptions, Endpoint};
pub use error::{ClientError, Result};
