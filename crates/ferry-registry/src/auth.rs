//! The registry auth flow: `WWW-Authenticate` challenges, Basic, and Bearer
//! tokens fetched from the realm, cached per scope.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::credentials::{Credential, Secret};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// Service name to ask for.
        service: Option<String>,
        /// Scope the registry asked for.
        scope: Option<String>,
    },
}

/// Parses a challenge header value.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas.
fn parse_params(input: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

/// What to send in `Authorization` for a host and scope.
#[derive(Clone)]
pub enum Authorization {
    /// `Basic <base64>`.
    Basic(Secret),
    /// `Bearer <token>`.
    Bearer(Secret),
}

impl Authorization {
    /// The header value.
    pub fn header_value(&self) -> String {
        match self {
            Authorization::Basic(b) => format!("Basic {}", b.expose()),
            Authorization::Bearer(t) => format!("Bearer {}", t.expose()),
        }
    }
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authorization::Basic(_) => "Basic(<redacted>)",
            Authorization::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

/// (host, scope) -> what to send and until when.
type AuthEntries = HashMap<(String, String), (Authorization, Option<Instant>)>;

/// Tokens and Basic decisions remembered per host and scope.
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<AuthEntries>,
}

impl AuthCache {
    /// A cached authorization still valid for `host` and `scope`.
    pub fn get(&self, host: &str, scope: &str) -> Option<Authorization> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (auth, expires) = entries.get(&(host.to_string(), scope.to_string()))?;
        match expires {
            Some(t) if *t <= Instant::now() => None,
            _ => Some(auth.clone()),
        }
    }

    /// Remembers an authorization.
    pub fn put(&self, host: &str, scope: &str, auth: Authorization, lifetime: Option<Duration>) {
        // Refresh a little early so a token does not expire mid-request.
        let expires = lifetime.map(|d| Instant::now() + d.saturating_sub(Duration::from_secs(10)));
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((host.to_string(), scope.to_string()), (auth, expires));
    }

    /// Forgets what a 401 proved stale.
    pub fn invalidate(&self, host: &str, scope: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(host.to_string(), scope.to_string()));
    }
}

/// Basic credentials as the header wants them.
pub fn basic_secret(credential: &Credential) -> Option<Secret> {
    use base64::Engine;
    match credential {
        Credential::Basic { username, password } => Some(Secret::new(
            base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose())),
        )),
        Credential::IdentityToken(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "realm is required"
        );
    }

    #[test]
    fn cache_expires_and_invalidates() {
        let cache = AuthCache::default();
        cache.put(
            "h",
            "s",
            Authorization::Bearer(Secret::new("t")),
            Some(Duration::from_secs(3600)),
        );
        assert!(cache.get("h", "s").is_some());
        assert!(cache.get("h", "other").is_none());
        cache.invalidate("h", "s");
        assert!(cache.get("h", "s").is_none());
        cache.put(
            "h",
            "s",
            Authorization::Bearer(Secret::new("t")),
            Some(Duration::from_secs(5)),
        );
        assert!(
            cache.get("h", "s").is_none(),
            "a token about to expire is not used"
        );
        assert!(!format!("{:?}", Authorization::Bearer(Secret::new("tok"))).contains("tok"));
    }
}
