//! Signatures for OCI artifacts and model directories, and the policy that
//! decides which artifacts may come in.
//!
//! One verifier for every caller (the registry client, the mount engine,
//! the CLI): it reads cosign's keys and signatures (legacy simple-signing
//! `.sig` tags and Sigstore bundle v0.3 referrers), OpenSSF model signing
//! v1.0 signatures of directories, and containers-policy.json. It depends on
//! `ferry-spec` only and does no network or store I/O: callers hand it the
//! bytes they fetched.

pub mod error;
pub mod keys;
mod pem;

pub use error::{Result, SignError};
pub use keys::{Curve, KeyDescription, KeyPair, PrivateKey, PublicKey, generate};
pub mod artifact;
pub mod bundle;
pub mod dsse;
pub mod media;
pub mod statement;

pub use artifact::{SignatureFormat, VerifiedSignature};
pub mod model;
