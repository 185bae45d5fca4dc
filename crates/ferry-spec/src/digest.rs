//! Digests computed while data streams through: SHA-256 (what ferry writes)
//! and SHA-512 (what registries may be sent), one hasher for both.
//!
//! The digest type everywhere is `oci_spec`'s [`Digest`]; [`parse_digest`]
//! narrows it to the algorithms ferry can verify, so a digest that passed it
//! is lowercase hex of the right length and safe as a file name.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest ferry cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `ALGORITHM:ENCODED` per the image spec, or the wrong length or case.
    #[error("invalid digest {input:?}: {reason}")]
    Invalid {
        /// What was given.
        input: String,
        /// Why it is refused.
        reason: String,
    },
    /// Well formed, but an algorithm ferry does not compute.
    #[error("digest algorithm {0:?} is not supported (sha256, sha512)")]
    Unsupported(String),
}

/// Parses a digest ferry can verify: `sha256:<64 hex>` or `sha512:<128 hex>`.
pub fn parse_digest(input: &str) -> Result<Digest, DigestError> {
    let digest = Digest::try_from(input).map_err(|e| DigestError::Invalid {
        input: input.to_string(),
        reason: e.to_string(),
    })?;
    match digest.algorithm() {
        DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512 => Ok(digest),
        other => Err(DigestError::Unsupported(other.to_string())),
    }
}

/// An incremental hasher for the algorithms ferry verifies.
#[derive(Clone)]
pub enum DigestHasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl DigestHasher {
    /// A SHA-256 hasher, the algorithm ferry writes.
    pub fn sha256() -> Self {
        DigestHasher::Sha256(Sha256::new())
    }

    /// A hasher for `algorithm`, or an error for one ferry does not compute.
    pub fn new(algorithm: &DigestAlgorithm) -> Result<Self, DigestError> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(DigestHasher::Sha256(Sha256::new())),
            DigestAlgorithm::Sha512 => Ok(DigestHasher::Sha512(Sha512::new())),
            other => Err(DigestError::Unsupported(other.to_string())),
        }
    }

    /// A hasher for the algorithm of `digest`, to verify content against it.
    pub fn for_digest(digest: &Digest) -> Result<Self, DigestError> {
        Self::new(digest.algorithm())
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// Adds everything `reader` yields, read in 1 MiB blocks; returns how
    /// many bytes that was. The hasher can keep going afterwards (a resumed
    /// download hashes what it kept, then what arrives).
    pub fn update_from_reader(&mut self, mut reader: impl Read) -> io::Result<u64> {
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.update(&buffer[..n]);
            total += n as u64;
        }
    }

    /// The digest of everything added.
    #[expect(
        clippy::expect_used,
        reason = "lowercase hex of a sha2 output always parses"
    )]
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            DigestHasher::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            DigestHasher::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        // Lowercase hex of the algorithm's length is always a valid digest.
        Digest::try_from(format!("{algorithm}:{hex}"))
            .expect("hex of a sha2 hash is a valid digest")
    }
}

/// The digest and length of everything `reader` yields, read in 1 MiB blocks.
pub fn hash_reader(reader: impl Read, algorithm: &DigestAlgorithm) -> io::Result<(Digest, u64)> {
    let mut hasher = DigestHasher::new(algorithm).map_err(io::Error::other)?;
    let total = hasher.update_from_reader(reader)?;
    Ok((hasher.finish(), total))
}

/// The digest and length of the file at `path`.
pub fn hash_file(path: &Path, algorithm: &DigestAlgorithm) -> io::Result<(Digest, u64)> {
    hash_reader(File::open(path)?, algorithm)
}

/// The digest of an in-memory buffer.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    digest_from_hasher(hasher)
}

/// Turns a finished SHA-256 hasher into an OCI digest.
pub fn digest_from_hasher(hasher: Sha256) -> Digest {
    DigestHasher::Sha256(hasher).finish()
}

/// True when `digest` is a sha256 digest (the only algorithm the store writes).
pub fn is_sha256(digest: &Digest) -> bool {
    digest.to_string().starts_with("sha256:")
}

/// A writer that hashes and counts every byte before passing it on.
pub struct HashingWriter<W> {
    inner: W,
    hasher: DigestHasher,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: DigestHasher::sha256(),
            written: 0,
        }
    }

    /// Wraps `inner`, hashing with `hasher` (e.g. to verify a sha512 digest).
    pub fn with_hasher(inner: W, hasher: DigestHasher) -> Self {
        Self {
            inner,
            hasher,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte it yields.
pub struct HashingReader<R> {
    inner: R,
    hasher: DigestHasher,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: DigestHasher::sha256(),
            read: 0,
        }
    }

    /// Returns the digest and byte count of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_object_has_the_spec_digest() {
        assert_eq!(
            sha256_digest(b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn a_hasher_continues_after_a_reader() {
        let mut hasher = DigestHasher::sha256();
        assert_eq!(hasher.update_from_reader(&b"hello, "[..]).unwrap(), 7);
        hasher.update(b"world");
        assert_eq!(hasher.finish(), sha256_digest(b"hello, world"));
        let mut empty = DigestHasher::sha256();
        assert_eq!(empty.update_from_reader(io::empty()).unwrap(), 0);
        assert_eq!(empty.finish(), sha256_digest(b""));
    }

    #[test]
    fn sha512_and_parsing() {
        let mut hasher = DigestHasher::new(&DigestAlgorithm::Sha512).unwrap();
        hasher.update(b"abc");
        let digest = hasher.finish();
        assert!(digest.to_string().starts_with("sha512:ddaf35a1"));
        assert_eq!(parse_digest(digest.as_ref()).unwrap(), digest);
        let (streamed, n) = hash_reader(&b"abc"[..], &DigestAlgorithm::Sha512).unwrap();
        assert_eq!((streamed, n), (digest, 3));
        assert!(matches!(
            parse_digest(&format!("sha384:{}", "a".repeat(96))),
            Err(DigestError::Unsupported(_))
        ));
        for bad in [
            "sha256:abc",
            "sha256",
            &format!("sha256:{}", "A".repeat(64)),
            "sha256:../../etc",
        ] {
            assert!(
                matches!(parse_digest(bad), Err(DigestError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn writer_and_reader_agree_with_the_buffer_digest() {
        let data = vec![7u8; 100_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, digest, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, 100_000);
        assert_eq!(digest, sha256_digest(&data));

        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (sha256_digest(&data), 100_000));
    }
}
