//! Validation of everything a URL carries, before any path is built from it.

use sha2::{Digest as _, Sha256, Sha512};

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

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The digest algorithms the registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// Its name in a digest string.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// A validated digest: a known algorithm and lowercase hex of the right length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobDigest {
    algorithm: Algorithm,
    hex: String,
}

impl BlobDigest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub fn parse(input: &str) -> Result<BlobDigest, RegistryError> {
        let invalid = || RegistryError::digest_invalid(format!("invalid digest {input:?}"));
        let (algorithm, hex) = input.split_once(':').ok_or_else(invalid)?;
        let (algorithm, len) = match algorithm {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => {
                return Err(RegistryError::unsupported(format!(
                    "digest algorithm {algorithm:?} is not supported"
                )));
            }
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid());
        }
        Ok(BlobDigest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part (safe as a file name: validated).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> BlobDigest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl std::fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// An incremental hasher for either algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest.
    pub fn finish(self) -> BlobDigest {
        match self {
            Hasher::Sha256(h) => BlobDigest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Sha512(h) => BlobDigest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// By tag.
    Tag(String),
    /// By digest.
    Digest(BlobDigest),
}

impl ManifestRef {
    /// Parses a reference: anything with `:` is a digest, else a tag.
    pub fn parse(input: &str) -> Result<ManifestRef, RegistryError> {
        if input.contains(':') {
            return BlobDigest::parse(input).map(ManifestRef::Digest);
        }
        if is_valid_tag(input) {
            Ok(ManifestRef::Tag(input.to_string()))
        } else {
            Err(RegistryError::tag_invalid(input))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn tags_and_digests() {
        assert!(is_valid_tag("v1.0_rc-1"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(BlobDigest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(BlobDigest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(BlobDigest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(BlobDigest::parse(&format!("sha256:{}/..", "a".repeat(61))).is_err());
        assert!(BlobDigest::parse("sha256:abc").is_err());
        assert!(BlobDigest::parse("md5:abc").is_err());
        assert_eq!(
            BlobDigest::of(Algorithm::Sha256, b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
