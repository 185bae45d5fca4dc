//! An in-process registry that can be told to misbehave.
//!
//! It speaks enough of the distribution API for ferry's client (manifests,
//! blobs with ranges, chunked and monolithic uploads, cross-repository
//! mounts, Basic and Bearer auth with a token endpoint) and records every
//! request it sees. Tests switch faults on through [`Hostile::with`].
//!
//! Built on hyper directly so a fault can do what a well-behaved framework
//! would not: close a connection mid-body, send a body shorter than its
//! `Content-Length`, stall, or drop a connection without answering.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use ferry_spec::Reference;

/// Errors a handler returns to make hyper drop the connection unanswered.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Raw layers in the manifests this registry is seeded with.
pub const WEIGHT_RAW: &str = "application/vnd.cncf.model.weight.v1.raw";

/// One request as the registry saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query (percent-encoded).
    pub query: String,
    /// Every header.
    pub headers: HeaderMap,
}

impl Seen {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Decoded values of a query parameter, in order.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who may talk to the registry.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Anyone.
    #[default]
    Anonymous,
    /// `Authorization: Basic` with these credentials.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from `/token` on this server.
    Bearer {
        /// The `service` the challenge names.
        service: String,
    },
}

/// A scripted answer for the next requests whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// Matched against the request path.
    pub path_contains: String,
    /// The status to answer.
    pub status: u16,
    /// `Retry-After` to send.
    pub retry_after: Option<String>,
    /// How many requests get this answer.
    pub times: usize,
}

/// Misbehaviour, switched on per test. Maps are keyed by blob digest; the
/// `_once` faults apply to the first request for that blob only.
#[derive(Debug, Default)]
pub struct Faults {
    /// Serve content that differs from the digest (same length).
    pub wrong_content: HashSet<String>,
    /// Serve the content followed by this many extra bytes.
    pub extra_bytes: HashMap<String, usize>,
    /// Announce the full `Content-Length`, send this many bytes, close.
    pub truncate_once: HashMap<String, usize>,
    /// Chunked encoding: send this many bytes, then drop the connection.
    pub drop_chunked_once: HashMap<String, usize>,
    /// Send this many bytes, then nothing more (the connection stays open).
    pub stall_once: HashMap<String, usize>,
    /// Answer `Range` requests with the whole blob and 200.
    pub ignore_range: bool,
    /// Answer `Range` requests with 206 but the whole blob from byte 0.
    pub lie_about_range: bool,
    /// Answer `Range` requests with 416.
    pub refuse_range: bool,
    /// Blob `GET`s are redirected (307) to this base URL + the request path.
    pub redirect_blobs_to: Option<String>,
    /// The next `PATCH` keeps this many bytes, then the connection drops.
    pub drop_patch_after: Option<usize>,
    /// This many `PATCH`es are dropped before a single byte is kept.
    pub drop_patches_unread: usize,
    /// Every answer for this blob (full or ranged) stops after this many bytes.
    pub cut_every: HashMap<String, usize>,
    /// Never mount across repositories (202 instead of 201).
    pub refuse_mount: bool,
    /// Every manifest is this many bytes; `true`: without `Content-Length`.
    pub huge_manifest: Option<(usize, bool)>,
    /// Scripted status answers, checked before anything else.
    pub fail: Vec<Scripted>,
    /// An endless-looking body for requests whose path contains its
    /// `path_contains`, checked first of all (the token endpoint too).
    pub huge_body: Option<HugeBody>,
    /// Whole blobs are sent without `Content-Length` (chunked).
    pub chunked_blobs: bool,
    /// Upload sessions are sent to this base URL (another server) instead
    /// of this one.
    pub upload_location_base: Option<String>,
    /// The referrers API answers pages of this many referrers, each with a
    /// `Link` to a next page, without end.
    pub endless_referrers: Option<usize>,
    /// Ranged answers for this blob cover at most this many bytes (an
    /// honest, shorter `Content-Range`).
    pub short_ranges: HashMap<String, usize>,
    /// Ranged answers for this blob announce a `Content-Range` one byte
    /// later than asked (and send those bytes).
    pub shifted_ranges: HashSet<String>,
    /// The first ranged answer for this blob that holds this offset has
    /// that byte flipped.
    pub corrupt_range_once: HashMap<String, usize>,
    /// The first ranged answer for this blob that does not start at byte 0
    /// sends this many bytes, then the connection drops.
    pub drop_range_once: HashMap<String, usize>,
    /// Every blob answer is sent at about this many bytes per second.
    pub throttle: Option<u64>,
}

