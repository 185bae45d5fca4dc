//! Who may do what: htpasswd (bcrypt) Basic auth, anonymous pulls, read-only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, header};
use sha2::{Digest as _, Sha256};

use crate::error::RegistryError;

/// Access rules for every request.
#[derive(Default)]
pub struct Access {
    users: Option<HashMap<String, String>>,
    anonymous_pull: bool,
    read_only: bool,
    /// bcrypt is deliberately slow; a verified (user, password hash) pair is
    /// remembered so each request does not pay for it again.
    verified: Mutex<HashMap<(String, [u8; 32]), bool>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users.as_ref().map(|u| u.len()))
            .field("anonymous_pull", &self.anonymous_pull)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Why an htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not `user:bcrypt-hash`.
    #[error("{path} line {line}: expected user:bcrypt-hash ($2a$, $2b$ or $2y$)")]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
    },
}

impl Access {
    /// Rules from the server flags.
    pub fn new(
        htpasswd: Option<&Path>,
        anonymous_pull: bool,
        read_only: bool,
    ) -> Result<Access, HtpasswdError> {
        let users = htpasswd.map(load_htpasswd).transpose()?;
        Ok(Access {
            users,
            anonymous_pull,
            read_only,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Allows or refuses a request.
    pub fn check(&self, headers: &HeaderMap, method: &Method) -> Result<(), RegistryError> {
        let is_read = matches!(*method, Method::GET | Method::HEAD);
        if self.read_only && !is_read {
            return Err(RegistryError::unsupported("the registry is read-only"));
        }
        let Some(users) = &self.users else {
            return Ok(());
        };
        if is_read && self.anonymous_pull {
            return Ok(());
        }
        let credentials = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|b64| decode_base64(b64.trim()))
            .and_then(|raw| String::from_utf8(raw).ok());
        let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
            return Err(RegistryError::unauthorized());
        };
        let Some(hash) = users.get(user) else {
            return Err(RegistryError::unauthorized());
        };
        let key = (user.to_string(), Sha256::digest(password.as_bytes()).into());
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        let ok = match cached {
            Some(ok) => ok,
            None => {
                let ok = bcrypt::verify(password, hash).unwrap_or(false);
                self.verified
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, ok);
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(RegistryError::unauthorized())
        }
    }
}

fn load_htpasswd(path: &Path) -> Result<HashMap<String, String>, HtpasswdError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
        path: display.clone(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || HtpasswdError::Line {
            path: display.clone(),
            line: i + 1,
        };
        let (user, hash) = line.split_once(':').ok_or_else(bad)?;
        if user.is_empty() || !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            return Err(bad());
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

/// Standard base64 decoding of an Authorization value. Hand-written: four
/// lines of table lookup do not justify another dependency in the server.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let produced = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        for i in 0..produced {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_credentials() {
        assert_eq!(decode_base64("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert!(decode_base64("***").is_none());
    }

    #[test]
    fn basic_auth_with_bcrypt_and_anonymous_pull() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        let access = Access::new(Some(&path), true, false).unwrap();
        let mut headers = HeaderMap::new();
        assert!(access.check(&headers, &Method::GET).is_ok());
        assert!(access.check(&headers, &Method::PUT).is_err());
        headers.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6c2VjcmV0".parse().unwrap(),
        );
        assert!(access.check(&headers, &Method::PUT).is_ok());
        headers.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6d3Jvbmc=".parse().unwrap(),
        );
        assert_eq!(
            access.check(&headers, &Method::PUT).unwrap_err().code,
            Some(crate::error::ErrorCode::Unauthorized)
        );
        std::fs::write(&path, "bob:plaintext\n").unwrap();
        assert!(Access::new(Some(&path), false, false).is_err());
    }

    #[test]
    fn read_only_refuses_writes() {
        let access = Access::new(None, false, true).unwrap();
        assert!(access.check(&HeaderMap::new(), &Method::GET).is_ok());
        assert_eq!(
            access
                .check(&HeaderMap::new(), &Method::DELETE)
                .unwrap_err()
                .code,
            Some(crate::error::ErrorCode::Unsupported)
        );
    }
}
