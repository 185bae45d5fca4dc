//! The HTTP client: one place for URLs, TLS, auth, retries and error envelopes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::response_error;
use crate::auth::{AuthCache, parse_challenge};
use crate::credentials::{Credential, DockerConfig};
use crate::error::{ClientError, Result};
use crate::hosts::{RegistriesConfig, api_host, is_loopback};
use crate::net;
use crate::origin::{self, resolve_named, same_origin};
use crate::progress::TransferProgress;
use crate::request::{Request, RequestBody};
use crate::retry::{RetryPolicy, retry};

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
    /// How large blobs are split across connections.
    pub ranges: RangeOptions,
}

/// How a large blob is downloaded over several connections at once, each
/// asking for its own byte ranges (as download accelerators do: one TCP
/// connection across a WAN or through a load balancer carries far less
/// than the link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeOptions {
    /// Connections one blob may use at once (1: one stream per blob).
    pub connections_per_blob: usize,
    /// Blob downloads in flight at once across everything the client does
    /// (each range or whole-blob `GET` holds one while its body streams).
    pub max_connections: usize,
    /// Blobs smaller than this come over one connection.
    pub min_blob: u64,
    /// The smallest range asked for at once.
    pub min_piece: u64,
    /// A large blob's first range is a probe: when the client received this
    /// many bytes per second or more meanwhile (this blob and every other
    /// it downloads), the rest comes over one connection (more would only
    /// compete for the CPU and the disk, as on a LAN); slower, the rest is
    /// split across connections.
    pub split_below: u64,
    /// The range size for readers that need the bytes in order (extraction,
    /// copies): each such blob holds up to `connections_per_blob` of them in
    /// memory.
    pub stream_piece: u64,
}

impl Default for RangeOptions {
    fn default() -> Self {
        RangeOptions {
            connections_per_blob: 8,
            max_connections: 16,
            min_blob: 64 << 20,
            min_piece: 4 << 20,
            stream_piece: 2 << 20,
            split_below: 100_000_000,
        }
    }
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
            ranges: RangeOptions::default(),
        }
    }
}

