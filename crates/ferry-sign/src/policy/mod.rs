//! The admission policy: podman's and CRI-O's `containers-policy.json`,
//! restricted to what ferry enforces, read strictly.
//!
//! # Where the policy comes from
//!
//! [`Policy::discover`] takes the first of: the file given with `--policy`
//! (which must exist), `$XDG_CONFIG_HOME/ferry/policy.json` (by default
//! `~/.config/ferry/policy.json`), `/etc/containers/policy.json`. When none
//! exists ferry accepts anything, as podman does, and every [`Decision`]
//! says so through its [`PolicySource`]. A file larger than 4 MiB is refused.
//!
//! # What is read
//!
//! `{"default": [requirements], "transports": {"docker": {"<scope>": [requirements]}}}`.
//! Like containers/image, any unknown key, unknown requirement `type`,
//! unknown or duplicated field, or empty requirement list makes the whole
//! file an error (with its location, e.g.
//! `transports.docker["registry.example.com/ns"][0]: unknown field "keyPth"`),
//! never an accept. Other transports (`docker-daemon`, `atomic`, `oci`, ...)
//! are parsed, checked and kept, but ferry consults only `docker`: it applies
//! to references pulled from registries and to artifacts in the local store,
//! judged by the reference they are known by.
//!
//! # Scopes
//!
//! For an image `host/ns/repo:tag` (or `@digest`) the most specific scope
//! wins: `host/ns/repo:tag`, `host/ns/repo`, `host/ns`, `host` (with its
//! port if any), `*.sub.example.com`-style wildcards from the most specific
//! sub-domain up, then the transport's `""` scope, then `default`. Scopes are
//! written fully expanded (`docker.io/library/busybox`, not `busybox`) and
//! a scope that is not a reference, namespace, host or `*.domain` wildcard
//! is an error. Short names are normalized as Docker does (`m` is
//! `docker.io/library/m:latest`). A reference with both a tag and a digest
//! is judged by its digest: the digest pins the content, the tag does not.
//!
//! # Requirements
//!
//! Every requirement in the list must be satisfied.
//! - `insecureAcceptAnything` accepts; `reject` rejects.
//! - `sigstoreSigned` with exactly one of `keyPath`, `keyPaths` (non-empty)
//!   or `keyData` (base64 of a PEM public key), and an optional
//!   `signedIdentity` (default `matchRepoDigestOrExact`). Key paths must be
//!   absolute; key files are read when the requirement is evaluated (at most
//!   64 KiB). It is satisfied when one signature verifies with one of the
//!   keys, its signed manifest digest is the digest being admitted, and its
//!   signed identity matches.
//! - `signedBy` (GPG) and keyless `sigstoreSigned` (`fulcio`, `pki`,
//!   `rekorPublicKey*`) are parsed, so a system policy that uses them for
//!   other images still loads, but they reject every image they apply to:
//!   ferry verifies neither GPG nor Fulcio/Rekor.
//! - `modelSigned` (ferry's own; podman refuses a file that uses it, so
//!   keep it in ferry's policy file) with exactly one of `keyPath`,
//!   `keyPaths` or `keyData`: an OpenSSF model signature by one of the keys
//!   is attached to the artifact and lists exactly the files its layers
//!   hold (path and SHA-256; the signer's ignore paths left out). It binds
//!   what a user sees in a mount or an extracted directory to the signer,
//!   whatever the manifest digest.
//! - `scanned` (ferry's own; keys as above, optional `allowSuspicious`): a
//!   scan report made by `ferry scan --attach`, signed by one of the keys,
//!   about the manifest being admitted, that found nothing dangerous or
//!   malformed (nor suspicious unless `allowSuspicious` is true).
//!
//! # signedIdentity
//!
//! - `matchExact`: the signature names the image's `repo:tag` exactly; an
//!   image pulled by digest never matches (a signature cannot name its own
//!   digest).
//! - `matchRepoDigestOrExact`: by digest, the repositories match; by tag,
//!   `repo:tag` is identical.
//! - `matchRepository`: the repositories match, tag and digest ignored. The
//!   one to use for cosign signatures, which name a repository only.
//! - `exactReference` (`dockerReference`) / `exactRepository`
//!   (`dockerRepository`): as `matchExact` / `matchRepository`, against the
//!   configured value instead of the image's name.
//! - `remapIdentity` (`prefix`, `signedPrefix`): when the image's name
//!   starts with `prefix` on a component boundary (`example.com/ns` matches
//!   `example.com/ns/a`, never `example.com/nsx/a`), that prefix is replaced
//!   by `signedPrefix`; then `matchRepoDigestOrExact` applies.
//!
//! A signature that names no tag (as cosign's do) never satisfies
//! `matchExact`, `matchRepoDigestOrExact` or `exactReference`, as in
//! containers/image; one that names no identity at all satisfies none.
//!
//! # Evaluation
//!
//! [`Policy::requirements_for`] finds the scope; [`Scoped::evaluate`] judges
//! the signature candidates through a [`SignatureVerifier`], which does the
//! cryptography, so the policy is tested without it. A [`Decision`] names
//! the policy's source, the scope, and on rejection the requirement that
//! failed and why for each signature.
//!
//! ```
//! use ferry_sign::policy::{KeyMaterial, Policy, SignatureVerifier, Signed};
//! use ferry_spec::names::parse_reference;
//!
//! /// Stands in for cosign: a candidate is a claim, verified by the key `key`.
//! struct Fake;
//! impl SignatureVerifier<Signed> for Fake {
//!     fn verify(&self, claim: &Signed, keys: &[KeyMaterial]) -> Result<Option<Signed>, String> {
//!         Ok(keys.iter().any(|k| k.pem == b"key").then(|| claim.clone()))
//!     }
//! }
//!
//! let policy = Policy::from_json(br#"{"default": [{"type": "reject"}],
//!     "transports": {"docker": {"registry.example.com/ns": [{"type": "sigstoreSigned",
//!         "keyData": "a2V5", "signedIdentity": {"type": "matchRepository"}}]}}}"#)?;
//! let digest = format!("sha256:{}", "a".repeat(64));
//! let claim = Signed {
//!     manifest_digest: digest.clone(),
//!     docker_reference: Some("registry.example.com/ns/m".into()),
//!     key: "keyData".into(),
//! };
//! let image = parse_reference("registry.example.com/ns/m:v1")?;
//! assert!(policy.evaluate(&image, &digest, &[claim.clone()], &Fake).is_accepted());
//!
//! let elsewhere = parse_reference("quay.io/x/m:v1")?;
//! let decision = policy.evaluate(&elsewhere, &digest, &[claim], &Fake);
//! assert_eq!(
//!     decision.to_string(),
//!     "rejected by default[0] (reject) of inline policy: the policy rejects these images"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod discover;
mod error;
mod evaluate;
mod identity;
mod keys;
mod schema;
mod scope;

