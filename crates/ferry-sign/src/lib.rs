//! Signatures for OCI artifacts and model directories, and the policy that
//! decides which artifacts may come in.
//!
//! One verifier for every caller (the registry client, the mount engine,
//! the CLI): it reads cosign's keys and signatures (legacy simple-signing
//! `.sig` tags and Sigstore bundle v0.3 referrers), OpenSSF model signing
//! v1.0 signatures of directories, and containers-policy.json. It depends on
//! `ferry-spec` only and does no network or store I/O: callers hand it the
//! bytes they fetched.
//!
//! - [`keys`]: cosign's encrypted keys, PKCS#8/SEC1/PKIX PEM, sign, verify.
//! - [`dsse`], [`bundle`], [`statement`]: the envelope formats.
//! - [`artifact`]: cosign's bundle and legacy signatures of manifests.
//! - [`model`]: OpenSSF model signing ("files" method).
//! - [`media`]: the media types, annotations and tags the formats use.
//! - [`cosign`]: the policy's verifier for cosign signatures found for an artifact.
//! - [`policy`]: containers-policy.json: which signatures an artifact needs.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ferry_sign::artifact::{sign_manifest_bundle, verify_manifest_bundle};
//!
//! let pair = ferry_sign::generate()?;
//! let digest = ferry_spec::digest::sha256_digest(b"a manifest");
//! let bundle = sign_manifest_bundle(&pair.private, &digest, None, &BTreeMap::new());
//! let verified = verify_manifest_bundle(&bundle, &[pair.public.clone()], &digest)?;
//! assert_eq!(verified.key, pair.public.description());
//! # Ok::<(), ferry_sign::SignError>(())
//! ```

pub mod artifact;
pub mod attestation;
pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod error;
pub mod keys;
pub mod media;
pub mod model;
mod pem;
pub mod policy;
pub mod statement;

pub use artifact::{SignatureFormat, VerifiedSignature};
pub use error::{Result, SignError};
pub use keys::{Curve, KeyDescription, KeyPair, PrivateKey, PublicKey, generate};
