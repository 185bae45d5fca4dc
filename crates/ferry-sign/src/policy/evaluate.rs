//! Judging an image against the requirements of its scope. The
//! cryptography is behind [`SignatureVerifier`], so these rules are tested
//! with a fake.

use std::fmt;

use ferry_spec::Reference;

use super::keys::{self, KeyError, KeyMaterial};
use super::{IdentityMismatch, PolicySource, Requirement, ScopeMatch, SignedIdentity, TrustRoot};

/// Verifies signature candidates (of a type the caller chooses: a cosign
/// `.sig` layer, a Sigstore bundle, ...) against public keys.
pub trait SignatureVerifier<C> {
    /// `Ok(Some(signed))` when one of `keys` verifies `candidate`, `Ok(None)`
    /// when none does, `Err(reason)` when the candidate is malformed.
    fn verify(&self, candidate: &C, keys: &[KeyMaterial]) -> Result<Option<Signed>, String>;

    /// For `modelSigned`: `Ok(Some(model))` when one of `keys` verifies
    /// `candidate` as a model signature whose files are the artifact's,
    /// `Ok(None)` when it is no model signature or no key verifies it,
    /// `Err(reason)` when it is malformed or its files differ. A verifier
    /// that cannot see the artifact's files never satisfies `modelSigned`.
    fn verify_model(
        &self,
        _candidate: &C,
        _keys: &[KeyMaterial],
    ) -> Result<Option<ModelSigned>, String> {
        Err("this verifier cannot check model signatures".to_string())
    }

    /// For `scanned`: `Ok(Some(report))` when one of `keys` verifies
    /// `candidate` as a scan report about the manifest being admitted,
    /// `Ok(None)` when no key does, `Err(reason)` when it is no scan report
    /// or is malformed. A verifier without scan reports never satisfies
    /// `scanned`.
    fn verify_scan(
        &self,
        _candidate: &C,
        _keys: &[KeyMaterial],
    ) -> Result<Option<ScanAttested>, String> {
        Err("this verifier cannot check scan reports".to_string())
    }
}

/// What a verified scan report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanAttested {
    /// The report's verdict (`safe`, `suspicious`, `dangerous`, `invalid`).
    pub verdict: String,
    /// Which key verified it, for messages.
    pub key: String,
}

/// What a verified model signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSigned {
    /// How many files it signs (all of them the artifact's).
    pub files: usize,
    /// Which key verified it, for messages.
    pub key: String,
}

/// What a verified signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The manifest digest the signature covers (`sha256:<hex>`).
    pub manifest_digest: String,
    /// The identity it claims (cosign's `docker-reference`), if any.
    pub docker_reference: Option<String>,
    /// Which key verified it, for messages.
    pub key: String,
}

/// The requirements that apply to an image, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped<'a> {
    /// The scope that matched.
    pub scope: ScopeMatch,
    /// Its requirements, all of which must be satisfied.
    pub requirements: &'a [Requirement],
    /// The policy's source.
    pub source: &'a PolicySource,
}

/// The verdict on one image, with enough context to explain it.
#[derive(Debug)]
pub struct Decision {
    /// Where the policy came from.
    pub source: PolicySource,
    /// The scope that applied.
    pub scope: ScopeMatch,
    /// Accepted, or rejected and why.
    pub outcome: Outcome,
}

/// Accepted, or rejected by the first requirement that was not satisfied.
#[derive(Debug)]
pub enum Outcome {
    /// Every requirement was satisfied, each as listed.
    Accepted(Vec<Satisfied>),
    /// A requirement was not.
    Rejected(Rejection),
}

/// How one requirement was satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Satisfied {
    /// Its index in the scope's list.
    pub requirement: usize,
    /// By what.
    pub by: Satisfaction,
}

/// What satisfied a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Satisfaction {
    /// `insecureAcceptAnything`.
    AcceptAnything,
    /// A signature that verified, over this digest, with a matching identity.
    Signature {
        /// Its index among the candidates.
        candidate: usize,
        /// What the verifier found.
        signed: Signed,
    },
    /// A signed scan report of this manifest with an acceptable verdict.
    ScanReport {
        /// Its index among the candidates.
        candidate: usize,
        /// What the verifier found.
        attested: ScanAttested,
    },
    /// A model signature whose files are the artifact's.
    ModelSignature {
        /// Its index among the candidates.
        candidate: usize,
        /// What the verifier found.
        signed: ModelSigned,
    },
}

/// The requirement that was not satisfied, and why.
#[derive(Debug, thiserror::Error)]
#[error("requirement [{requirement}] ({requirement_type}): {reason}")]
pub struct Rejection {
    /// Its index in the scope's list.
    pub requirement: usize,
    /// Its `type`.
    pub requirement_type: &'static str,
    /// Why it was not satisfied.
    pub reason: RejectReason,
}