/// A body of `size` bytes: `prefix`, then filler, streamed in 64 KiB
/// frames as the client reads; [`Hostile::huge_sent`] counts what left.
#[derive(Debug, Clone)]
pub struct HugeBody {
    /// Matched against the request path.
    pub path_contains: String,
    /// The status to answer.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body's first bytes.
    pub prefix: Bytes,
    /// Total bytes.
    pub size: u64,
    /// Send `Content-Length` (else chunked).
    pub with_length: bool,
}

/// Everything the registry holds and knows.
#[derive(Debug)]
pub struct Inner {
    /// Blob content by digest.
    pub blobs: HashMap<String, Bytes>,
    /// (repository, digest) pairs: which repository holds which blob.
    pub links: HashSet<(String, String)>,
    /// (repository, tag or digest) -> (bytes, media type).
    pub manifests: HashMap<(String, String), (Bytes, String)>,
    /// Upload id -> (repository, bytes so far).
    pub uploads: HashMap<String, (String, Vec<u8>)>,
    /// Every request, in order.
    pub seen: Vec<Seen>,
    /// What goes wrong.
    pub faults: Faults,
    /// Who may come in.
    pub auth: Auth,
    /// Tokens that are currently valid.
    pub tokens: HashSet<String>,
    /// Bytes of [`Faults::huge_body`] bodies handed to the connection.
    pub huge_sent: Arc<AtomicU64>,
    /// Blob bytes handed to connections, by digest (counted as the client
    /// reads them).
    pub served: HashMap<String, Arc<AtomicU64>>,
    issued: usize,
    addr: SocketAddr,
}

type Shared = Arc<Mutex<Inner>>;

/// A running hostile registry; stops when dropped.
pub struct Hostile {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An artifact seeded into the registry.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The manifest digest.
    pub manifest: String,
    /// (digest, content) of each layer, in manifest order.
    pub layers: Vec<(String, Bytes)>,
}

