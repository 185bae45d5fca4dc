//! The HTTP client: one place for URLs, TLS, auth, retries and error envelopes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::auth::{AuthCache, Authorization, Challenge, basic_secret, parse_challenge};
use crate::credentials::{Credential, DockerConfig, Secret};
use crate::error::{ClientError, RegistryErrorBody, Result};
use crate::hosts::{RegistriesConfig, api_host, is_loopback};
use crate::retry::{RetryPolicy, parse_retry_after};

/// Settings that apply to every registry a command talks to.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Always use plain HTTP.
    pub plain_http: bool,
    /// Never verify certificates.
    pub insecure: bool,
    /// An extra CA certificate (PEM) for every registry.
    pub ca_file: Option<PathBuf>,
    /// Per-registry settings and mirrors.
    pub registries: RegistriesConfig,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// A response that sends nothing for this long fails (and is retried).
    pub idle_timeout: Duration,
    /// Where credentials come from (None: anonymous only).
    pub docker_config: Option<DockerConfig>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure: false,
            ca_file: None,
            registries: RegistriesConfig::default(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            docker_config: None,
        }
    }
}

/// What access a request needs, for token scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Read.
    Pull,
    /// Read and write.
    Push,
    /// Write here and read `from` (cross-repository mount).
    PushMountFrom(String),
}

/// A repository on a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The registry as users name it (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// The repository (`library/ubuntu`).
    pub repository: String,
}

impl Endpoint {
    /// From a parsed reference.
    pub fn of(reference: &ferry_spec::Reference) -> Endpoint {
        Endpoint {
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
        }
    }

    /// The host serving the API.
    pub fn host(&self) -> &str {
        api_host(&self.registry)
    }

    fn scopes(&self, access: &Access) -> Vec<String> {
        match access {
            Access::Pull => vec![format!("repository:{}:pull", self.repository)],
            Access::Push => vec![format!("repository:{}:pull,push", self.repository)],
            Access::PushMountFrom(from) => vec![
                format!("repository:{}:pull,push", self.repository),
                format!("repository:{from}:pull"),
            ],
        }
    }
}

/// A request body that can be rebuilt for a retry.
pub type BodyFactory = Arc<dyn Fn() -> Result<reqwest::Body> + Send + Sync>;

/// One HTTP request.
pub struct Request {
    /// Method.
    pub method: Method,
    /// A path below the registry root (`/v2/...`) or an absolute URL (a Location).
    pub url: String,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body, rebuilt on every attempt.
    pub body: Option<BodyFactory>,
    /// Access needed.
    pub access: Access,
    /// What this is, for error messages ("pushing blob sha256:...").
    pub action: String,
}

