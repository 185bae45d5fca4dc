//! Holding a blob's bytes to the size its descriptor declares, while they
//! are read: a source that runs past the size is cut off at the first byte
//! too many, and one that ends early fails at its end, so neither the
//! decoder nor the writer ever trusts the claimed size.

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

/// How a blob's bytes broke its declared size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeViolation {
    /// More bytes came than declared.
    Longer,
    /// The bytes ended after `actual`, fewer than declared.
    Shorter {
        /// Bytes read before the end.
        actual: u64,
    },
}

/// The verdict of a [`DeclaredSize`], readable after the reader was moved
/// into a decoder or tar parser that may have rewrapped its I/O error.
pub type SizeCheck = Arc<OnceLock<SizeViolation>>;

/// A reader that yields exactly `declared` bytes of `inner` or fails.
pub struct DeclaredSize<R> {
    inner: R,
    declared: u64,
    read: u64,
    violation: SizeCheck,
}

impl<R: Read> DeclaredSize<R> {
    /// Wraps `inner`, which must hold `declared` bytes.
    pub fn new(inner: R, declared: u64) -> DeclaredSize<R> {
        DeclaredSize {
            inner,
            declared,
            read: 0,
            violation: Arc::new(OnceLock::new()),
        }
    }

    /// Where a violation is recorded.
    pub fn check(&self) -> SizeCheck {
        Arc::clone(&self.violation)
    }

    fn fail(&self, violation: SizeViolation) -> io::Error {
        let _ = self.violation.set(violation);
        let message = match violation {
            SizeViolation::Longer => format!("more than the declared {} bytes", self.declared),
            SizeViolation::Shorter { actual } => {
                format!(
                    "ended after {actual} of the declared {} bytes",
                    self.declared
                )
            }
        };
        let kind = match violation {
            SizeViolation::Longer => io::ErrorKind::InvalidData,
            SizeViolation::Shorter { .. } => io::ErrorKind::UnexpectedEof,
        };
        io::Error::new(kind, message)
    }

    /// One read of `inner`, retried when interrupted.
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl<R: Read> Read for DeclaredSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(violation) = self.violation.get() {
            return Err(self.fail(*violation));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.declared - self.read;
        if remaining == 0 {
            // Everything declared was read: one more byte proves a liar.
            let mut probe = [0u8; 1];
            return match self.read_inner(&mut probe)? {
                0 => Ok(0),
                _ => Err(self.fail(SizeViolation::Longer)),
            };
        }
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.read_inner(&mut buf[..want])?;
        if n == 0 {
            return Err(self.fail(SizeViolation::Shorter { actual: self.read }));
        }
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], declared: u64) -> (io::Result<Vec<u8>>, Option<SizeViolation>) {
        let mut reader = DeclaredSize::new(data, declared);
        let check = reader.check();
        let mut out = Vec::new();
        let result = reader.read_to_end(&mut out).map(|_| out);
        (result, check.get().copied())
    }

    #[test]
    fn exactly_the_declared_bytes_pass() {
        let (result, violation) = read_all(b"hello", 5);
        assert_eq!(result.unwrap(), b"hello");
        assert_eq!(violation, None);
        let (result, _) = read_all(b"", 0);
        assert!(result.unwrap().is_empty());
    }

    #[test]
    fn a_longer_source_fails_at_the_first_extra_byte() {
        // A source that would never end: only declared + 1 bytes are taken.
        let mut reader = DeclaredSize::new(io::repeat(7), 1000);
        let check = reader.check();
        let mut out = Vec::new();
        let error = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            out.len(),
            1000,
            "nothing past the declared size is handed on"
        );
        assert_eq!(check.get(), Some(&SizeViolation::Longer));
    }

    #[test]
    fn a_shorter_source_fails_at_its_end() {
        let (result, violation) = read_all(b"abc", 10);
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(violation, Some(SizeViolation::Shorter { actual: 3 }));
    }

    #[test]
    fn a_violation_sticks() {
        let mut reader = DeclaredSize::new(&b"abc"[..], 1);
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 1);
        assert!(reader.read(&mut buf).is_err());
        assert!(reader.read(&mut buf).is_err(), "a retry does not hide it");
    }
}