/// Why a requirement was not satisfied.
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    /// `reject`.
    #[error("the policy rejects these images")]
    Reject,
    /// `signedBy`.
    #[error("GPG signatures are not supported")]
    GpgUnsupported,
    /// `sigstoreSigned` with Fulcio, PKI or Rekor.
    #[error("keyless (Fulcio) verification is not supported (the requirement sets {field})")]
    KeylessUnsupported {
        /// The field that asked for it.
        field: &'static str,
    },
    /// A key the requirement names cannot be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Nothing to verify.
    #[error("no signatures found")]
    NoSignatures,
    /// Every candidate failed, each for its reason.
    #[error("no signature satisfies it: {}", list(.0))]
    NoCandidate(Vec<CandidateFailure>),
}

/// Why one signature candidate did not satisfy a requirement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signature {candidate}: {reason}")]
pub struct CandidateFailure {
    /// Its index among the candidates.
    pub candidate: usize,
    /// Why.
    pub reason: CandidateReason,
}

/// Why a signature candidate did not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateReason {
    /// The verifier could not read it.
    #[error("malformed: {0}")]
    Malformed(String),
    /// None of the requirement's keys verifies it.
    #[error("no key verifies it")]
    NoKeyVerifies,
    /// It signs another manifest.
    #[error("signed digest {signed} is not {expected}")]
    DigestMismatch {
        /// What the signature covers.
        signed: String,
        /// The manifest being admitted.
        expected: String,
    },
    /// A signed scan report whose verdict the requirement does not accept.
    #[error("the signed scan report found {0} files")]
    ScanVerdict(String),
    /// It claims no identity, and the requirement needs one.
    #[error("it claims no identity ({0} needs one)")]
    NoIdentity(&'static str),
    /// Its identity does not fit the image.
    #[error(transparent)]
    Identity(#[from] IdentityMismatch),
}

fn list(failures: &[CandidateFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Decision {
    /// True when every requirement was satisfied.
    pub fn is_accepted(&self) -> bool {
        matches!(self.outcome, Outcome::Accepted(_))
    }

    /// The rejection, if any.
    pub fn rejection(&self) -> Option<&Rejection> {
        match &self.outcome {
            Outcome::Rejected(rejection) => Some(rejection),
            Outcome::Accepted(_) => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Accepted(_) => write!(f, "accepted by {} of {}", self.scope, self.source),
            Outcome::Rejected(rejection) => write!(
                f,
                "rejected by {}[{}] ({}) of {}: {}",
                self.scope,
                rejection.requirement,
                rejection.requirement_type,
                self.source,
                rejection.reason
            ),
        }
    }
}

impl Scoped<'_> {
    /// Judges `image`, resolved to `manifest_digest`, with its signature
    /// `candidates`: every requirement must be satisfied; the first that is
    /// not rejects it.
    pub fn evaluate<C>(
        &self,
        image: &Reference,
        manifest_digest: &str,
        candidates: &[C],
        verifier: &dyn SignatureVerifier<C>,
    ) -> Decision {
        let mut satisfied = Vec::new();
        let mut outcome = None;
        for (index, requirement) in self.requirements.iter().enumerate() {
            match judge(requirement, image, manifest_digest, candidates, verifier) {
                Ok(by) => satisfied.push(Satisfied {
                    requirement: index,
                    by,
                }),
                Err(reason) => {
                    outcome = Some(Outcome::Rejected(Rejection {
                        requirement: index,
                        requirement_type: requirement.type_name(),
                        reason,
                    }));
                    break;
                }
            }
        }
        Decision {
            source: self.source.clone(),
            scope: self.scope.clone(),
            outcome: outcome.unwrap_or(Outcome::Accepted(satisfied)),
        }
    }
}

fn judge<C>(
    requirement: &Requirement,
    image: &Reference,
    manifest_digest: &str,
    candidates: &[C],
    verifier: &dyn SignatureVerifier<C>,
) -> Result<Satisfaction, RejectReason> {
    let (trust_root, identity) = match requirement {
        Requirement::InsecureAcceptAnything => return Ok(Satisfaction::AcceptAnything),
        Requirement::Reject => return Err(RejectReason::Reject),
        Requirement::SignedBy => return Err(RejectReason::GpgUnsupported),
        Requirement::ModelSigned { trust_root } => {
            return judge_model(&trust_keys(trust_root)?, candidates, verifier);
        }
        Requirement::Scanned {
            trust_root,
            allow_suspicious,
        } => {
            return judge_scan(
                &trust_keys(trust_root)?,
                *allow_suspicious,
                candidates,
                verifier,
            );
        }
        Requirement::SigstoreSigned {
            trust_root,
            signed_identity,
        } => (trust_root, signed_identity),
    };
    let keys = trust_keys(trust_root)?;
    if candidates.is_empty() {
        return Err(RejectReason::NoSignatures);
    }
    let mut failures = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        match judge_candidate(candidate, &keys, identity, image, manifest_digest, verifier) {
            Ok(signed) => {
                return Ok(Satisfaction::Signature {
                    candidate: index,
                    signed,
                });
            }
            Err(reason) => failures.push(CandidateFailure {
                candidate: index,
                reason,
            }),
        }
    }
    Err(RejectReason::NoCandidate(failures))
}

fn trust_keys(trust_root: &TrustRoot) -> Result<Vec<KeyMaterial>, RejectReason> {
    Ok(match trust_root {
        TrustRoot::Keyless { field } => {
            return Err(RejectReason::KeylessUnsupported { field });
        }
        TrustRoot::KeyPaths(paths) => keys::read_files(paths)?,
        TrustRoot::KeyData(pem) => keys::from_data(pem)?,
    })
}

/// `modelSigned`: the first candidate that is a model signature by one of
/// `keys` over exactly the artifact's files.
fn judge_model<C>(
    keys: &[KeyMaterial],
    candidates: &[C],
    verifier: &dyn SignatureVerifier<C>,
) -> Result<Satisfaction, RejectReason> {
    let mut failures = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let reason = match verifier.verify_model(candidate, keys) {
            Ok(Some(signed)) => {
                return Ok(Satisfaction::ModelSignature {
                    candidate: index,
                    signed,
                });
            }
            Ok(None) => CandidateReason::NoKeyVerifies,
            Err(reason) => CandidateReason::Malformed(reason),
        };
        failures.push(CandidateFailure {
            candidate: index,
            reason,
        });
    }
    if failures.is_empty() {
        return Err(RejectReason::NoSignatures);
    }
    Err(RejectReason::NoCandidate(failures))
}

