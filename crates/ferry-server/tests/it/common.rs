//! Shared helpers: an in-process server on a free port (over either storage
//! backend), an HTTP client bound to it, digests, raw-socket requests and
//! blob/manifest shortcuts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_server::storage::Storage;
use ferry_server::storage::fs::FsStorage;
use ferry_server::storage::memory::MemoryStorage;
use ferry_server::{Handle, ServerConfig, ServerError};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The digest algorithms every conformance test runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Sha256,
    Sha512,
}

pub const ALGS: [Alg; 2] = [Alg::Sha256, Alg::Sha512];

impl Alg {
    pub fn digest(self, bytes: &[u8]) -> String {
        match self {
            Alg::Sha256 => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            Alg::Sha512 => format!("sha512:{}", hex::encode(Sha512::digest(bytes))),
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    Alg::Sha256.digest(bytes)
}

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub use ferry_testkit::{command_works, paths, require};

/// The storage backends the route and gc tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `FsStorage`, served by `ferry_server::serve` as `ferry serve` does.
    Fs,
    /// `MemoryStorage`, served by `ferry_server::serve_storage`.
    Memory,
}

/// Defines `fs::NAME` and `memory::NAME` tests, each running the
/// `async fn NAME(backend: Backend)` of the calling module.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(crate::common::Backend::Fs).await
                }
            )+
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(crate::common::Backend::Memory).await
                }
            )+
        }
    };
}
pub(crate) use on_both_backends;

/// Where a test server keeps its content.
enum Store {
    /// A directory; the `FsStorage` here is a second handle on it, opened
    /// beside the server's as `ferry serve gc` would.
    Fs {
        root: PathBuf,
        storage: Arc<FsStorage>,
    },
    Memory(Arc<MemoryStorage>),
}

/// A server running in-process on 127.0.0.1 with a free port.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    store: Store,
    handle: Handle<SocketAddr>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    _dir: Option<TempDir>,
}

impl Server {
    /// A server over a fresh temporary root with default settings.
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    /// A server with default settings over a fresh store of `backend`.
    pub async fn start_on(backend: Backend) -> Server {
        match backend {
            Backend::Fs => Server::start().await,
            Backend::Memory => {
                let storage = Arc::new(MemoryStorage::new());
                let mut config = ServerConfig::new(PathBuf::from("/nonexistent"));
                config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
                let handle = Handle::new();
                let task = tokio::spawn(ferry_server::serve_storage(
                    storage.clone(),
                    config,
                    handle.clone(),
                ));
                Server::connect(handle, task, Store::Memory(storage)).await
            }
        }
    }

