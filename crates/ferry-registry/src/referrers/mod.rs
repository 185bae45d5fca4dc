//! Referrers (distribution spec v1.1): attaching artifacts to a manifest
//! ([`attach`]), listing what is attached ([`list`]) and the tree of it
//! ([`tree`]).
//!
//! A referrer is an image manifest whose `subject` names another manifest.
//! A registry with the referrers API indexes it when it is pushed and answers
//! `OCI-Subject`. For the others (Debian's docker-registry 2.8 among them)
//! the client keeps the *fallback tag* `<alg>-<hex>` of the subject: an image
//! index listing the referrers, updated by read-modify-write ([`fallback`];
//! see [`FallbackPolicy`] for what that can and cannot promise).
//!
//! Listing and resolving a subject to discover its referrers are reads (they
//! go through the mirrors); attaching and updating a fallback tag write to
//! the origin.

pub mod attach;
pub(crate) mod fallback;
pub mod list;
pub mod tree;

/// Descriptors for the referrer tests of this module's files.
#[cfg(test)]
mod fixtures {
    use ferry_spec::oci::{Descriptor, Digest, MediaType};

    /// A distinct digest per `n`.
    pub fn digest(n: u8) -> Digest {
        ferry_spec::digest::sha256_digest(&[n])
    }

    /// Manifest `n` (size 100 + n), with an artifact type when given.
    pub fn descriptor(n: u8, artifact_type: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(MediaType::ImageManifest, 100 + n as u64, digest(n));
        d.set_artifact_type(artifact_type.map(MediaType::from));
        d
    }
}

use ferry_spec::Reference;
use ferry_spec::oci::{Descriptor, Digest, MediaType};

use crate::client::{Client, Endpoint};
use crate::error::Result;
use crate::transfer::reference_tail;

pub use attach::{AttachOptions, Attached, FallbackUpdate, attach};
pub use fallback::FallbackPolicy;
pub use list::{Referrers, ReferrersSource, list_referrers};
pub use tree::{MAX_TREE_DEPTH, MAX_TREE_NODES, ReferrerNode, referrer_tree};

/// The fallback tag of a subject: `<alg>-<hex>`, the algorithm cut to 32
/// characters and the hex to 64 (the spec's referrers tag schema), so the
/// tag always fits the 128-character limit.
pub fn fallback_tag(subject: &Digest) -> String {
    let algorithm: String = subject.algorithm().as_ref().chars().take(32).collect();
    let hex: String = subject.digest().chars().take(64).collect();
    format!("{algorithm}-{hex}")
}

/// The descriptor of the manifest `reference` names (media type, digest and
/// size of the exact bytes served), read from its mirrors or the registry.
pub async fn resolve_descriptor(client: &Client, reference: &Reference) -> Result<Descriptor> {
    let sources = client.read_sources(&Endpoint::of(reference));
    let tail = reference_tail(reference);
    let (_, fetched) = sources
        .first(async |endpoint| client.manifest(endpoint, &tail).await)
        .await?;
    Ok(descriptor_of_manifest(&fetched))
}

/// The descriptor of fetched manifest bytes.
pub(crate) fn descriptor_of_manifest(fetched: &crate::api::FetchedManifest) -> Descriptor {
    Descriptor::new(
        MediaType::from(fetched.media_type.as_str()),
        fetched.bytes.len() as u64,
        fetched.digest.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tag_is_alg_dash_hex_within_the_tag_limit() {
        let d = ferry_spec::digest::sha256_digest(&[1]);
        let tag = fallback_tag(&d);
        assert_eq!(tag, format!("sha256-{}", d.digest()));
        let long = Digest::try_from(format!("sha512:{}", "ab".repeat(64))).unwrap();
        let tag = fallback_tag(&long);
        assert_eq!(tag, format!("sha512-{}", "ab".repeat(32)));
        assert!(tag.len() <= 128);
    }
}