/// `scanned`: a scan report of this manifest by one of `keys` with an
/// acceptable verdict, and none by those keys that found dangerous or
/// malformed files (a newer scanner's finding is not outvoted by an older
/// clean report).
fn judge_scan<C>(
    keys: &[KeyMaterial],
    allow_suspicious: bool,
    candidates: &[C],
    verifier: &dyn SignatureVerifier<C>,
) -> Result<Satisfaction, RejectReason> {
    let mut failures = Vec::new();
    let mut accepted = None;
    let mut vetoed = false;
    for (index, candidate) in candidates.iter().enumerate() {
        let reason = match verifier.verify_scan(candidate, keys) {
            Ok(Some(attested))
                if attested.verdict == "safe"
                    || (allow_suspicious && attested.verdict == "suspicious") =>
            {
                accepted.get_or_insert(Satisfaction::ScanReport {
                    candidate: index,
                    attested,
                });
                continue;
            }
            Ok(Some(attested)) => {
                vetoed |= attested.verdict != "suspicious";
                CandidateReason::ScanVerdict(attested.verdict)
            }
            Ok(None) => CandidateReason::NoKeyVerifies,
            Err(reason) => CandidateReason::Malformed(reason),
        };
        failures.push(CandidateFailure {
            candidate: index,
            reason,
        });
    }
    match accepted {
        Some(satisfaction) if !vetoed => Ok(satisfaction),
        _ if failures.is_empty() => Err(RejectReason::NoSignatures),
        _ => Err(RejectReason::NoCandidate(
            failures
                .into_iter()
                .filter(|f| !vetoed || matches!(f.reason, CandidateReason::ScanVerdict(_)))
                .collect(),
        )),
    }
}

fn judge_candidate<C>(
    candidate: &C,
    keys: &[KeyMaterial],
    identity: &SignedIdentity,
    image: &Reference,
    manifest_digest: &str,
    verifier: &dyn SignatureVerifier<C>,
) -> Result<Signed, CandidateReason> {
    let signed = verifier
        .verify(candidate, keys)
        .map_err(CandidateReason::Malformed)?
        .ok_or(CandidateReason::NoKeyVerifies)?;
    if signed.manifest_digest != manifest_digest {
        return Err(CandidateReason::DigestMismatch {
            signed: signed.manifest_digest,
            expected: manifest_digest.to_string(),
        });
    }
    let Some(claimed) = &signed.docker_reference else {
        return Err(CandidateReason::NoIdentity(identity.type_name()));
    };
    identity.check(image, claimed)?;
    Ok(signed)
}