    /// A server over a fresh temporary root, `tweak` adjusting the config.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut server = Server::start_at(&root, tweak).await;
        server._dir = Some(dir);
        server
    }

    /// A server over `root` (which the caller owns).
    pub async fn start_at(root: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
        let mut config = ServerConfig::new(root.to_path_buf());
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        tweak(&mut config);
        let handle = Handle::new();
        let task = tokio::spawn(ferry_server::serve(config, handle.clone()));
        let store = Store::Fs {
            root: root.to_path_buf(),
            storage: Arc::new(FsStorage::open(root).unwrap()),
        };
        Server::connect(handle, task, store).await
    }

    async fn connect(
        handle: Handle<SocketAddr>,
        task: JoinHandle<Result<(), ServerError>>,
        store: Store,
    ) -> Server {
        let addr = tokio::time::timeout(Duration::from_secs(10), handle.listening())
            .await
            .expect("server did not start listening within 10 s")
            .expect("server failed to start");
        Server {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            store,
            handle,
            task: Some(task),
            _dir: None,
        }
    }

    /// The storage root of a filesystem server.
    pub fn root(&self) -> &Path {
        match &self.store {
            Store::Fs { root, .. } => root,
            Store::Memory(_) => panic!("a memory server has no root"),
        }
    }

    /// The server's content, through the storage boundary.
    pub fn storage(&self) -> &dyn Storage {
        match &self.store {
            Store::Fs { storage, .. } => &**storage,
            Store::Memory(storage) => &**storage,
        }
    }

    /// Upload sessions still open.
    pub fn open_sessions(&self) -> usize {
        match &self.store {
            // One directory per session.
            Store::Fs { root, .. } => std::fs::read_dir(root.join("uploads"))
                .map(|entries| entries.count())
                .unwrap_or(0),
            Store::Memory(storage) => storage.session_count(),
        }
    }

    /// Connections the server has open.
    pub fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    /// Graceful shutdown; waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server did not stop within 15 s")
                .expect("server task panicked");
            result.expect("server ended with an error");
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    pub async fn head(&self, path: &str) -> Response {
        self.request(Method::HEAD, path).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.unwrap()
    }

    /// `POST /v2/<repo>/blobs/uploads/`: a new session; returns its Location.
    pub async fn start_upload(&self, repo: &str) -> String {
        let response = self
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "upload start");
        location(&response)
    }

    /// Monolithic `POST ?digest=`; asserts 201.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8], alg: Alg) -> String {
        let digest = alg.digest(bytes);
        let response = self
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "push blob {digest}");
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// PUT that must succeed with 201; returns the response.
    pub async fn put_manifest_ok(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        let response = self.put_manifest(repo, reference, media_type, bytes).await;
        let status = response.status();
        if status != StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            panic!("manifest PUT {repo}:{reference} gave {status}: {body}");
        }
        response
    }

    /// Pushes a config and layer with `alg` and returns an image manifest
    /// (bytes, digest with `alg`) referencing them. Not yet pushed.
    pub async fn image(&self, repo: &str, alg: Alg, seed: u64) -> (Vec<u8>, String) {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "author": format!("seed {seed}"),
        }))
        .unwrap();
        let layer = random_bytes(300, seed);
        let config_digest = self.push_blob(repo, &config, alg).await;
        let layer_digest = self.push_blob(repo, &layer, alg).await;
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": LAYER, "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let digest = alg.digest(&manifest);
        (manifest, digest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A response header as a string ("" when absent).
pub fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The Location header, asserting it is present.
pub fn location(response: &Response) -> String {
    let location = header(response, "location");
    assert!(!location.is_empty(), "no Location on {}", response.status());
    location
}

/// The first error code of an error envelope; for a 4xx response it must be
/// one of the spec's codes.
pub async fn error_code(response: Response) -> String {
    let client_error = response.status().is_client_error();
    let body: Value = response.json().await.expect("error body is JSON");
    let code = &body["errors"][0]["code"];
    if client_error {
        assert!(
            serde_json::from_value::<oci_spec::distribution::ErrorCode>(code.clone()).is_ok(),
            "{code} is not an error code of the distribution spec"
        );
    }
    code.as_str()
        .expect("error envelope has errors[0].code")
        .to_string()
}

/// Asserts a status and an error code.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status, "{}", response.url());
    assert_eq!(error_code(response).await, code);
}

/// The `0-N` Range header as N+1 (bytes received), asserting the format.
pub fn range_received(response: &Response) -> u64 {
    let range = header(response, "range");
    let end = range
        .strip_prefix("0-")
        .unwrap_or_else(|| panic!("Range {range:?} lacks the 0- prefix"));
    let end: i64 = end.parse().expect("Range end is an integer");
    (end + 1) as u64
}

/// A raw HTTP/1.1 exchange over a fresh connection (`Connection: close`):
/// for paths an HTTP client would normalise. Returns status, head and body.
pub async fn raw_request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("raw response within 10 s")
        .unwrap();
    RawResponse::parse(&raw)
}

pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn parse(raw: &[u8]) -> RawResponse {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        RawResponse {
            status,
            head,
            body: raw[split + 4..].to_vec(),
        }
    }

    /// The error code, when the body is an error envelope.
    pub fn code(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        // The body may be chunk-encoded; find the JSON object in it.
        let start = text.find('{')?;
        let end = text.rfind('}')?;
        let value: Value = serde_json::from_str(&text[start..=end]).ok()?;
        value["errors"][0]["code"].as_str().map(str::to_string)
    }
}
