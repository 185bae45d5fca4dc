//! The public keys a `sigstoreSigned` requirement names, read when it is
//! evaluated (a missing key for another scope must not break every pull).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest key file (or decoded `keyData`) read.
pub const MAX_KEY_SIZE: u64 = 64 * 1024;

/// One public key as the policy gives it: PEM bytes, not yet parsed (the
/// verifier parses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Where the key came from, for messages.
    pub origin: KeyOrigin,
    /// The PEM bytes.
    pub pem: Vec<u8>,
}

/// Where a key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A `keyPath` or one of `keyPaths`.
    Path(PathBuf),
    /// The requirement's `keyData`.
    KeyData,
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::KeyData => f.write_str("keyData"),
        }
    }
}

/// A key the policy names that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// containers/image requires absolute key paths.
    #[error("key path {} is not absolute", path.display())]
    Relative {
        /// The path as written.
        path: PathBuf,
    },
    /// Missing or unreadable.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A directory, FIFO or device.
    #[error("key file {} is not a regular file", path.display())]
    NotAFile {
        /// The key file.
        path: PathBuf,
    },
    /// Larger than [`MAX_KEY_SIZE`].
    #[error("key {origin} is larger than {limit} bytes")]
    TooLarge {
        /// The key file or keyData.
        origin: KeyOrigin,
        /// The limit.
        limit: u64,
    },
}

/// Reads the key files of `keyPath` / `keyPaths`, in order.
pub(super) fn read_files(paths: &[PathBuf]) -> Result<Vec<KeyMaterial>, KeyError> {
    paths.iter().map(|path| read_key_file(path)).collect()
}

/// The key of `keyData`, already decoded from base64.
pub(super) fn from_data(pem: &[u8]) -> Result<Vec<KeyMaterial>, KeyError> {
    if pem.len() as u64 > MAX_KEY_SIZE {
        return Err(KeyError::TooLarge {
            origin: KeyOrigin::KeyData,
            limit: MAX_KEY_SIZE,
        });
    }
    Ok(vec![KeyMaterial {
        origin: KeyOrigin::KeyData,
        pem: pem.to_vec(),
    }])
}

fn read_key_file(path: &Path) -> Result<KeyMaterial, KeyError> {
    if !path.is_absolute() {
        return Err(KeyError::Relative {
            path: path.to_path_buf(),
        });
    }
    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut pem = Vec::new();
    file.take(MAX_KEY_SIZE + 1)
        .read_to_end(&mut pem)
        .map_err(read_error)?;
    if pem.len() as u64 > MAX_KEY_SIZE {
        return Err(KeyError::TooLarge {
            origin: KeyOrigin::Path(path.to_path_buf()),
            limit: MAX_KEY_SIZE,
        });
    }
    Ok(KeyMaterial {
        origin: KeyOrigin::Path(path.to_path_buf()),
        pem,
    })
}