impl Hostile {
    /// Starts a registry on `ip` (a loopback address), any free port.
    pub async fn start(ip: &str) -> Hostile {
        let listener = TcpListener::bind((ip, 0))
            .await
            .expect("bind the hostile registry");
        let addr = listener.local_addr().expect("local address");
        let state: Shared = Arc::new(Mutex::new(Inner {
            blobs: HashMap::new(),
            links: HashSet::new(),
            manifests: HashMap::new(),
            uploads: HashMap::new(),
            seen: Vec::new(),
            faults: Faults::default(),
            auth: Auth::default(),
            tokens: HashSet::new(),
            huge_sent: Arc::new(AtomicU64::new(0)),
            served: HashMap::new(),
            issued: 0,
            addr,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the server aborts them.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| handle(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Hostile { addr, state, task }
    }

    /// Reads or changes the registry's state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `ip:port`, the registry as a reference names it.
    pub fn registry(&self) -> String {
        self.addr.to_string()
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A reference to `name` (`repo:tag`) on this registry.
    pub fn reference(&self, name: &str) -> Reference {
        format!("{}/{name}", self.registry())
            .parse()
            .expect("a valid reference")
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// Requests with this method whose path contains `part`.
    pub fn requests(&self, method: &str, part: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.contains(part))
            .collect()
    }

    /// Bytes of this blob handed to connections so far.
    pub fn served(&self, digest: &str) -> u64 {
        self.with(|s| s.served.get(digest).map_or(0, |c| c.load(Ordering::SeqCst)))
    }

    /// Forgets the bytes served.
    pub fn clear_served(&self) {
        self.with(|s| s.served.clear());
    }

    /// Bytes of huge bodies sent so far.
    pub fn huge_sent(&self) -> u64 {
        self.with(|s| s.huge_sent.load(Ordering::SeqCst))
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.with(|s| s.seen.clear());
    }

    /// Stores a blob in `repo`; returns its digest.
    pub fn put_blob(&self, repo: &str, content: impl Into<Bytes>) -> String {
        let content = content.into();
        let digest = sha256(&content);
        self.with(|s| {
            s.blobs.insert(digest.clone(), content);
            s.links.insert((repo.to_string(), digest.clone()));
        });
        digest
    }

    /// Opens upload sessions `upload-1` to `upload-{count}` in `repo`, as
    /// another server handing out sessions here would have.
    pub fn open_uploads(&self, repo: &str, count: usize) {
        self.with(|s| {
            for i in 1..=count {
                s.uploads
                    .insert(format!("upload-{i}"), (repo.to_string(), Vec::new()));
            }
        });
    }

    /// Stores a manifest in `repo` under `tag` and its digest.
    pub fn put_manifest(&self, repo: &str, tag: &str, bytes: Bytes, media_type: &str) -> String {
        let digest = sha256(&bytes);
        self.with(|s| {
            for reference in [tag.to_string(), digest.clone()] {
                s.manifests.insert(
                    (repo.to_string(), reference),
                    (bytes.clone(), media_type.to_string()),
                );
            }
        });
        digest
    }

    /// Seeds a ModelPack-style artifact: one raw weight layer per file.
    pub fn seed(&self, repo: &str, tag: &str, files: &[(&str, Vec<u8>)]) -> Seeded {
        let config_bytes = Bytes::from(
            serde_json::to_vec(
                &json!({"descriptor": {"name": tag}, "modelfs": {"type": "layers", "diffIds": []}}),
            )
            .unwrap(),
        );
        let config = self.put_blob(repo, config_bytes.clone());
        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        for (name, content) in files {
            let content = Bytes::from(content.clone());
            let digest = self.put_blob(repo, content.clone());
            descriptors.push(json!({
                "mediaType": WEIGHT_RAW,
                "digest": digest,
                "size": content.len(),
                "annotations": {
                    "org.cncf.model.filepath": name,
                    "org.opencontainers.image.title": name,
                },
            }));
            layers.push((digest, content));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
            "artifactType": ferry_spec::media::ARTIFACT_TYPE_MODEL,
            "config": {
                "mediaType": ferry_spec::media::MEDIA_TYPE_MODEL_CONFIG,
                "digest": config,
                "size": config_bytes.len(),
            },
            "layers": descriptors,
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
        let manifest = self.put_manifest(
            repo,
            tag,
            bytes,
            ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
        );
        Seeded { manifest, layers }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    ferry_spec::digest::sha256_digest(bytes).to_string()
}

/// Deterministic, incompressible-looking bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(&(state >> 16).to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn respond(status: u16, headers: &[(&str, String)], body: Body) -> Response<Body> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, value);
    }
    response.body(body).expect("a valid response")
}

fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = json!({"errors": [{"code": code, "message": message}]}).to_string();
    respond(
        status,
        &[("content-type", "application/json".into())],
        full(body),
    )
}

/// How a cut body ends.
enum End {
    /// The connection is dropped.
    Drop,
    /// Nothing more is sent; the connection stays open.
    Stall,
}

/// `data` in 64 KiB frames, then `end`. The pause before the end lets hyper
/// flush what was sent, so the client really receives all of `data`.
fn cut_body(data: Bytes, end: End) -> Body {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let tail = stream::once(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let End::Stall = end {
            std::future::pending::<()>().await;
        }
        Err::<Frame<Bytes>, BoxError>("connection dropped by the hostile registry".into())
    });
    BodyExt::boxed(StreamBody::new(stream::iter(frames).chain(tail)))
}

/// [`HugeBody`] streamed lazily, counting every frame handed on.
fn huge(spec: &HugeBody, sent: Arc<AtomicU64>) -> Body {
    const FRAME: u64 = 64 * 1024;
    let filler = Bytes::from(vec![b'x'; FRAME as usize]);
    let prefix = spec.prefix.clone();
    let size = spec.size;
    let frames = stream::unfold(0u64, move |offset| {
        let (prefix, filler, sent) = (prefix.clone(), filler.clone(), sent.clone());
        async move {
            if offset >= size {
                return None;
            }
            let frame = if offset == 0 && !prefix.is_empty() {
                prefix
            } else {
                filler.slice(..(size - offset).min(FRAME) as usize)
            };
            sent.fetch_add(frame.len() as u64, Ordering::SeqCst);
            let next = offset + frame.len() as u64;
            Some((Ok::<_, BoxError>(Frame::data(frame)), next))
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}

/// `data` streamed in frames with no `Content-Length` (chunked encoding).
fn chunked(data: Bytes) -> Body {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    BodyExt::boxed(StreamBody::new(stream::iter(frames)))
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

/// What a request needs after the synchronous look at the state.
enum Decision {
    /// The answer is ready.
    Ready(Response<Body>),
    /// An upload step, which reads the body.
    Upload { repo: String, id: String },
    /// A manifest push, which reads the body.
    PutManifest { repo: String, reference: String },
}

async fn handle(state: Shared, request: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let seen = Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        query: request.uri().query().unwrap_or("").to_string(),
        headers: request.headers().clone(),
    };
    let decision = decide(&state, &seen);
    match decision {
        Decision::Ready(response) => Ok(response),
        Decision::Upload { repo, id } => {
            upload(
                &state,
                request.method().clone(),
                &repo,
                &id,
                &seen,
                request.into_body(),
            )
            .await
        }
        Decision::PutManifest { repo, reference } => {
            let media_type = seen.header("content-type").unwrap_or("").to_string();
            let body = request.into_body().collect().await?.to_bytes();
            let digest = sha256(&body);
            let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
            for r in [reference, digest.clone()] {
                inner
                    .manifests
                    .insert((repo.clone(), r), (body.clone(), media_type.clone()));
            }
            Ok(respond(
                201,
                &[
                    ("docker-content-digest", digest.clone()),
                    ("location", format!("/v2/{repo}/manifests/{digest}")),
                ],
                empty(),
            ))
        }
    }
}

fn decide(state: &Shared, seen: &Seen) -> Decision {
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    inner.seen.push(seen.clone());
    let path = seen.path.as_str();
    let method = seen.method.as_str();
    if let Some(spec) = inner
        .faults
        .huge_body
        .clone()
        .filter(|h| path.contains(&h.path_contains))
    {
        let mut headers = vec![("content-type", spec.content_type.clone())];
        if spec.with_length {
            headers.push(("content-length", spec.size.to_string()));
        }
        let body = huge(&spec, inner.huge_sent.clone());
        return Decision::Ready(respond(spec.status, &headers, body));
    }
    if path == "/token" {
        inner.issued += 1;
        let token = format!("tok-{}", inner.issued);
        inner.tokens.insert(token.clone());
        let body = json!({"token": token, "expires_in": 300}).to_string();
        return Decision::Ready(respond(
            200,
            &[("content-type", "application/json".into())],
            full(body),
        ));
    }
    if let Some(scripted) = inner
        .faults
        .fail
        .iter_mut()
        .find(|f| f.times > 0 && path.contains(&f.path_contains))
    {
        scripted.times -= 1;
        let mut headers = Vec::new();
        if let Some(after) = &scripted.retry_after {
            headers.push(("retry-after", after.clone()));
        }
        let status = scripted.status;
        return Decision::Ready(respond(status, &headers, full("scripted failure")));
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Decision::Ready(error(404, "NOT_FOUND", "no such route"));
    };
    let repo_of_request = rest
        .rsplit_once("/blobs/")
        .or_else(|| rest.rsplit_once("/manifests/"))
        .map(|(repo, _)| repo.to_string())
        .unwrap_or_default();
    if let Some(challenge) = check_auth(&inner, seen, &repo_of_request) {
        return Decision::Ready(challenge);
    }
    if rest.is_empty() {
        return Decision::Ready(respond(
            200,
            &[("content-type", "application/json".into())],
            full("{}"),
        ));
    }
    if let Some((repo, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Decision::Upload {
            repo: repo.to_string(),
            id: id.to_string(),
        };
    }
    if let (Some(per_page), Some((repo, subject))) = (
        inner.faults.endless_referrers,
        rest.rsplit_once("/referrers/"),
    ) {
        return Decision::Ready(endless_referrers(repo, subject, seen, per_page));
    }
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        if method == "PUT" {
            return Decision::PutManifest {
                repo: repo.to_string(),
                reference: reference.to_string(),
            };
        }
        return Decision::Ready(manifest(&inner, method, repo, reference));
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        return Decision::Ready(blob(&mut inner, method, repo, digest, seen));
    }
    Decision::Ready(error(404, "NOT_FOUND", "no such route"))
}

/// One page of an endless referrers listing: `per_page` distinct
/// manifests and a `Link` to the next page.
fn endless_referrers(repo: &str, subject: &str, seen: &Seen, per_page: usize) -> Response<Body> {
    let page: usize = seen
        .query_values("page")
        .pop()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let manifests: Vec<serde_json::Value> = (0..per_page)
        .map(|i| {
            json!({
                "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST,
                "digest": sha256(format!("{page}-{i}").as_bytes()),
                "size": 100,
                "artifactType": "application/vnd.example.sig",
            })
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX,
        "manifests": manifests,
    });
    respond(
        200,
        &[
            (
                "content-type",
                ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX.to_string(),
            ),
            (
                "link",
                format!(
                    "</v2/{repo}/referrers/{subject}?page={}>; rel=\"next\"",
                    page + 1
                ),
            ),
        ],
        full(index.to_string()),
    )
}

fn check_auth(inner: &Inner, seen: &Seen, repo: &str) -> Option<Response<Body>> {
    let given = seen.header("authorization").unwrap_or("");
    match &inner.auth {
        Auth::Anonymous => None,
        Auth::Basic { user, password } => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            (given != expected).then(|| {
                let mut response = error(401, "UNAUTHORIZED", "authentication required");
                response.headers_mut().insert(
                    "www-authenticate",
                    "Basic realm=\"hostile\"".parse().unwrap(),
                );
                response
            })
        }
        Auth::Bearer { service } => {
            let valid = given
                .strip_prefix("Bearer ")
                .is_some_and(|t| inner.tokens.contains(t));
            (!valid).then(|| {
                let mut response = error(401, "UNAUTHORIZED", "authentication required");
                let challenge = format!(
                    "Bearer realm=\"http://{}/token\",service=\"{service}\",scope=\"repository:{repo}:pull\"",
                    inner.addr
                );
                response
                    .headers_mut()
                    .insert("www-authenticate", challenge.parse().unwrap());
                response
            })
        }
    }
}

fn manifest(inner: &Inner, method: &str, repo: &str, reference: &str) -> Response<Body> {
    if let Some((size, chunked_body)) = inner.faults.huge_manifest {
        let mut text = String::from("{\"schemaVersion\":2,\"annotations\":{\"padding\":\"");
        let tail = "\"}}";
        text.push_str(&"x".repeat(size.saturating_sub(text.len() + tail.len())));
        text.push_str(tail);
        let bytes = Bytes::from(text);
        let content_type = (
            "content-type",
            ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST.to_string(),
        );
        return if chunked_body {
            respond(200, &[content_type], chunked(bytes))
        } else {
            respond(200, &[content_type], full(bytes))
        };
    }
    let Some((bytes, media_type)) = inner
        .manifests
        .get(&(repo.to_string(), reference.to_string()))
    else {
        // As distribution answers: the repository, or what is not in it.
        if !inner.manifests.keys().any(|(r, _)| r == repo) {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        }
        return error(404, "MANIFEST_UNKNOWN", "manifest unknown");
    };
    let headers = [
        ("content-type", media_type.clone()),
        ("docker-content-digest", sha256(bytes)),
    ];
    if method == "HEAD" {
        let mut headers = headers.to_vec();
        headers.push(("content-length", bytes.len().to_string()));
        return respond(200, &headers, empty());
    }
    respond(200, &headers, full(bytes.clone()))
}

fn blob(inner: &mut Inner, method: &str, repo: &str, digest: &str, seen: &Seen) -> Response<Body> {
    let linked = inner
        .links
        .contains(&(repo.to_string(), digest.to_string()));
    let Some(content) = inner.blobs.get(digest).cloned().filter(|_| linked) else {
        return error(404, "BLOB_UNKNOWN", "blob unknown");
    };
    let size = content.len();
    if method == "HEAD" {
        return respond(
            200,
            &[
                ("content-length", size.to_string()),
                ("docker-content-digest", digest.to_string()),
            ],
            empty(),
        );
    }
    let faults = &inner.faults;
    if let Some(base) = &faults.redirect_blobs_to {
        let target = format!("{base}{}?signed=yes", seen.path);
        return respond(307, &[("location", target)], empty());
    }
    let mut content = content.to_vec();
    if faults.wrong_content.contains(digest) {
        for b in content.iter_mut().take(16) {
            *b ^= 0xff;
        }
    }
    if let Some(extra) = faults.extra_bytes.get(digest) {
        content.extend(std::iter::repeat_n(b'!', *extra));
    }
    let content = Bytes::from(content);
    let counter = inner.served.entry(digest.to_string()).or_default().clone();
    let faults = &mut inner.faults;
    let throttle = faults.throttle;
    let counted = |data: Bytes| counted_body(data, counter.clone(), throttle);
    let range = seen.header("range").and_then(parse_range);
    let base = [("docker-content-digest", digest.to_string())];
    if let Some((start, last)) = range.filter(|_| !faults.ignore_range) {
        let end = last.map_or(content.len(), |l| (l + 1).min(content.len()));
        if last.is_some() && !faults.lie_about_range && !faults.refuse_range && start < end {
            return ranged(faults, digest, &content, start, end, &base, counted);
        }
        if faults.refuse_range {
            return error(416, "RANGE_INVALID", "ranges are not served here");
        }
        if faults.lie_about_range {
            let mut headers = base.to_vec();
            headers.push((
                "content-range",
                format!("bytes 0-{}/{size}", size.saturating_sub(1)),
            ));
            return respond(206, &headers, full(content));
        }
        if start >= content.len() {
            return error(416, "RANGE_INVALID", "range not satisfiable");
        }
        let mut headers = base.to_vec();
        headers.push((
            "content-range",
            format!("bytes {start}-{}/{}", content.len() - 1, content.len()),
        ));
        let rest = content.slice(start..);
        if let Some(cut) = faults.cut_every.get(digest).filter(|c| **c < rest.len()) {
            headers.push(("content-length", rest.len().to_string()));
            return respond(206, &headers, cut_body(rest.slice(..*cut), End::Drop));
        }
        return respond(206, &headers, counted(rest));
    }
    if let Some(cut) = faults.cut_every.get(digest).filter(|c| **c < content.len()) {
        let mut headers = base.to_vec();
        headers.push(("content-length", content.len().to_string()));
        return respond(200, &headers, cut_body(content.slice(..*cut), End::Drop));
    }
    if let Some(sent) = faults.truncate_once.remove(digest) {
        let mut headers = base.to_vec();
        headers.push(("content-length", content.len().to_string()));
        return respond(200, &headers, cut_body(content.slice(..sent), End::Drop));
    }
    if let Some(sent) = faults.drop_chunked_once.remove(digest) {
        return respond(200, &base, cut_body(content.slice(..sent), End::Drop));
    }
    if let Some(sent) = faults.stall_once.remove(digest) {
        let mut headers = base.to_vec();
        headers.push(("content-length", content.len().to_string()));
        return respond(200, &headers, cut_body(content.slice(..sent), End::Stall));
    }
    if faults.chunked_blobs {
        return respond(200, &base, chunked(content));
    }
    let mut headers = base.to_vec();
    headers.push(("content-length", content.len().to_string()));
    respond(200, &headers, counted(content))
}

/// `bytes=START-` or `bytes=START-LAST` as `(START, Some(LAST))`.
fn parse_range(value: &str) -> Option<(usize, Option<usize>)> {
    let (start, last) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start = start.parse().ok()?;
    let last = match last {
        "" => None,
        last => Some(last.parse().ok()?),
    };
    Some((start, last))
}

/// A 206 for bytes `start..end`, with the range faults applied.
fn ranged(
    faults: &mut Faults,
    digest: &str,
    content: &Bytes,
    start: usize,
    mut end: usize,
    base: &[(&str, String)],
    counted: impl Fn(Bytes) -> Body,
) -> Response<Body> {
    let size = content.len();
    if let Some(most) = faults.short_ranges.get(digest) {
        end = end.min(start + most.max(&1));
    }
    let (first, mut data) = if faults.shifted_ranges.contains(digest) && end < size {
        (start + 1, content.slice(start + 1..end + 1).to_vec())
    } else {
        (start, content.slice(start..end).to_vec())
    };
    if let Some(offset) = faults.corrupt_range_once.get(digest).copied()
        && (first..first + data.len()).contains(&offset)
    {
        faults.corrupt_range_once.remove(digest);
        data[offset - first] ^= 0xff;
    }
    let mut headers = base.to_vec();
    headers.push((
        "content-range",
        format!("bytes {first}-{}/{size}", first + data.len() - 1),
    ));
    headers.push(("content-length", data.len().to_string()));
    if start > 0
        && let Some(sent) = faults.drop_range_once.remove(digest)
    {
        let sent = sent.min(data.len());
        return respond(
            206,
            &headers,
            cut_body(Bytes::from(data).slice(..sent), End::Drop),
        );
    }
    respond(206, &headers, counted(Bytes::from(data)))
}

/// `data` in 64 KiB frames, counted into `served` as the connection takes
/// them, at about `throttle` bytes per second when set.
fn counted_body(data: Bytes, served: Arc<AtomicU64>, throttle: Option<u64>) -> Body {
    const FRAME: usize = 64 * 1024;
    let frames = stream::unfold(0usize, move |offset| {
        let (data, served) = (data.clone(), served.clone());
        async move {
            if offset >= data.len() {
                return None;
            }
            let frame = data.slice(offset..(offset + FRAME).min(data.len()));
            if let Some(rate) = throttle {
                let micros = frame.len() as u64 * 1_000_000 / rate.max(1);
                tokio::time::sleep(Duration::from_micros(micros)).await;
            }
            served.fetch_add(frame.len() as u64, Ordering::SeqCst);
            let next = offset + frame.len();
            Some((Ok::<_, BoxError>(Frame::data(frame)), next))
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}

async fn upload(
    state: &Shared,
    method: Method,
    repo: &str,
    id: &str,
    seen: &Seen,
    body: Incoming,
) -> Result<Response<Body>, BoxError> {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    if id.is_empty() {
        // POST: start an upload, or mount.
        let mut inner = lock();
        let mount = seen.query_values("mount").pop();
        let from = seen.query_values("from").pop();
        if let (Some(digest), Some(from)) = (mount, from)
            && !inner.faults.refuse_mount
            && inner.links.contains(&(from, digest.clone()))
        {
            inner.links.insert((repo.to_string(), digest.clone()));
            return Ok(respond(
                201,
                &[
                    ("location", format!("/v2/{repo}/blobs/{digest}")),
                    ("docker-content-digest", digest),
                ],
                empty(),
            ));
        }
        inner.issued += 1;
        let id = format!("upload-{}", inner.issued);
        inner
            .uploads
            .insert(id.clone(), (repo.to_string(), Vec::new()));
        let base = inner
            .faults
            .upload_location_base
            .clone()
            .unwrap_or_default();
        return Ok(respond(
            202,
            &[
                ("location", format!("{base}/v2/{repo}/blobs/uploads/{id}")),
                ("range", "0-0".into()),
                ("docker-upload-uuid", id),
            ],
            empty(),
        ));
    }
    let Some(have) = lock().uploads.get(id).map(|(_, data)| data.len()) else {
        return Ok(error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown"));
    };
    let location = format!("/v2/{repo}/blobs/uploads/{id}");
    let range = || format!("0-{}", have.saturating_sub(1));
    match method {
        Method::GET => Ok(respond(
            204,
            &[("location", location), ("range", range())],
            empty(),
        )),
        Method::PATCH => {
            let start = seen
                .header("content-range")
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<usize>().ok());
            if start.is_some_and(|s| s != have) {
                // Read the body first, so the client gets this answer.
                let _ = body.collect().await;
                return Ok(respond(
                    416,
                    &[("location", location), ("range", range())],
                    empty(),
                ));
            }
            let unread = {
                let mut inner = lock();
                let drop_it = inner.faults.drop_patches_unread > 0;
                inner.faults.drop_patches_unread =
                    inner.faults.drop_patches_unread.saturating_sub(1);
                drop_it
            };
            if unread {
                return Err("the hostile registry dropped the upload unread".into());
            }
            let keep = lock().faults.drop_patch_after.take();
            let mut body = body;
            let mut received = 0usize;
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                let take = match keep {
                    Some(keep) => data.len().min(keep - received),
                    None => data.len(),
                };
                if let Some((_, bytes)) = lock().uploads.get_mut(id) {
                    bytes.extend_from_slice(&data[..take]);
                }
                received += take;
                if keep.is_some_and(|k| received >= k) {
                    return Err("the hostile registry dropped the upload".into());
                }
            }
            let have = lock().uploads.get(id).map(|(_, d)| d.len()).unwrap_or(0);
            Ok(respond(
                202,
                &[
                    ("location", location),
                    ("range", format!("0-{}", have.saturating_sub(1))),
                ],
                empty(),
            ))
        }
        Method::PUT => {
            let data = body.collect().await?.to_bytes();
            let expected = seen.query_values("digest").pop().unwrap_or_default();
            let mut inner = lock();
            let Some((_, mut bytes)) = inner.uploads.remove(id) else {
                return Ok(error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown"));
            };
            bytes.extend_from_slice(&data);
            let digest = sha256(&bytes);
            if digest != expected {
                return Ok(error(400, "DIGEST_INVALID", "digest does not match"));
            }
            inner.blobs.insert(digest.clone(), Bytes::from(bytes));
            inner.links.insert((repo.to_string(), digest.clone()));
            Ok(respond(
                201,
                &[
                    ("location", format!("/v2/{repo}/blobs/{digest}")),
                    ("docker-content-digest", digest),
                ],
                empty(),
            ))
        }
        _ => Ok(error(405, "UNSUPPORTED", "method not allowed")),
    }
}
