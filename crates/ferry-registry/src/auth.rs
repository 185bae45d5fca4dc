//! The registry auth flow: `WWW-Authenticate` challenges, Basic, and Bearer
//! tokens fetched from the realm, cached per scope.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::api::{read_limited_body, response_error};
use crate::body::MAX_TOKEN_BYTES;
use crate::client::{Access, Client, Endpoint};
use crate::credentials::{Credential, Secret};
use crate::error::{ClientError, Result};
use crate::net;
use crate::request::{Request, url_encode, with_query};

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

impl Client {
    /// Answers a challenge for `scope`: Basic credentials, or a Bearer token
    /// from the challenge's realm (with the credentials when there are any).
    pub(crate) async fn authenticate(
        &self,
        endpoint: &Endpoint,
        host: &str,
        scope: &str,
        challenge: Option<Challenge>,
    ) -> Result<()> {
        let credential = self.credential(&endpoint.registry)?;
        match challenge {
            Some(Challenge::Basic) | None => {
                let Some(secret) = credential.as_ref().and_then(basic_secret) else {
                    return Err(ClientError::Unauthorized {
                        registry: endpoint.registry.clone(),
                    });
                };
                // Basic credentials are per host, whatever the scope.
                self.auth.put(host, "*", Authorization::Basic(secret), None);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let (token, lifetime) = self
                    .fetch_token(
                        endpoint,
                        &realm,
                        service.as_deref(),
                        scope,
                        credential.as_ref(),
                    )
                    .await?;
                self.auth
                    .put(host, scope, Authorization::Bearer(token), Some(lifetime));
                Ok(())
            }
        }
    }

    async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<(Secret, Duration)> {
        let realm_url = reqwest::Url::parse(realm).ok();
        let realm_host = realm_url
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| endpoint.host().to_string());
        // Credentials for an HTTPS registry never travel in plain text.
        if credential.is_some()
            && realm_url.as_ref().is_some_and(|u| u.scheme() == "http")
            && self.base_url(endpoint.host()).starts_with("https://")
        {
            return Err(ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!(
                    "token realm {realm} would move credentials from HTTPS to plain HTTP"
                ),
            });
        }
        let http = self.http_for(&realm_host, false)?;
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        let response = match credential {
            Some(Credential::IdentityToken(token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", token.expose().to_string()),
                    ("client_id", "ferry".to_string()),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_string()));
                }
                form.push(("scope", scopes.join(" ")));
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", url_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                http.post(realm)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
            }
            other => {
                let mut url = realm.to_string();
                if let Some(service) = service {
                    url = with_query(&url, "service", service);
                }
                for s in &scopes {
                    url = with_query(&url, "scope", s);
                }
                let mut builder = http.get(url);
                if let Some(Credential::Basic { username, password }) = other {
                    builder = builder.basic_auth(username, Some(password.expose()));
                }
                builder.send().await
            }
        }
        .map_err(|e| ClientError::Unreachable {
            registry: realm_host.clone(),
            cause: net::classify(&e),
            source: Box::new(e),
        })?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            return Err(ClientError::Unauthorized {
                registry: endpoint.registry.clone(),
            });
        }
        if !response.status().is_success() {
            let request = Request::new(Method::GET, realm, Access::Pull, "fetching a token");
            return Err(response_error(endpoint, &request, response).await);
        }
        let bytes =
            read_limited_body(endpoint, response, MAX_TOKEN_BYTES, "token response").await?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid {
                registry: realm_host.clone(),
                reason: format!("token response: {e}"),
            })?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClientError::Invalid {
                registry: realm_host,
                reason: "token response has no token".into(),
            })?;
        let lifetime = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(60)
            .max(60);
        Ok((Secret::new(token), Duration::from_secs(lifetime)))
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
