//! `signedIdentity`: which name a signature must claim for an image.

use std::fmt;

use ferry_spec::Reference;
use ferry_spec::names::parse_reference;

/// What a signature's docker-reference must say, relative to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIdentity {
    /// `matchExact`: the image's `repo:tag`, exactly.
    MatchExact,
    /// `matchRepoDigestOrExact` (the default): same repository for an image
    /// pulled by digest, same `repo:tag` otherwise.
    MatchRepoDigestOrExact,
    /// `matchRepository`: the same repository, whatever the tag.
    MatchRepository,
    /// `exactReference`: exactly this reference (with a tag or digest).
    ExactReference {
        /// `dockerReference`, normalized.
        docker_reference: String,
    },
    /// `exactRepository`: this repository, whatever the tag.
    ExactRepository {
        /// `dockerRepository`, normalized.
        docker_repository: String,
    },
    /// `remapIdentity`: the image's name with `prefix` replaced by
    /// `signed_prefix`, then `matchRepoDigestOrExact`.
    RemapIdentity {
        /// A fully expanded host, namespace or repository.
        prefix: String,
        /// What replaces `prefix`.
        signed_prefix: String,
    },
}

/// Why a signature's claimed identity does not fit the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({rule})")]
pub struct IdentityMismatch {
    /// The `signedIdentity` type that refused it.
    pub rule: &'static str,
    /// What differs.
    pub reason: String,
}

impl SignedIdentity {
    /// The `type` of this identity rule in the JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::MatchExact => "matchExact",
            Self::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            Self::MatchRepository => "matchRepository",
            Self::ExactReference { .. } => "exactReference",
            Self::ExactRepository { .. } => "exactRepository",
            Self::RemapIdentity { .. } => "remapIdentity",
        }
    }

    /// True when a signature claiming `signed_docker_reference` may stand
    /// for `image`; see [`SignedIdentity::check`] for the reason when not.
    pub fn matches(&self, image: &Reference, signed_docker_reference: &str) -> bool {
        self.check(image, signed_docker_reference).is_ok()
    }

    /// Whether a signature claiming `signed_docker_reference` may stand for
    /// `image`, and if not, why. An unparsable claim is a mismatch.
    pub fn check(
        &self,
        image: &Reference,
        signed_docker_reference: &str,
    ) -> Result<(), IdentityMismatch> {
        let rule = self.type_name();
        let mismatch = |reason: String| IdentityMismatch { rule, reason };
        let signed = Identity::parse(signed_docker_reference).map_err(|reason| {
            mismatch(format!(
                "signed identity {signed_docker_reference:?} is not a reference: {reason}"
            ))
        })?;
        let configured = |value: &str| {
            Identity::parse(value).map_err(|reason| mismatch(format!("{value:?}: {reason}")))
        };
        match self {
            Self::MatchExact => {
                let image = Identity::of_image(image);
                if image.digest.is_some() {
                    return Err(mismatch(format!(
                        "{image} is named by digest, which no signature can name"
                    )));
                }
                exact(&image, &signed, rule)
            }
            Self::MatchRepoDigestOrExact => {
                repo_digest_or_exact(&Identity::of_image(image), &signed, rule)
            }
            Self::MatchRepository => same_repository(&Identity::of_image(image), &signed, rule),
            Self::ExactReference { docker_reference } => {
                exact(&configured(docker_reference)?, &signed, rule)
            }
            Self::ExactRepository { docker_repository } => {
                same_repository(&configured(docker_repository)?, &signed, rule)
            }
            Self::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                let image = Identity::of_image(image)
                    .remap(prefix, signed_prefix)
                    .map_err(mismatch)?;
                repo_digest_or_exact(&image, &signed, rule)
            }
        }
    }
}

fn exact(want: &Identity, signed: &Identity, rule: &'static str) -> Result<(), IdentityMismatch> {
    name_only_problem(signed, rule)?;
    if want.to_string() == signed.to_string() {
        Ok(())
    } else {
        Err(different(signed, want, rule))
    }
}

fn repo_digest_or_exact(
    want: &Identity,
    signed: &Identity,
    rule: &'static str,
) -> Result<(), IdentityMismatch> {
    if want.digest.is_some() {
        // The manifest digest is checked against the signature separately.
        name_only_problem(signed, rule)?;
        return same_repository(want, signed, rule);
    }
    exact(want, signed, rule)
}

fn same_repository(
    want: &Identity,
    signed: &Identity,
    rule: &'static str,
) -> Result<(), IdentityMismatch> {
    if want.name == signed.name {
        Ok(())
    } else {
        Err(IdentityMismatch {
            rule,
            reason: format!("identity {} does not match {}", signed.name, want.name),
        })
    }
}

fn different(signed: &Identity, want: &Identity, rule: &'static str) -> IdentityMismatch {
    IdentityMismatch {
        rule,
        reason: format!("identity {signed} does not match {want}"),
    }
}

/// containers/image refuses a claim without tag or digest wherever a tag
/// is compared; cosign's claims are such, hence the hint.
fn name_only_problem(signed: &Identity, rule: &'static str) -> Result<(), IdentityMismatch> {
    if signed.tag.is_none() && signed.digest.is_none() {
        return Err(IdentityMismatch {
            rule,
            reason: format!(
                "identity {signed} names no tag (cosign signs repositories: use matchRepository)"
            ),
        });
    }
    Ok(())
}

/// A normalized `host/repo`, with the tag and digest that were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    /// `host/repository`, as Docker normalizes it.
    pub(super) name: String,
    pub(super) tag: Option<String>,
    pub(super) digest: Option<String>,
}

impl Identity {
    /// The identity an image is judged by: its digest when it has one (the
    /// digest pins the content), else its tag, `latest` when none is given.
    pub(super) fn of_image(image: &Reference) -> Self {
        let name = format!("{}/{}", image.registry(), image.repository());
        match image.digest() {
            Some(digest) => Self {
                name,
                tag: None,
                digest: Some(digest.to_string()),
            },
            None => Self {
                name,
                tag: Some(image.tag().unwrap_or("latest").to_string()),
                digest: None,
            },
        }
    }

    /// Parses a written reference, normalized, keeping whether it named a
    /// tag (parse_reference would add `latest`).
    pub(super) fn parse(input: &str) -> Result<Self, String> {
        let parsed = parse_reference(input).map_err(|error| error.reason)?;
        let before_digest = input.split('@').next().unwrap_or(input);
        let last_component = before_digest.rsplit('/').next().unwrap_or(before_digest);
        let has_tag = last_component.contains(':');
        Ok(Self {
            name: format!("{}/{}", parsed.registry(), parsed.repository()),
            tag: parsed.tag().filter(|_| has_tag).map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// True when written without tag or digest.
    pub(super) fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// Replaces `prefix` of the name by `signed_prefix` when it matches on
    /// a component boundary; unchanged otherwise.
    fn remap(self, prefix: &str, signed_prefix: &str) -> Result<Self, String> {
        let Some(rest) = self.name.strip_prefix(prefix) else {
            return Ok(self);
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Ok(self);
        }
        let mut remapped = format!("{signed_prefix}{rest}");
        if let Some(tag) = &self.tag {
            remapped = format!("{remapped}:{tag}");
        }
        if let Some(digest) = &self.digest {
            remapped = format!("{remapped}@{digest}");
        }
        Self::parse(&remapped)
            .map_err(|reason| format!("remapping {self} gives {remapped:?}: {reason}"))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}