impl Request {
    /// A request without a body.
    pub fn new(
        method: Method,
        url: impl Into<String>,
        access: Access,
        action: impl Into<String>,
    ) -> Request {
        Request {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            access,
            action: action.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Request {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Sets a body.
    pub fn body(mut self, body: BodyFactory) -> Request {
        self.body = Some(body);
        self
    }
}

/// A client for any number of registries.
pub struct Client {
    options: ClientOptions,
    http: Mutex<HashMap<String, reqwest::Client>>,
    auth: AuthCache,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// Loopback hosts that turned out to speak plain HTTP.
    plain_hosts: Mutex<HashMap<String, bool>>,
}

impl Client {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Client {
        Client {
            options,
            http: Mutex::new(HashMap::new()),
            auth: AuthCache::default(),
            credentials: Mutex::new(HashMap::new()),
            plain_hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn host_settings(&self, host: &str) -> (bool, bool, Option<PathBuf>) {
        let entry = self.options.registries.entry_for(host, "");
        let plain = self.options.plain_http || entry.is_some_and(|e| e.plain_http);
        let insecure = self.options.insecure || entry.is_some_and(|e| e.insecure);
        let ca = entry
            .and_then(|e| e.ca_file.clone())
            .or_else(|| self.options.ca_file.clone());
        (plain, insecure, ca)
    }

    fn http_for(&self, host: &str) -> Result<reqwest::Client> {
        let mut clients = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(host) {
            return Ok(client.clone());
        }
        let (_, insecure, ca) = self.host_settings(host);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.options.connect_timeout)
            .read_timeout(self.options.idle_timeout)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(insecure);
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca).map_err(|e| {
                ClientError::Config(format!("reading CA file {}: {e}", ca.display()))
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Config(format!("CA file {}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Config(format!("building HTTP client: {e}")))?;
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }

    /// `https://host` or `http://host` for a registry host.
    pub fn base_url(&self, host: &str) -> String {
        let (plain, _, _) = self.host_settings(host);
        let fallback = self
            .plain_hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .copied()
            .unwrap_or(false);
        if plain || fallback {
            format!("http://{host}")
        } else {
            format!("https://{host}")
        }
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        let mut cache = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(registry) {
            return Ok(found.clone());
        }
        let found = match &self.options.docker_config {
            Some(config) => config.credential_for(registry)?,
            None => None,
        };
        cache.insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// Sends a request with auth and retries; returns any response that is
    /// not a 401, 429 or 5xx (those are handled here) for the caller to judge.
    pub async fn send(&self, endpoint: &Endpoint, request: &Request) -> Result<reqwest::Response> {
        let host = endpoint.host().to_string();
        let scope = endpoint.scopes(&request.access).join(" ");
        let policy = self.options.retry;
        let mut authenticated_retry = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let url = if request.url.starts_with("http://") || request.url.starts_with("https://") {
                request.url.clone()
            } else {
                format!("{}{}", self.base_url(&host), request.url)
            };
            let http = self.http_for(&host)?;
            let mut builder = http
                .request(request.method.clone(), &url)
                .headers(request.headers.clone());
            if let Some(auth) = self
                .auth
                .get(&host, &scope)
                .or_else(|| self.auth.get(&host, "*"))
            {
                builder = builder.header("authorization", auth.header_value());
            }
            if let Some(body) = &request.body {
                builder = builder.body(body()?);
            }
            let response = match builder.send().await {
                Ok(response) => response,
                Err(error) => {
                    if is_loopback(&host)
                        && url.starts_with("https://")
                        && !self.host_settings(&host).0
                        && !is_certificate_error(&error)
                    {
                        // Docker's rule for loopback registries: HTTPS first, then HTTP.
                        // A certificate error means the server speaks TLS: falling
                        // back would hide the real problem behind an HTTP one.
                        tracing::debug!("{host}: HTTPS failed ({error}), trying plain HTTP");
                        self.plain_hosts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(host.clone(), true);
                        attempt -= 1;
                        continue;
                    }
                    let failure = ClientError::Unreachable {
                        registry: endpoint.registry.clone(),
                        reason: describe_reqwest_error(&error),
                    };
                    if attempt < policy.attempts && !is_permanent_connect_error(&error) {
                        let delay = policy.delay(attempt, None);
                        tracing::warn!("{}: {failure}; retrying in {delay:?}", request.action);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(failure);
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if authenticated_retry {
                    return Err(ClientError::Unauthorized {
                        registry: endpoint.registry.clone(),
                    });
                }
                authenticated_retry = true;
                self.auth.invalidate(&host, &scope);
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                self.authenticate(endpoint, &host, &scope, challenge)
                    .await?;
                attempt -= 1;
                continue;
            }
            if (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                && attempt < policy.attempts
            {
                let delay = policy.delay(
                    attempt,
                    parse_retry_after(response.headers().get("retry-after")),
                );
                tracing::warn!(
                    "{}: {} answered {status}; retrying in {delay:?}",
                    request.action,
                    endpoint.registry
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(status_error(endpoint, &request.action, response).await);
            }
            return Ok(response);
        }
    }

    async fn authenticate(
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
        let realm_host = reqwest::Url::parse(realm)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| endpoint.host().to_string());
        let http = self.http_for(&realm_host)?;
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
            reason: describe_reqwest_error(&e),
        })?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            return Err(ClientError::Unauthorized {
                registry: endpoint.registry.clone(),
            });
        }
        if !response.status().is_success() {
            return Err(status_error(endpoint, "fetching a token", response).await);
        }
        let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Invalid {
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

/// Builds a status error, parsing the registry's error envelope when present.
pub async fn status_error(
    endpoint: &Endpoint,
    action: &str,
    response: reqwest::Response,
) -> ClientError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let first = v.get("errors")?.get(0)?;
            Some(RegistryErrorBody {
                code: first.get("code")?.as_str()?.to_string(),
                message: first
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("")
                    .to_string(),
            })
        });
    if status == 401 {
        return ClientError::Unauthorized {
            registry: endpoint.registry.clone(),
        };
    }
    ClientError::Status {
        registry: endpoint.registry.clone(),
        action: action.to_string(),
        status,
        body,
    }
}

fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// DNS failures and TLS certificate problems do not heal with retries.
fn is_permanent_connect_error(error: &reqwest::Error) -> bool {
    let text = describe_reqwest_error(error).to_ascii_lowercase();
    text.contains("dns error") || text.contains("failed to lookup") || is_certificate_error(error)
}

/// The server's certificate was refused (so the server does speak TLS).
fn is_certificate_error(error: &reqwest::Error) -> bool {
    let text = describe_reqwest_error(error).to_ascii_lowercase();
    text.contains("certificate") || text.contains("invalid peer")
}

fn url_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={}", url_encode(value))
}
