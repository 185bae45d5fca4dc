//! The policy gate every command that brings content in passes first
//! (`pull`, `pull --extract`, `fetch`, `mount --pull`): the reference is
//! resolved to a manifest digest, the signatures the policy asks for are
//! checked, and only then is anything downloaded, pinned to that digest so
//! a tag moved in between cannot bring in something else.

use std::path::Path;

use anyhow::{Context, bail};
use ferry_registry::referrers::resolve_descriptor;
use ferry_registry::signatures::{SignatureCandidate, find_signatures};
use ferry_registry::{Client, Endpoint};
use ferry_sign::cosign::{Candidate, CosignVerifier};
use ferry_sign::policy::{Policy, PolicySource, Requirement};
use ferry_spec::Reference;

/// The reference to fetch: `reference` itself when no policy exists
/// anywhere (podman's rule: accept), else pinned to the digest the policy
/// accepted. A rejection is an error saying which requirement failed.
pub(super) async fn admit(
    client: &Client,
    policy: Option<&Path>,
    reference: &Reference,
) -> anyhow::Result<Reference> {
    let policy = Policy::discover(policy).context("reading the signature policy")?;
    if matches!(policy.source(), PolicySource::NotFound { .. }) {
        return Ok(reference.clone());
    }
    let scoped = policy.requirements_for(reference);
    let accepts_anything = |r: &Requirement| matches!(r, Requirement::InsecureAcceptAnything);
    if scoped.requirements.iter().all(accepts_anything) {
        // Nothing to check: no extra request, nothing pinned.
        return Ok(reference.clone());
    }
    let descriptor = resolve_descriptor(client, reference).await?;
    let digest = descriptor.digest().clone();
    let candidates = if scoped
        .requirements
        .iter()
        .all(|r| matches!(r, Requirement::InsecureAcceptAnything | Requirement::Reject))
    {
        Vec::new()
    } else {
        find_signatures(client, &Endpoint::of(reference), &digest)
            .await?
            .into_iter()
            .map(|found| match found {
                SignatureCandidate::Bundle { bytes, .. } => Candidate::Bundle(bytes),
                SignatureCandidate::Legacy {
                    payload,
                    signature_b64,
                    ..
                } => Candidate::Legacy {
                    payload,
                    signature_b64,
                },
            })
            .collect()
    };
    let decision = scoped.evaluate(
        reference,
        digest.as_ref(),
        &candidates,
        &CosignVerifier::new(digest.clone()),
    );
    if !decision.is_accepted() {
        bail!("{}@{digest}: {decision}", reference.whole());
    }
    tracing::info!("{}@{digest}: {decision}", reference.whole());
    Ok(pinned(reference, &digest))
}

/// `reference` pinned to `digest` (its tag kept for naming), so a tag moved
/// in between cannot make the next request fetch or name another manifest.
pub(super) fn pinned(reference: &Reference, digest: &ferry_spec::oci::Digest) -> Reference {
    match reference.tag() {
        Some(tag) => Reference::with_tag_and_digest(
            reference.registry().to_string(),
            reference.repository().to_string(),
            tag.to_string(),
            digest.to_string(),
        ),
        None => Reference::with_digest(
            reference.registry().to_string(),
            reference.repository().to_string(),
            digest.to_string(),
        ),
    }
}