use std::collections::BTreeMap;
use std::path::Path;

use ferry_spec::Reference;

pub use discover::{PolicyLocations, PolicySource};
pub use error::PolicyError;
pub use evaluate::{
    CandidateFailure, CandidateReason, Decision, ModelSigned, Outcome, RejectReason, Rejection,
    Satisfaction, Satisfied, ScanAttested, Scoped, SignatureVerifier, Signed,
};
pub use identity::{IdentityMismatch, SignedIdentity};
pub use keys::{KeyError, KeyMaterial, KeyOrigin, MAX_KEY_SIZE};
pub use schema::{Requirement, TrustRoot};
pub use scope::ScopeMatch;

/// The largest policy file ferry reads.
pub const MAX_POLICY_SIZE: u64 = 4 * 1024 * 1024;

/// The transport whose scopes ferry consults.
const DOCKER: &str = "docker";

/// A parsed, validated containers-policy.json and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    source: PolicySource,
    default: Vec<Requirement>,
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

impl Policy {
    /// Reads and validates the policy file at `path` (as given by `--policy`).
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        discover::read_explicit(path)
    }

    /// Parses and validates a policy from its JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        Self::parse(bytes, PolicySource::Inline)
    }

    /// Finds the policy in the usual places of this process's environment:
    /// see [`Policy::discover_in`].
    pub fn discover(explicit: Option<&Path>) -> Result<Self, PolicyError> {
        Self::discover_in(explicit, &PolicyLocations::from_process_env())
    }

    /// Finds the policy: `explicit` if given (it must exist), else the first
    /// of `locations` that exists, else a policy that accepts anything and
    /// whose source says that no file was found.
    pub fn discover_in(
        explicit: Option<&Path>,
        locations: &PolicyLocations,
    ) -> Result<Self, PolicyError> {
        discover::discover(explicit, locations)
    }

    /// A policy that accepts anything, as podman behaves without a file.
    pub fn accept_anything(source: PolicySource) -> Self {
        Self {
            source,
            default: vec![Requirement::InsecureAcceptAnything],
            transports: BTreeMap::new(),
        }
    }

    pub(crate) fn parse(bytes: &[u8], source: PolicySource) -> Result<Self, PolicyError> {
        let (default, transports) =
            schema::parse(bytes).map_err(|error| error.with_origin(&source))?;
        Ok(Self {
            source,
            default,
            transports,
        })
    }

    /// Where this policy came from.
    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    /// The global `default` requirements.
    pub fn default_requirements(&self) -> &[Requirement] {
        &self.default
    }

    /// The scopes of a transport (`docker`, or one ferry keeps but ignores).
    pub fn transport(&self, name: &str) -> Option<&BTreeMap<String, Vec<Requirement>>> {
        self.transports.get(name)
    }

    /// The requirements of the most specific `docker` scope that matches
    /// `image`, else of the transport's `""` scope, else `default`.
    pub fn requirements_for(&self, image: &Reference) -> Scoped<'_> {
        let docker = self.transports.get(DOCKER);
        let found = docker.and_then(|scopes| {
            scope::lookup_order(image)
                .into_iter()
                .chain([String::new()])
                .find_map(|scope| scopes.get_key_value(&scope))
        });
        let (scope, requirements) = match found {
            Some((scope, requirements)) => (ScopeMatch::Docker(scope.clone()), requirements),
            None => (ScopeMatch::Default, &self.default),
        };
        Scoped {
            scope,
            requirements,
            source: &self.source,
        }
    }

    /// Finds the scope of `image` and judges `candidates` against it: see
    /// [`Scoped::evaluate`].
    pub fn evaluate<C>(
        &self,
        image: &Reference,
        manifest_digest: &str,
        candidates: &[C],
        verifier: &dyn SignatureVerifier<C>,
    ) -> Decision {
        self.requirements_for(image)
            .evaluate(image, manifest_digest, candidates, verifier)
    }
}
