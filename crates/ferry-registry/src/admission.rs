//! The policy gate. Every path that brings content in from a registry
//! (`pull`, `pull --extract`, `fetch`, `mount` when it pulls, `copy`, the
//! CSI driver) passes [`admit`] first: the reference is resolved to a
//! manifest digest, the signatures the policy asks for are checked, and
//! only then is anything downloaded, pinned to that digest so a tag moved
//! in between cannot bring in something else. Mounting passes
//! [`admit_local`] for every artifact, judged with the signatures the store
//! holds, however the artifact got there.

use std::path::Path;

use ferry_sign::cosign::{Candidate, CosignVerifier};
use ferry_sign::model::ManifestEntry;
use ferry_sign::policy::{Decision, Policy, PolicyError, PolicySource, Requirement, Scoped};
use ferry_spec::Reference;
use ferry_spec::oci::Digest;
use ferry_store::files::{ArtifactEntry, ArtifactFiles, artifact_files};
use ferry_store::index::{normalize_reference, ref_name};
use ferry_store::{Store, StoreError};

use crate::artifact_files::remote_artifact_files;
use crate::client::{Client, Endpoint};
use crate::error::ClientError;
use crate::platform::Platform;
use crate::progress::TransferProgress;
use crate::referrers::resolve_descriptor;
use crate::signatures::{SignatureCandidate, find_signatures, local_signatures, pull_signatures};
use crate::transfer::{self, Pulled};

/// Why an artifact was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The policy file cannot be read or is invalid.
    #[error("reading the signature policy: {0}")]
    Policy(#[from] PolicyError),
    /// The policy rejects the artifact; `decision` says by which
    /// requirement and why.
    #[error("{reference}@{digest}: {decision}")]
    Rejected {
        /// The reference judged.
        reference: String,
        /// The manifest digest judged.
        digest: String,
        /// The policy's verdict.
        decision: String,
    },
    /// A store artifact named by digest only: no scope applies to it.
    #[error(
        "{0} has no name in the store, so the signature policy cannot judge it; mount it by name"
    )]
    Unnamed(String),
    /// Talking to the registry failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The reference to fetch: `reference` itself when no policy exists
/// anywhere (podman's rule: accept) or the scope accepts anything, else
/// pinned to the digest the policy accepted.
pub async fn admit(
    client: &Client,
    policy: Option<&Path>,
    reference: &Reference,
) -> Result<Reference, AdmissionError> {
    let policy = Policy::discover(policy)?;
    let scoped = policy.requirements_for(reference);
    if accepts_without_looking(&policy, &scoped) {
        // Nothing to check: no extra request, nothing pinned.
        return Ok(reference.clone());
    }
    let descriptor = resolve_descriptor(client, reference).await?;
    let digest = descriptor.digest().clone();
    let pinned = pinned(reference, &digest);
    let candidates = if needs_signatures(&scoped) {
        find_signatures(client, &Endpoint::of(reference), &digest)
            .await?
            .into_iter()
            .map(candidate)
            .collect()
    } else {
        Vec::new()
    };
    let mut verifier = CosignVerifier::new(digest.clone());
    if needs_files(&scoped) {
        let files = remote_artifact_files(client, &pinned, None).await?;
        verifier = verifier.with_artifact_files(signable(&files));
    }
    let decision = scoped.evaluate(reference, digest.as_ref(), &candidates, &verifier);
    conclude(reference, &digest, &decision)?;
    Ok(pinned)
}

/// [`admit`], then [`transfer::pull`] of exactly what was admitted, then
/// the registry's signatures of the pulled manifest into the store (so
/// `verify` and the policy at mount work offline). A failure to bring the
/// signatures is a warning: the artifact is pulled and named, and a policy
/// that needs them refuses the mount later, saying so.
pub async fn pull_admitted(
    client: &Client,
    store: &Store,
    policy: Option<&Path>,
    reference: &Reference,
    platform: Option<&Platform>,
    concurrency: usize,
    progress: &dyn TransferProgress,
) -> Result<Pulled, AdmissionError> {
    let admitted = admit(client, policy, reference).await?;
    let pulled = transfer::pull(client, store, &admitted, platform, concurrency, progress).await?;
    match pull_signatures(client, store, &admitted, &pulled.digest).await {
        Ok(moved) if moved.bundles + moved.legacy > 0 => tracing::info!(
            "{}: {} bundle and {} legacy signatures stored",
            pulled.digest,
            moved.bundles,
            moved.legacy
        ),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(
                "the signatures of {} were not pulled: {error}",
                pulled.digest
            );
        }
    }
    Ok(pulled)
}

