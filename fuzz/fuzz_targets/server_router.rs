//! The embedded registry's whole router (`ferry_server::router`) over a
//! fresh filesystem storage: a short session of arbitrary requests
//! (methods, registry paths with nested names, `?digest=`, `?n=&last=`,
//! `?mount=&from=`, ranges, content ranges, Basic auth, manifest bodies
//! that name earlier blobs), each driven through `tower::ServiceExt::oneshot`
//! on a current-thread runtime.
//!
//! Input: text starting with `> ` is a script of requests (readable seeds;
//! see `script`); anything else is read with `arbitrary` as a structured
//! session.
//!
//! Invariants: never panics; every status is a valid HTTP status and never
//! 5xx while the storage is healthy; every error has the distribution
//! spec's JSON body; blob and manifest bodies served by digest hash to that
//! digest; every stored blob is named by its content's digest; nothing is
//! left in `tmp/` between requests; nothing is created outside the storage
//! root, and no symlink appears in it.

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use ferry_fuzz::{check_contained, listing};
use ferry_server::auth::Access;
use ferry_server::storage::fs::FsStorage;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use sha2::Digest as _;
use tower::ServiceExt;

/// The app over a storage root: the few lines that know how the server is
/// put together.
fn app(root: &Path, access: Access) -> Router {
    let storage = FsStorage::open(root).expect("opening storage");
    ferry_server::app(
        Arc::new(storage),
        ferry_server::AppOptions {
            access,
            max_manifest_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(5),
            ..ferry_server::AppOptions::default()
        },
    )
}

#[derive(Arbitrary, Debug)]
struct Input {
    access: AccessMode,
    requests: Vec<Req>,
}

#[derive(Arbitrary, Debug)]
enum AccessMode {
    Open,
    ReadOnly,
    Htpasswd { anonymous_pull: bool },
}

#[derive(Arbitrary, Debug)]
struct Req {
    method: Meth,
    path: PathSpec,
    query: Vec<Param>,
    headers: Vec<Hdr>,
    body: BodySpec,
}