/// A blob-body connection slot, given back when dropped.
pub(crate) struct ConnectionSlot<'a> {
    permit: Option<OwnedSemaphorePermit>,
    client: &'a Client,
    progress: &'a dyn TransferProgress,
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.progress.connections(self.client.connections_in_use());
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

    pub(crate) fn scopes(&self, access: &Access) -> Vec<String> {
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

/// A client for any number of registries.
pub struct Client {
    options: ClientOptions,
    /// HTTP clients by host, and whether each request gets its own
    /// HTTP/1.1 connection (ranged blob downloads: HTTP/2 would carry every
    /// range over one TCP connection, which is what they avoid).
    http: Mutex<HashMap<(String, bool), reqwest::Client>>,
    pub(crate) auth: AuthCache,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// Loopback hosts that turned out to speak plain HTTP.
    plain_hosts: Mutex<HashMap<String, bool>>,
    /// Blob-body connections: [`RangeOptions::max_connections`] permits.
    connections: Arc<Semaphore>,
    /// Pieces held in memory by in-order readers ([`RangeOptions::max_connections`]
    /// permits, granted first come first served): memory stays bounded
    /// however many blobs are read at once.
    buffers: Arc<Semaphore>,
    /// Blob bytes received so far, by every download of this client.
    received: AtomicU64,
}

impl Client {
    /// A client with these options.
    pub fn new(options: ClientOptions) -> Client {
        let connections = Arc::new(Semaphore::new(options.ranges.max_connections.max(1)));
        Client {
            buffers: Arc::new(Semaphore::new(options.ranges.max_connections.max(1))),
            connections,
            received: AtomicU64::new(0),
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

    /// Waits for a blob-body connection slot (see
    /// [`RangeOptions::max_connections`]); `progress` hears how many are
    /// in use.
    pub(crate) async fn connection<'a>(
        &'a self,
        progress: &'a dyn TransferProgress,
    ) -> ConnectionSlot<'a> {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.connections.clone().acquire_owned().await.ok();
        progress.connections(self.connections_in_use());
        ConnectionSlot {
            permit,
            client: self,
            progress,
        }
    }

    /// Leave to hold one piece in memory for an in-order reader, until the
    /// permit is dropped.
    pub(crate) async fn buffer_permit(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed, so acquiring cannot fail.
        self.buffers.clone().acquire_owned().await.ok()
    }

    /// Counts blob bytes received (what a range probe measures).
    pub(crate) fn count_received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Blob bytes received so far by every download of this client.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn connections_in_use(&self) -> usize {
        self.options
            .ranges
            .max_connections
            .max(1)
            .saturating_sub(self.connections.available_permits())
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

    pub(crate) fn http_for(&self, host: &str, http1_only: bool) -> Result<reqwest::Client> {
        let mut clients = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let key = (host.to_string(), http1_only);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let (_, insecure, ca) = self.host_settings(host);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.options.connect_timeout)
            .read_timeout(self.options.idle_timeout)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(net::SystemResolver)
            .redirect(origin::redirect_policy())
            .danger_accept_invalid_certs(insecure);
        if http1_only {
            builder = builder.http1_only();
        }
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
        clients.insert(key, client.clone());
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

    /// A URL the registry named in a header of the response from
    /// `answered` (an upload `Location`, a `Link` page), made absolute.
    /// Requests to it carry credentials only when it is on the registry's
    /// own origin; one that leaves HTTPS for plain HTTP is refused.
    pub(crate) fn named_url(
        &self,
        endpoint: &Endpoint,
        answered: &reqwest::Url,
        header: &str,
        named: &str,
    ) -> Result<reqwest::Url> {
        resolve_named(answered, named).map_err(|error| ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: format!("{header} header: {error}"),
        })
    }

    /// True when `url` is the registry's own origin (scheme, host, port).
    pub(crate) fn on_registry_origin(&self, host: &str, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.base_url(host)).is_ok_and(|base| same_origin(&base, url))
    }

    pub(crate) fn credential(&self, registry: &str) -> Result<Option<Credential>> {
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
            let parsed = reqwest::Url::parse(&url).map_err(|e| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("URL {url:?}: {e}"),
            })?;
            let on_registry = self.on_registry_origin(host, &parsed);
            let mut builder = self
                .http_for(host, request.own_connection)?
                .request(request.method.clone(), parsed.clone())
                .headers(request.headers.clone());
            // Credentials go to the registry's origin only, never to
            // another host, port or scheme a Location or Link names.
            if on_registry
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
                    if on_registry
                        && self.may_fall_back_to_http(host, &url)
                        && net::speaks_no_tls(&error)
                    {
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
                // Judged by who answered: a redirect may have moved the
                // request to another origin, whose challenge must not get
                // the registry's credentials either.
                let answered = response.url();
                if !on_registry || !self.on_registry_origin(host, answered) {
                    // Answering would send credentials (or fetch a token
                    // from a realm it names) for a host they are not for.
                    return Err(ClientError::Invalid {
                        registry: endpoint.registry.clone(),
                        reason: format!(
                            "{} (named by the registry) asks for credentials; they are sent to {} only",
                            answered.origin().ascii_serialization(),
                            endpoint.registry
                        ),
                    });
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_on_the_registry_origin() {
        let client = Client::new(ClientOptions::default());
        let on = |host: &str, url: &str| {
            client.on_registry_origin(host, &reqwest::Url::parse(url).unwrap())
        };
        assert!(on("r.io", "https://r.io/v2/m/blobs/uploads/1"));
        assert!(on("r.io", "https://r.io:443/v2/"));
        assert!(!on("r.io", "https://evil.example/v2/"));
        assert!(
            !on("r.io", "http://r.io/v2/"),
            "plain HTTP is another origin"
        );
        assert!(!on("r.io:5000", "https://r.io:5001/v2/"));
        assert!(on("r.io:5000", "https://r.io:5000/v2/"));
    }
}