/// Judges the store's artifact `input` (a name, or a digest the store
/// names) with the signatures the store holds for it. Accepted when the
/// policy accepts it under one of its names.
pub fn admit_local(
    store: &Store,
    policy: Option<&Path>,
    input: &str,
) -> Result<(), AdmissionError> {
    let policy = Policy::discover(policy)?;
    if matches!(policy.source(), PolicySource::NotFound { .. }) {
        return Ok(());
    }
    let resolved = store.resolve(input)?;
    let digest = resolved.descriptor.digest().clone();
    let names = match resolved.reference {
        Some(name) => vec![name],
        None => names_of(store, &digest)?,
    };
    if names.is_empty() {
        return Err(AdmissionError::Unnamed(input.to_string()));
    }
    let mut first_rejection = None;
    for name in &names {
        let reference = normalize_reference(name)?;
        let scoped = policy.requirements_for(&reference);
        if accepts_without_looking(&policy, &scoped) {
            return Ok(());
        }
        let candidates: Vec<Candidate> = if needs_signatures(&scoped) {
            local_signatures(store, &reference, &digest)?
                .into_iter()
                .map(candidate)
                .collect()
        } else {
            Vec::new()
        };
        let mut verifier = CosignVerifier::new(digest.clone());
        if needs_files(&scoped) {
            let manifest = store.read_manifest(&digest)?;
            let files = artifact_files(store, &manifest)?;
            verifier = verifier.with_artifact_files(signable(&files));
        }
        let decision = scoped.evaluate(&reference, digest.as_ref(), &candidates, &verifier);
        match conclude(&reference, &digest, &decision) {
            Ok(()) => return Ok(()),
            Err(rejected) => {
                first_rejection.get_or_insert(rejected);
            }
        }
    }
    Err(first_rejection.unwrap_or_else(|| AdmissionError::Unnamed(input.to_string())))
}

/// True when the policy accepts without a request: none exists, or every
/// requirement of the scope is `insecureAcceptAnything`.
fn accepts_without_looking(policy: &Policy, scoped: &Scoped) -> bool {
    matches!(policy.source(), PolicySource::NotFound { .. })
        || scoped
            .requirements
            .iter()
            .all(|r| matches!(r, Requirement::InsecureAcceptAnything))
}

/// True when a requirement of the scope looks at signatures.
fn needs_signatures(scoped: &Scoped) -> bool {
    scoped.requirements.iter().any(|r| {
        matches!(
            r,
            Requirement::SigstoreSigned { .. }
                | Requirement::ModelSigned { .. }
                | Requirement::Scanned { .. }
        )
    })
}

/// True when a requirement of the scope compares the artifact's files.
fn needs_files(scoped: &Scoped) -> bool {
    scoped
        .requirements
        .iter()
        .any(|r| matches!(r, Requirement::ModelSigned { .. }))
}

fn conclude(
    reference: &Reference,
    digest: &Digest,
    decision: &Decision,
) -> Result<(), AdmissionError> {
    if !decision.is_accepted() {
        return Err(AdmissionError::Rejected {
            reference: reference.whole(),
            digest: digest.to_string(),
            decision: decision.to_string(),
        });
    }
    tracing::info!("{}@{digest}: {decision}", reference.whole());
    Ok(())
}

/// A signature found next to an artifact, as the verifier takes it.
pub fn candidate(found: SignatureCandidate) -> Candidate {
    let (model, scan) = (found.is_model_signature(), found.is_scan_report());
    match found {
        SignatureCandidate::Bundle { bytes, .. } if model => Candidate::ModelBundle(bytes),
        SignatureCandidate::Bundle { bytes, .. } if scan => Candidate::ScanBundle(bytes),
        SignatureCandidate::Bundle { bytes, .. } => Candidate::Bundle(bytes),
        SignatureCandidate::Legacy {
            payload,
            signature_b64,
            ..
        } => Candidate::Legacy {
            payload,
            signature_b64,
        },
    }
}

/// An artifact's files as a model signature lists them, or why they cannot
/// be signed: model signing refuses symbolic links (allow_symlinks false).
pub fn signable(files: &ArtifactFiles) -> Result<Vec<ManifestEntry>, String> {
    files
        .iter()
        .map(|(name, entry)| match entry {
            ArtifactEntry::File(digest) => {
                let mut sha256 = [0u8; 32];
                hex::decode_to_slice(digest.digest(), &mut sha256)
                    .map_err(|_| format!("{name}: {digest} is not a SHA-256"))?;
                Ok(ManifestEntry {
                    name: name.clone(),
                    sha256,
                })
            }
            ArtifactEntry::Symlink(target) => Err(format!(
                "{name} is a symbolic link (to {target:?}), which no model signature covers"
            )),
        })
        .collect()
}

/// The names the store's index gives `digest`.
fn names_of(store: &Store, digest: &Digest) -> Result<Vec<String>, StoreError> {
    Ok(store
        .read_index()?
        .manifests()
        .iter()
        .filter(|d| d.digest() == digest)
        .filter_map(|d| ref_name(d).map(str::to_string))
        .collect())
}

/// `reference` pinned to `digest` (its tag kept for naming), so a tag moved
/// in between cannot make the next request fetch or name another manifest.
pub fn pinned(reference: &Reference, digest: &Digest) -> Reference {
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