#[derive(Arbitrary, Debug)]
enum Meth {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum PathSpec {
    Raw(String),
    Route(NameSpec, RouteSpec),
}

#[derive(Arbitrary, Debug)]
enum NameSpec {
    Known(u8),
    Text(String),
}

const NAMES: [&str; 6] = [
    "a",
    "library/m",
    "a/blobs/b",
    "x/manifests/y",
    "m",
    "a.b/c-d/e__f",
];

#[derive(Arbitrary, Debug)]
enum RouteSpec {
    Base,
    Catalog,
    Tags,
    UploadStart { slash: bool },
    Upload(SessionSpec),
    Blob(DigestSpec),
    Manifest(RefSpec),
    Referrers(DigestSpec),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum SessionSpec {
    /// The session id the last response named.
    Last,
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum DigestSpec {
    /// The digest of something sent or known (see `Session::pool`).
    Known {
        index: u8,
        sha512: bool,
    },
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum RefSpec {
    Tag(u8),
    Text(String),
    Digest(DigestSpec),
}

const TAGS: [&str; 3] = ["latest", "v1", "_x.y-z"];

#[derive(Arbitrary, Debug)]
enum Param {
    Digest(DigestSpec),
    N(String),
    NNum(u16),
    Last(String),
    Mount(DigestSpec),
    From(NameSpec),
    ArtifactType(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Hdr {
    ContentRange(u64, u64),
    ContentRangeText(String),
    ContentLength(u64),
    /// The body's true length.
    ContentLengthTrue,
    ContentType(u8),
    ContentTypeText(String),
    Range(Option<u64>, Option<u64>),
    RangeText(String),
    BasicAuth {
        user: String,
        password: String,
    },
    GoodAuth,
    Authorization(String),
    Raw(String, String),
}

const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/json; charset=utf-8",
];

#[derive(Arbitrary, Debug)]
enum BodySpec {
    Empty,
    Bytes(Vec<u8>),
    /// A small blob from the pool, so uploads can complete.
    Known(u8),
    Manifest(ManifestSpec),
}

#[derive(Arbitrary, Debug)]
struct ManifestSpec {
    index: bool,
    media_type: Option<u8>,
    config: DigestSpec,
    layers: Vec<DigestSpec>,
    subject: Option<DigestSpec>,
    artifact_type: Option<String>,
    annotation: Option<(String, String)>,
}

/// State carried from one request to the next.
struct Session {
    /// Contents whose digests requests may name: a few fixed ones and every
    /// body sent so far.
    pool: Vec<Vec<u8>>,
    last_upload: Option<String>,
}

impl Session {
    fn digest(&self, spec: &DigestSpec) -> String {
        match spec {
            DigestSpec::Text(text) => text.clone(),
            DigestSpec::Known { index, sha512 } => {
                let bytes = &self.pool[usize::from(*index) % self.pool.len()];
                if *sha512 {
                    format!("sha512:{}", hex(&sha2::Sha512::digest(bytes)))
                } else {
                    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
                }
            }
        }
    }

    fn name(&self, spec: &NameSpec) -> String {
        match spec {
            NameSpec::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            NameSpec::Text(text) => text.clone(),
        }
    }

    fn path(&self, spec: &PathSpec) -> String {
        let (name, route) = match spec {
            PathSpec::Raw(raw) => return raw.clone(),
            PathSpec::Route(name, route) => (self.name(name), route),
        };
        match route {
            RouteSpec::Base => "/v2/".into(),
            RouteSpec::Catalog => "/v2/_catalog".into(),
            RouteSpec::Tags => format!("/v2/{name}/tags/list"),
            RouteSpec::UploadStart { slash } => {
                format!("/v2/{name}/blobs/uploads{}", if *slash { "/" } else { "" })
            }
            RouteSpec::Upload(SessionSpec::Last) => format!(
                "/v2/{name}/blobs/uploads/{}",
                self.last_upload.as_deref().unwrap_or("none")
            ),
            RouteSpec::Upload(SessionSpec::Text(id)) => format!("/v2/{name}/blobs/uploads/{id}"),
            RouteSpec::Blob(digest) => format!("/v2/{name}/blobs/{}", self.digest(digest)),
            RouteSpec::Manifest(reference) => {
                let reference = match reference {
                    RefSpec::Tag(i) => TAGS[usize::from(*i) % TAGS.len()].to_string(),
                    RefSpec::Text(text) => text.clone(),
                    RefSpec::Digest(digest) => self.digest(digest),
                };
                format!("/v2/{name}/manifests/{reference}")
            }
            RouteSpec::Referrers(digest) => format!("/v2/{name}/referrers/{}", self.digest(digest)),
            RouteSpec::Text(text) => format!("/v2/{name}/{text}"),
        }
    }

    fn query(&self, params: &[Param]) -> String {
        params
            .iter()
            .take(4)
            .map(|param| match param {
                Param::Digest(d) => format!("digest={}", encode(&self.digest(d))),
                Param::N(n) => format!("n={}", encode(n)),
                Param::NNum(n) => format!("n={n}"),
                Param::Last(last) => format!("last={}", encode(last)),
                Param::Mount(d) => format!("mount={}", encode(&self.digest(d))),
                Param::From(name) => format!("from={}", encode(&self.name(name))),
                Param::ArtifactType(t) => format!("artifactType={}", encode(t)),
                Param::Raw(raw) => raw.clone(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    fn body(&self, spec: &BodySpec) -> Vec<u8> {
        match spec {
            BodySpec::Empty => Vec::new(),
            BodySpec::Bytes(bytes) => bytes.clone(),
            BodySpec::Known(i) => self.pool[usize::from(*i) % self.pool.len()].clone(),
            BodySpec::Manifest(m) => {
                let descriptor = |d: &DigestSpec| {
                    let digest = self.digest(d);
                    let size = self
                        .pool
                        .iter()
                        .find(|b| self.matches(b, &digest))
                        .map_or(0, Vec::len);
                    serde_json::json!({"mediaType": "application/octet-stream", "digest": digest, "size": size})
                };
                let mut doc = serde_json::json!({"schemaVersion": 2});
                if let Some(i) = m.media_type {
                    doc["mediaType"] = MEDIA_TYPES[usize::from(i) % MEDIA_TYPES.len()].into();
                }
                let layers: Vec<_> = m.layers.iter().take(4).map(descriptor).collect();
                if m.index {
                    doc["manifests"] = layers.into();
                } else {
                    doc["config"] = descriptor(&m.config);
                    doc["layers"] = layers.into();
                }
                if let Some(subject) = &m.subject {
                    doc["subject"] = descriptor(subject);
                }
                if let Some(t) = &m.artifact_type {
                    doc["artifactType"] = t.as_str().into();
                }
                if let Some((k, v)) = &m.annotation {
                    doc["annotations"] = serde_json::json!({ k: v });
                }
                serde_json::to_vec(&doc).expect("JSON")
            }
        }
    }

    /// Replaces a script's `{dN}`, `{body}` and `{upload}`.
    fn expand(&self, text: &str, body_digest: &str) -> String {
        let mut out = text.replace("{body}", body_digest);
        if let Some(id) = &self.last_upload {
            out = out.replace("{upload}", id);
        }
        for (i, bytes) in self.pool.iter().enumerate().rev() {
            out = out.replace(
                &format!("{{d{i}}}"),
                &format!("sha256:{}", hex(&sha2::Sha256::digest(bytes))),
            );
        }
        out
    }

    fn matches(&self, bytes: &[u8], digest: &str) -> bool {
        digest == format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
            || digest == format!("sha512:{}", hex(&sha2::Sha512::digest(bytes)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const USER: &str = "fuzz";
const PASSWORD: &str = "secret";

/// An htpasswd file with one user (bcrypt cost 4: cheap to check).
fn htpasswd() -> &'static Path {
    static FILE: OnceLock<tempfile::TempPath> = OnceLock::new();
    FILE.get_or_init(|| {
        let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
        let mut file = tempfile::NamedTempFile::new().expect("htpasswd file");
        std::io::Write::write_all(&mut file, format!("{USER}:{hash}\n").as_bytes())
            .expect("htpasswd");
        file.into_temp_path()
    })
}

/// `FERRY_FUZZ_VERBOSE=1` prints each request and its status (to check
/// what a seed reaches).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FERRY_FUZZ_VERBOSE").is_some())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// True when the storage root can still be written: a 5xx is then the
/// server's fault, not the disk's.
fn storage_healthy(root: &Path) -> bool {
    let probe = root.join("tmp").join("fuzz-probe");
    let ok = std::fs::write(&probe, b"probe").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Every blob file is named by the digest of its content.
fn check_blobs(root: &Path) {
    for (algorithm, dir) in [
        ("sha256", root.join("blobs/sha256")),
        ("sha512", root.join("blobs/sha512")),
    ] {
        for name in listing(&dir) {
            let bytes = std::fs::read(dir.join(&name)).expect("reading a blob");
            let actual = match algorithm {
                "sha256" => hex(&sha2::Sha256::digest(&bytes)),
                _ => hex(&sha2::Sha512::digest(&bytes)),
            };
            assert_eq!(actual, name, "blobs/{algorithm}/{name} holds other content");
        }
    }
}

fn header(spec: &Hdr, body_len: usize) -> Option<(HeaderName, HeaderValue)> {
    let (name, value): (&str, String) = match spec {
        Hdr::ContentRange(a, b) => ("content-range", format!("{a}-{b}")),
        Hdr::ContentRangeText(text) => ("content-range", text.clone()),
        Hdr::ContentLength(n) => ("content-length", n.to_string()),
        Hdr::ContentLengthTrue => ("content-length", body_len.to_string()),
        Hdr::ContentType(i) => (
            "content-type",
            MEDIA_TYPES[usize::from(*i) % MEDIA_TYPES.len()].to_string(),
        ),
        Hdr::ContentTypeText(text) => ("content-type", text.clone()),
        Hdr::Range(a, b) => (
            "range",
            format!(
                "bytes={}-{}",
                a.map(|a| a.to_string()).unwrap_or_default(),
                b.map(|b| b.to_string()).unwrap_or_default()
            ),
        ),
        Hdr::RangeText(text) => ("range", text.clone()),
        Hdr::BasicAuth { user, password } => (
            "authorization",
            format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
        ),
        Hdr::GoodAuth => (
            "authorization",
            format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes())),
        ),
        Hdr::Authorization(text) => ("authorization", text.clone()),
        Hdr::Raw(name, value) => (name.as_str(), value.clone()),
    };
    Some((
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(&value).ok()?,
    ))
}

fn method(spec: &Meth) -> Option<Method> {
    Some(match spec {
        Meth::Get => Method::GET,
        Meth::Head => Method::HEAD,
        Meth::Post => Method::POST,
        Meth::Put => Method::PUT,
        Meth::Patch => Method::PATCH,
        Meth::Delete => Method::DELETE,
        Meth::Options => Method::OPTIONS,
        Meth::Other(text) => Method::from_bytes(text.as_bytes()).ok()?,
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(text) = std::str::from_utf8(data)
        .ok()
        .filter(|t| t.starts_with("> "))
    {
        run(AccessMode::Open, Script(text));
    } else if let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) {
        run(input.access, Structured(&input.requests));
    }
});

/// Where a session's requests come from.
trait Requests {
    /// The requests, built one at a time against the session so far.
    fn build(&self, i: usize, session: &Session) -> Option<Built>;
}

/// A request ready to send (its body is added to the pool).
struct Built {
    method: Method,
    uri: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

struct Structured<'a>(&'a [Req]);

impl Requests for Structured<'_> {
    fn build(&self, i: usize, session: &Session) -> Option<Built> {
        let req = self.0.get(i)?;
        let path = session.path(&req.path);
        let query = session.query(&req.query);
        let body = session.body(&req.body);
        Some(Built {
            method: method(&req.method).unwrap_or(Method::GET),
            uri: if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            },
            headers: req
                .headers
                .iter()
                .take(6)
                .filter_map(|h| header(h, body.len()))
                .collect(),
            body,
        })
    }
}

/// Requests written as text, each starting with `> METHOD URI`, then
/// `name: value` header lines, a blank line and the body. In the URI,
/// headers and body, `{dN}` is the sha256 digest of the pool's N-th entry
/// (0-3 are fixed: empty, `{}`, `hello`, 3000 zero bytes; then every body
/// sent), `{body}` the digest of this request's own body and `{upload}` the
/// last upload session id.
struct Script<'a>(&'a str);

impl Requests for Script<'_> {
    fn build(&self, i: usize, session: &Session) -> Option<Built> {
        let block = self.0.split("\n> ").nth(i)?;
        let block = block.strip_prefix("> ").unwrap_or(block);
        let (head, body) = block.split_once("\n\n").unwrap_or((block, ""));
        let body = body.strip_suffix('\n').unwrap_or(body);
        let body = session.expand(body, "");
        let body_digest = format!("sha256:{}", hex(&sha2::Sha256::digest(body.as_bytes())));
        let mut lines = head.lines();
        let (method, uri) = lines.next()?.split_once(' ')?;
        let headers = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                let value = session.expand(value.trim(), &body_digest);
                Some((
                    HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                    HeaderValue::from_str(&value).ok()?,
                ))
            })
            .collect();
        Some(Built {
            method: Method::from_bytes(method.as_bytes()).ok()?,
            uri: session.expand(uri, &body_digest),
            headers,
            body: body.into_bytes(),
        })
    }
}

fn run(access: AccessMode, requests: impl Requests) {
    let temp = ferry_fuzz::scratch_dir();
    let root = temp.path().join("root");
    let access = match access {
        AccessMode::Open => Access::default(),
        AccessMode::ReadOnly => Access::new(None, false, true).expect("access"),
        AccessMode::Htpasswd { anonymous_pull } => {
            Access::new(Some(htpasswd()), anonymous_pull, false).expect("access")
        }
    };
    let app = app(&root, access);
    let mut session = Session {
        pool: vec![
            Vec::new(),
            b"{}".to_vec(),
            b"hello".to_vec(),
            vec![0u8; 3000],
        ],
        last_upload: None,
    };

    runtime().block_on(async {
        for i in 0..8 {
            let Some(Built {
                method,
                uri,
                headers,
                body,
            }) = requests.build(i, &session)
            else {
                break;
            };
            // What no HTTP server would hand the router is not its concern.
            let Ok(uri) = uri.parse::<Uri>() else {
                continue;
            };
            let mut request = Request::builder().method(method.clone()).uri(uri.clone());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                continue;
            };
            if !body.is_empty() && session.pool.len() < 16 {
                session.pool.push(body.clone());
            }

            let response = app
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("reading the response body")
                .to_bytes();
            let context = || {
                format!(
                    "{method} {uri} -> {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            };

            if verbose() {
                eprintln!("{method} {uri} -> {status}");
            }
            assert!((100..600).contains(&status.as_u16()), "{}", context());
            if status.is_server_error() {
                assert!(
                    !storage_healthy(&root),
                    "5xx with healthy storage: {}",
                    context()
                );
            }
            assert!(
                headers.contains_key("docker-distribution-api-version"),
                "{}",
                context()
            );
            // (Responses to HEAD lose their body in axum.)
            if (status.is_client_error() || status.is_server_error()) && method != Method::HEAD {
                let json: serde_json::Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", context()));
                assert!(json["errors"][0]["code"].is_string(), "{}", context());
            }
            if status == StatusCode::OK && method == Method::GET {
                let path = uri.path();
                let served_by_digest = ["/blobs/", "/manifests/"].iter().find_map(|marker| {
                    let (_, tail) = path.rsplit_once(marker)?;
                    tail.contains(':').then_some(tail)
                });
                if let Some(digest) = served_by_digest {
                    assert!(
                        session.matches(&bytes, digest),
                        "content does not match {digest}: {}",
                        context()
                    );
                }
                if let Some(digest) = headers
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    && !headers.contains_key("content-range")
                {
                    assert!(
                        session.matches(&bytes, digest),
                        "Docker-Content-Digest {digest} is wrong: {}",
                        context()
                    );
                }
            }
            if let Some(id) = headers
                .get("docker-upload-uuid")
                .and_then(|v| v.to_str().ok())
            {
                session.last_upload = Some(id.to_string());
            }

            assert_eq!(
                listing(temp.path()),
                ["root".to_string()].into(),
                "created beside the root"
            );
            let top = listing(&root);
            assert!(
                top.iter()
                    .all(|n| ["blobs", "repos", "uploads", "tmp"].contains(&n.as_str())),
                "unexpected entries in the storage root: {top:?}"
            );
            assert!(
                listing(&root.join("tmp")).is_empty(),
                "tmp/ not empty after {}",
                context()
            );
            check_contained(&root, &[]);
            check_blobs(&root);
        }
    });
}
