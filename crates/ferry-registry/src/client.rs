//! The HTTP client: one place for URLs, TLS, auth, retries and error envelopes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use ferry_spec::oci::Digest;
use oci_spec::distribution::ErrorCode;

use crate::auth::{AuthCache, Authorization, Challenge, basic_secret, parse_challenge};
use crate::bridge::ByteStream;
use crate::credentials::{Credential, DockerConfig, Secret};
use crate::error::{ClientError, Missing, NetCause, RegistryErrorBody, Result, io_error};
use crate::hosts::{RegistriesConfig, api_host, is_loopback};
use crate::net;
use crate::retry::{RetryPolicy, parse_retry_after, retry};

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

/// What a request asks about, so that a 404 can say what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A manifest by tag or digest.
    Manifest(String),
    /// A blob.
    Blob(Digest),
    /// Anything else (uploads, listings, the API root).
    Other,
}

/// A request body.
pub(crate) enum RequestBody {
    /// No body.
    Empty,
    /// Bytes in memory (sent again on a retry).
    Bytes(Bytes),
    /// `len` bytes of a file from `offset` (read again on a retry).
    File {
        /// The file.
        path: PathBuf,
        /// First byte.
        offset: u64,
        /// Bytes to send.
        len: u64,
    },
    /// A stream: sent once, so the request is never retried.
    Once(Mutex<Option<ByteStream>>),
}

impl RequestBody {
    /// A body that is sent once.
    pub(crate) fn once(stream: ByteStream) -> RequestBody {
        RequestBody::Once(Mutex::new(Some(stream)))
    }

    fn build(&self, registry: &str) -> Result<Option<reqwest::Body>> {
        Ok(Some(match self {
            RequestBody::Empty => return Ok(None),
            RequestBody::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
            RequestBody::File { path, offset, len } => {
                use std::io::{Seek, SeekFrom};
                let mut file =
                    std::fs::File::open(path).map_err(io_error("reading", path.display()))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(io_error("reading", path.display()))?;
                let limited = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), *len);
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    limited,
                    crate::bridge::CHUNK,
                ))
            }
            RequestBody::Once(slot) => {
                let stream = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                match stream {
                    Some(stream) => reqwest::Body::wrap_stream(stream),
                    // Only reachable when the first try never got through
                    // (a challenge, a fallback): the caller starts over.
                    None => {
                        return Err(ClientError::Unreachable {
                            registry: registry.to_string(),
                            cause: NetCause::Interrupted,
                            source: "a streamed body cannot be sent twice".into(),
                        });
                    }
                }
            }
        }))
    }
}

/// One HTTP request.
pub(crate) struct Request {
    /// Method.
    pub method: Method,
    /// A path below the registry root (`/v2/...`) or an absolute URL (a Location).
    pub url: String,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: RequestBody,
    /// Access needed.
    pub access: Access,
    /// What this is, for messages ("pushing manifest v1").
    pub action: String,
    /// What a 404 means.
    pub target: Target,
    /// Never repeated by [`Client::send`] (the caller knows better how to
    /// go on after a failure).
    pub single_attempt: bool,
}

impl Request {
    /// A request without a body.
    pub(crate) fn new(
        method: Method,
        url: impl Into<String>,
        access: Access,
        action: impl Into<String>,
    ) -> Request {
        Request {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
            access,
            action: action.into(),
            target: Target::Other,
            single_attempt: false,
        }
    }

    /// Adds a header (values are ASCII that ferry builds).
    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Request {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Sets a body.
    pub(crate) fn body(mut self, body: RequestBody) -> Request {
        self.body = body;
        self
    }

    /// Sends the request once, whatever happens.
    pub(crate) fn once(mut self) -> Request {
        self.single_attempt = true;
        self
    }

    /// Says what a 404 means.
    pub(crate) fn target(mut self, target: Target) -> Request {
        self.target = target;
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
            .dns_resolver(net::SystemResolver)
            .danger_accept_invalid_certs(insecure);
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca).map_err(|e| ClientError::CaFile {
                path: ca.clone(),
                source: Box::new(e),
            })?;
            let certificate =
                reqwest::Certificate::from_pem(&pem).map_err(|e| ClientError::CaFile {
                    path: ca.clone(),
                    source: Box::new(e),
                })?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder.build().map_err(ClientError::HttpClient)?;
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }

    /// `https://host` or `http://host` for a registry host.
    pub(crate) fn base_url(&self, host: &str) -> String {
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

    /// The absolute URL of `url` (a path below the registry root, or absolute).
    pub(crate) fn absolute_url(&self, host: &str, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", self.base_url(host))
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

    /// Sends a request with auth and retries ([`RetryPolicy`]; a body that
    /// can be sent once is tried once); returns any response that is not a
    /// 401, 429 or 5xx (those are handled here) for the caller to judge.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        request: &Request,
    ) -> Result<reqwest::Response> {
        let policy = match request.body {
            _ if request.single_attempt => RetryPolicy::once(),
            RequestBody::Once(_) => RetryPolicy::once(),
            _ => self.options.retry,
        };
        retry(&policy, &request.action, async || {
            self.send_once(endpoint, request).await
        })
        .await
    }

    /// One attempt, answering an auth challenge once and moving a loopback
    /// registry that does not speak TLS to plain HTTP once.
    async fn send_once(&self, endpoint: &Endpoint, request: &Request) -> Result<reqwest::Response> {
        let host = endpoint.host();
        let scope = endpoint.scopes(&request.access).join(" ");
        let mut authenticated = false;
        loop {
            let url = self.absolute_url(host, &request.url);
            let mut builder = self
                .http_for(host)?
                .request(request.method.clone(), &url)
                .headers(request.headers.clone());
            // Credentials go to the registry only, never to a host a
            // Location or Link header names.
            if self.is_registry_url(host, &url)
                && let Some(auth) = self
                    .auth
                    .get(host, &scope)
                    .or_else(|| self.auth.get(host, "*"))
            {
                builder = builder.header(AUTHORIZATION, auth.header_value());
            }
            if let Some(body) = request.body.build(&endpoint.registry)? {
                builder = builder.body(body);
            }
            let response = match builder.send().await {
                Ok(response) => response,
                Err(error) => {
                    if self.may_fall_back_to_http(host, &url) && net::speaks_no_tls(&error) {
                        // Docker's rule for loopback registries: HTTPS first,
                        // then HTTP, but only when the server does not speak
                        // TLS (a certificate error is reported, never hidden).
                        tracing::debug!("{host}: no TLS ({error}); using plain HTTP");
                        self.plain_hosts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(host.to_string(), true);
                        continue;
                    }
                    return Err(ClientError::Unreachable {
                        registry: endpoint.registry.clone(),
                        cause: net::classify(&error),
                        source: Box::new(error),
                    });
                }
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                if authenticated {
                    return Err(ClientError::Unauthorized {
                        registry: endpoint.registry.clone(),
                    });
                }
                authenticated = true;
                self.auth.invalidate(host, &scope);
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                self.authenticate(endpoint, host, &scope, challenge).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(response_error(endpoint, request, response).await);
            }
            return Ok(response);
        }
    }

    fn may_fall_back_to_http(&self, host: &str, url: &str) -> bool {
        is_loopback(host) && url.starts_with("https://") && !self.host_settings(host).0
    }

    /// True when `url` is on the registry's own host (and port).
    fn is_registry_url(&self, host: &str, url: &str) -> bool {
        let (Ok(url), Ok(registry)) = (
            reqwest::Url::parse(url),
            reqwest::Url::parse(&self.base_url(host)),
        ) else {
            return false;
        };
        url.host_str() == registry.host_str() && url.port() == registry.port()
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

/// Error bodies longer than this are not read further.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The error a response stands for: `Unauthorized` for 401, `NotFound`
/// naming what is missing for a 404 (the registry's code tells a missing
/// repository from a missing tag, manifest or blob), else `Status` with the
/// registry's error envelope.
pub(crate) async fn response_error(
    endpoint: &Endpoint,
    request: &Request,
    response: reqwest::Response,
) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
    let mut text = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = MAX_ERROR_BODY - text.len();
        text.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if text.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let body = RegistryErrorBody::parse(&text);
    if status == 401 {
        return ClientError::Unauthorized {
            registry: endpoint.registry.clone(),
        };
    }
    if status == 404
        && let Some(missing) = missing(endpoint, &request.target, body.as_ref())
    {
        return ClientError::NotFound(missing);
    }
    ClientError::Status {
        registry: endpoint.registry.clone(),
        action: request.action.clone(),
        status,
        body,
        retry_after,
    }
}

/// What a 404 to a request about `target` says is missing.
fn missing(
    endpoint: &Endpoint,
    target: &Target,
    body: Option<&RegistryErrorBody>,
) -> Option<Missing> {
    let registry = endpoint.registry.clone();
    let repository = endpoint.repository.clone();
    if body.is_some_and(|b| b.code.is(&ErrorCode::NameUnknown)) {
        return Some(Missing::Repository {
            registry,
            repository,
        });
    }
    match target {
        Target::Manifest(reference) if ferry_spec::digest::parse_digest(reference).is_ok() => {
            Some(Missing::Manifest {
                registry,
                repository,
                digest: reference.clone(),
            })
        }
        Target::Manifest(tag) => Some(Missing::Tag {
            registry,
            repository,
            tag: tag.clone(),
        }),
        Target::Blob(digest) => Some(Missing::Blob {
            registry,
            repository,
            digest: digest.to_string(),
        }),
        Target::Other => None,
    }
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
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={}", url_encode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            registry: "r.io".into(),
            repository: "org/m".into(),
        }
    }

    #[test]
    fn a_404_names_the_repository_the_tag_the_manifest_or_the_blob() {
        let name_unknown = RegistryErrorBody::parse(br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#);
        let manifest_unknown =
            RegistryErrorBody::parse(br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#);
        let digest = ferry_spec::digest::sha256_digest(b"x");
        let tag = Target::Manifest("v1".into());
        assert!(matches!(
            missing(&endpoint(), &tag, name_unknown.as_ref()),
            Some(Missing::Repository { .. })
        ));
        assert!(matches!(
            missing(&endpoint(), &tag, manifest_unknown.as_ref()),
            Some(Missing::Tag { tag, .. }) if tag == "v1"
        ));
        let by_digest = Target::Manifest(digest.to_string());
        assert!(matches!(
            missing(&endpoint(), &by_digest, None),
            Some(Missing::Manifest { .. })
        ));
        assert!(matches!(
            missing(&endpoint(), &Target::Blob(digest), None),
            Some(Missing::Blob { .. })
        ));
        assert_eq!(missing(&endpoint(), &Target::Other, None), None);
    }

    #[test]
    fn credentials_stay_on_the_registry_host() {
        let client = Client::new(ClientOptions::default());
        assert!(client.is_registry_url("r.io", "https://r.io/v2/m/blobs/uploads/1"));
        assert!(!client.is_registry_url("r.io", "https://evil.example/v2/"));
        assert!(!client.is_registry_url("r.io:5000", "https://r.io:5001/v2/"));
        assert!(client.is_registry_url("r.io:5000", "https://r.io:5000/v2/"));
    }
}
