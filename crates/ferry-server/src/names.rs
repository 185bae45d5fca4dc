//! Validation of everything a URL carries, before any storage key is built
//! from it. The grammar itself is `ferry-spec`'s, shared with the client.

use ferry_spec::digest::DigestError;
use ferry_spec::oci::Digest;

use crate::error::RegistryError;

/// A repository name per the distribution spec (see
/// [`ferry_spec::names::is_valid_repository`]).
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    if ferry_spec::names::is_valid_repository(name) {
        Ok(())
    } else {
        Err(RegistryError::name_invalid(name))
    }
}

/// A digest the registry can verify (sha256 or sha512, lowercase hex of the
/// right length, so safe as a file name): `DIGEST_INVALID` for a malformed
/// one, `UNSUPPORTED` for another algorithm.
pub fn parse_digest(input: &str) -> Result<Digest, RegistryError> {
    ferry_spec::digest::parse_digest(input).map_err(|error| match error {
        DigestError::Invalid { .. } => RegistryError::digest_invalid(error.to_string()),
        DigestError::Unsupported(_) => RegistryError::unsupported(error.to_string()),
    })
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// By tag.
    Tag(String),
    /// By digest.
    Digest(Digest),
}

/// Why a manifest reference was refused.
#[derive(Debug)]
pub enum BadReference {
    /// Neither a tag nor a digest.
    Tag(RegistryError),
    /// A digest that cannot be used.
    Digest(RegistryError),
}

impl From<BadReference> for RegistryError {
    fn from(bad: BadReference) -> Self {
        match bad {
            BadReference::Tag(error) | BadReference::Digest(error) => error,
        }
    }
}

impl ManifestRef {
    /// Parses a reference: anything with `:` is a digest, else a tag.
    pub fn parse(input: &str) -> Result<ManifestRef, BadReference> {
        if input.contains(':') {
            return parse_digest(input)
                .map(ManifestRef::Digest)
                .map_err(BadReference::Digest);
        }
        if ferry_spec::names::is_valid_tag(input) {
            Ok(ManifestRef::Tag(input.to_string()))
        } else {
            Err(BadReference::Tag(RegistryError::tag_invalid(input)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn names_follow_the_distribution_grammar() {
        for ok in ["a", "library/ubuntu", "a-b/c__d/e.f", "a--b", "x0/y1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a/../b", "..", "a/.b", "a_", "a___b", "a.-b", "a b",
            "a/%2e%2e",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    fn code(result: Result<Digest, RegistryError>) -> Option<ErrorCode> {
        result.err().and_then(|e| e.code)
    }

    #[test]
    fn digests_map_to_the_spec_codes() {
        assert!(parse_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(parse_digest(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}/..", "a".repeat(61)),
            "sha256:abc".to_string(),
            "no-colon".to_string(),
        ] {
            assert_eq!(
                code(parse_digest(&bad)),
                Some(ErrorCode::DigestInvalid),
                "{bad}"
            );
        }
        assert_eq!(
            code(parse_digest("md5:0123456789abcdef")),
            Some(ErrorCode::Unsupported)
        );
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert_eq!(
            ManifestRef::parse("v1.0_rc-1").unwrap(),
            ManifestRef::Tag("v1.0_rc-1".into())
        );
        let digest = format!("sha256:{}", "b".repeat(64));
        assert!(matches!(
            ManifestRef::parse(&digest),
            Ok(ManifestRef::Digest(d)) if d.to_string() == digest
        ));
        assert!(matches!(
            ManifestRef::parse(".x"),
            Err(BadReference::Tag(_))
        ));
        assert!(matches!(
            ManifestRef::parse(&"a".repeat(129)),
            Err(BadReference::Tag(_))
        ));
        assert!(matches!(
            ManifestRef::parse("sha256:short"),
            Err(BadReference::Digest(_))
        ));
    }
}
