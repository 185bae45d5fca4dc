//! Referrers (distribution spec v1.1): attaching artifacts to a manifest and
//! discovering what is attached.
//!
//! A referrer is an image manifest whose `subject` names another manifest.
//! A registry with the referrers API indexes it when it is pushed and answers
//! `OCI-Subject`. For the others (Debian's docker-registry 2.8 among them)
//! the client keeps the *fallback tag* `<alg>-<hex>` of the subject: an image
//! index listing the referrers, updated by read-modify-write (see
//! [`FallbackPolicy`] for what that can and cannot promise).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::annotations::TITLE;
use ferry_spec::media::{MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ferry_spec::oci::{Descriptor, Digest, ImageIndex, ImageManifestBuilder, MediaType};

use crate::api::MAX_MANIFEST_BYTES;
use crate::client::{Access, Client, Endpoint, Request, status_error, with_query};
use crate::error::{ClientError, Result, io_error};
use crate::progress::TransferProgress;
use crate::retry::RetryPolicy;
use crate::transfer::reference_tail;

use ferry_spec::media::EMPTY_CONFIG;

/// Deepest referrer tree [`referrer_tree`] builds, whatever it is asked.
pub const MAX_TREE_DEPTH: usize = 64;

/// Most nodes [`referrer_tree`] lists before it stops expanding.
pub const MAX_TREE_NODES: usize = 10_000;

/// Pages of the referrers API followed before giving up.
const MAX_PAGES: usize = 1_000;

/// The empty descriptor: config of artifacts that have no config.
pub fn empty_config_descriptor() -> Descriptor {
    Descriptor::new(
        MediaType::EmptyJSON,
        EMPTY_CONFIG.len() as u64,
        ferry_spec::digest::sha256_digest(EMPTY_CONFIG),
    )
}

/// The fallback tag of a subject: `<alg>-<hex>`, the algorithm cut to 32
/// characters and the hex to 64 (the spec's referrers tag schema), so the
/// tag always fits the 128-character limit.
pub fn fallback_tag(subject: &Digest) -> String {
    let algorithm: String = subject.algorithm().as_ref().chars().take(32).collect();
    let hex: String = subject.digest().chars().take(64).collect();
    format!("{algorithm}-{hex}")
}

/// The descriptor of the manifest `reference` names on its registry
/// (media type, digest and size of the exact bytes served).
pub async fn resolve_descriptor(client: &Client, reference: &Reference) -> Result<Descriptor> {
    let endpoint = Endpoint::of(reference);
    let fetched = client
        .manifest(&endpoint, &reference_tail(reference))
        .await?;
    Ok(Descriptor::new(
        MediaType::from(fetched.media_type.as_str()),
        fetched.bytes.len() as u64,
        fetched.digest,
    ))
}

// ---------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------

/// Where a list of referrers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// `GET /v2/<name>/referrers/<digest>`.
    Api,
    /// The fallback tag `<alg>-<hex>` (the registry has no referrers API).
    FallbackTag,
}

impl ReferrersSource {
    /// `api` or `tag`, for output.
    pub fn name(self) -> &'static str {
        match self {
            ReferrersSource::Api => "api",
            ReferrersSource::FallbackTag => "tag",
        }
    }
}

/// The referrers of one subject.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// Their descriptors (with `artifactType` and annotations when known).
    pub descriptors: Vec<Descriptor>,
    /// Where they were read.
    pub source: ReferrersSource,
}

/// Lists the referrers of `subject` in `endpoint`'s repository: through the
/// referrers API, else from the fallback tag. With `artifact_type`, only
/// referrers of that type are returned (filtered here when the registry did
/// not say `OCI-Filters-Applied: artifactType`).
pub async fn list_referrers(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Referrers> {
    if let Some(page) = referrers_api(client, endpoint, subject, artifact_type).await? {
        let mut descriptors = page.descriptors;
        if let Some(wanted) = artifact_type
            && !page.filtered
        {
            retain_artifact_type(&mut descriptors, wanted);
        }
        return Ok(Referrers {
            descriptors,
            source: ReferrersSource::Api,
        });
    }
    let tag = fallback_tag(subject);
    let mut descriptors = match read_fallback(client, endpoint, &tag).await? {
        Some(document) => fallback_entries(&document, &tag),
        None => Vec::new(),
    };
    if let Some(wanted) = artifact_type {
        retain_artifact_type(&mut descriptors, wanted);
    }
    Ok(Referrers {
        descriptors,
        source: ReferrersSource::FallbackTag,
    })
}

/// Keeps the descriptors whose `artifactType` is `wanted`.
pub fn retain_artifact_type(descriptors: &mut Vec<Descriptor>, wanted: &str) {
    descriptors.retain(|d| {
        d.artifact_type()
            .as_ref()
            .is_some_and(|t| t.to_string() == wanted)
    });
}

struct ApiReferrers {
    descriptors: Vec<Descriptor>,
    /// Every page said `OCI-Filters-Applied: artifactType`.
    filtered: bool,
}

/// The referrers API, following `Link` pages; `None` when the registry does
/// not have it (404, 405, or an answer that is not an image index).
async fn referrers_api(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Option<ApiReferrers>> {
    let mut url = format!("/v2/{}/referrers/{subject}", endpoint.repository);
    if let Some(t) = artifact_type {
        url = with_query(&url, "artifactType", t);
    }
    let mut out = ApiReferrers {
        descriptors: Vec::new(),
        filtered: artifact_type.is_some(),
    };
    for page in 0..MAX_PAGES {
        let request = Request::new(
            Method::GET,
            url.clone(),
            Access::Pull,
            format!("listing referrers of {subject}"),
        )
        .header("accept", MEDIA_TYPE_IMAGE_INDEX);
        let response = client.send(endpoint, &request).await?;
        let status = response.status();
        if page == 0
            && (status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED)
        {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(status_error(endpoint, &request.action, response).await);
        }
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let filtered = headers
            .get_all("oci-filters-applied")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|f| f.trim() == "artifactType");
        let body = read_capped(endpoint, response, "referrers index").await?;
        let index: ImageIndex = match serde_json::from_slice(&body) {
            Ok(index) => index,
            Err(e) if content_type.starts_with(MEDIA_TYPE_IMAGE_INDEX) => {
                return Err(ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!("referrers index of {subject}: {e}"),
                });
            }
            // Something answered 200 with a page that is not an index (a
            // proxy, a web UI): this registry has no referrers API.
            Err(_) if page == 0 => return Ok(None),
            Err(e) => {
                return Err(ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!("referrers page {page} of {subject}: {e}"),
                });
            }
        };
        out.filtered &= filtered;
        out.descriptors.extend(index.manifests().iter().cloned());
        match next_link(&headers) {
            Some(next) => url = next,
            None => return Ok(Some(out)),
        }
    }
    Err(ClientError::Invalid {
        registry: endpoint.registry.clone(),
        reason: format!("referrers of {subject}: more than {MAX_PAGES} pages"),
    })
}

fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))
        .and_then(|l| l.split('<').nth(1)?.split('>').next().map(str::to_string))
}

/// Reads a response body of at most [`MAX_MANIFEST_BYTES`].
pub(crate) async fn read_capped(
    endpoint: &Endpoint,
    response: reqwest::Response,
    what: &str,
) -> Result<Vec<u8>> {
    let too_large = || ClientError::Integrity {
        what: format!("{what} from {}", endpoint.registry),
        reason: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|l| l > MAX_MANIFEST_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ClientError::Unreachable {
            registry: endpoint.registry.clone(),
            reason: format!("reading {what}: {e}"),
        })?;
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The fallback index under `tag`, or `None` when the tag does not exist.
pub(crate) async fn read_fallback(
    client: &Client,
    endpoint: &Endpoint,
    tag: &str,
) -> Result<Option<Value>> {
    let fetched = match client.manifest(endpoint, tag).await {
        Ok(fetched) => fetched,
        Err(ClientError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let invalid = |reason: String| ClientError::Invalid {
        registry: endpoint.registry.clone(),
        reason: format!("fallback tag {tag}: {reason}"),
    };
    if fetched.media_type != MEDIA_TYPE_IMAGE_INDEX {
        return Err(invalid(format!(
            "holds a {}, not an image index",
            fetched.media_type
        )));
    }
    let document: Value =
        serde_json::from_slice(&fetched.bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if !document.get("manifests").is_some_and(Value::is_array) {
        return Err(invalid("index without a manifests array".into()));
    }
    Ok(Some(document))
}

/// The descriptors of a fallback index; entries that are not descriptors
/// (another tool's mistake) are skipped with a warning.
fn fallback_entries(document: &Value, tag: &str) -> Vec<Descriptor> {
    let Some(entries) = document.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(
            |entry| match serde_json::from_value::<Descriptor>(entry.clone()) {
                Ok(descriptor) => Some(descriptor),
                Err(e) => {
                    tracing::warn!("fallback tag {tag}: skipping an invalid entry: {e}");
                    None
                }
            },
        )
        .collect()
}

// ---------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------

/// A referrer and, recursively, its own referrers.
#[derive(Debug, Clone)]
pub struct ReferrerNode {
    /// The referrer.
    pub descriptor: Descriptor,
    /// Its referrers.
    pub referrers: Vec<ReferrerNode>,
    /// Already listed elsewhere in the tree (a cycle through a fallback tag,
    /// or a referrer of two subjects): not expanded again.
    pub repeated: bool,
    /// Not expanded for a limit: at the depth limit, set only when it has
    /// referrers; past [`MAX_TREE_NODES`], set without asking.
    pub truncated: bool,
}

/// Something that lists referrers: the registry, or a fake in tests.
pub(crate) trait ListReferrers {
    async fn list(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>>;
}

struct RegistryReferrers<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
}

impl ListReferrers for RegistryReferrers<'_> {
    async fn list(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>> {
        Ok(
            list_referrers(self.client, self.endpoint, subject, artifact_type)
                .await?
                .descriptors,
        )
    }
}

/// The referrers of `subject` and theirs, down to `max_depth` levels (at
/// most [`MAX_TREE_DEPTH`]). `artifact_type` filters the first level only.
/// A manifest met twice (fallback tags can form cycles) is listed again but
/// not expanded again.
pub async fn referrer_tree(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
    max_depth: usize,
) -> Result<Vec<ReferrerNode>> {
    build_tree(
        &RegistryReferrers { client, endpoint },
        subject,
        artifact_type,
        max_depth,
    )
    .await
}

struct FlatNode {
    descriptor: Descriptor,
    children: Vec<usize>,
    repeated: bool,
    truncated: bool,
}

pub(crate) async fn build_tree(
    lister: &impl ListReferrers,
    subject: &Digest,
    artifact_type: Option<&str>,
    max_depth: usize,
) -> Result<Vec<ReferrerNode>> {
    let max_depth = max_depth.clamp(1, MAX_TREE_DEPTH);
    let mut nodes: Vec<FlatNode> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::from([subject.clone()]);
    let mut add = |nodes: &mut Vec<FlatNode>, descriptor: Descriptor| {
        let repeated = !seen.insert(descriptor.digest().clone());
        nodes.push(FlatNode {
            descriptor,
            children: Vec::new(),
            repeated,
            truncated: false,
        });
        nodes.len() - 1
    };
    let mut roots = Vec::new();
    let mut queue = VecDeque::new();
    for descriptor in lister.list(subject, artifact_type).await? {
        let index = add(&mut nodes, descriptor);
        roots.push(index);
        queue.push_back((index, 1usize));
    }
    // Breadth first, so a manifest met twice is expanded where it is shallowest.
    while let Some((index, depth)) = queue.pop_front() {
        if nodes[index].repeated {
            continue;
        }
        let digest = nodes[index].descriptor.digest().clone();
        if nodes.len() >= MAX_TREE_NODES {
            // Too big to list: stop asking the registry at all.
            nodes[index].truncated = true;
            continue;
        }
        if depth >= max_depth {
            // Only say "more below" when there is more below.
            nodes[index].truncated = !lister.list(&digest, None).await?.is_empty();
            continue;
        }
        for descriptor in lister.list(&digest, None).await? {
            let child = add(&mut nodes, descriptor);
            nodes[index].children.push(child);
            queue.push_back((child, depth + 1));
        }
    }
    let mut slots: Vec<Option<FlatNode>> = nodes.into_iter().map(Some).collect();
    Ok(roots
        .into_iter()
        .filter_map(|root| assemble(&mut slots, root))
        .collect())
}

/// Turns the flat nodes into a tree (recursion bounded by the depth limit).
fn assemble(slots: &mut [Option<FlatNode>], index: usize) -> Option<ReferrerNode> {
    let node = slots.get_mut(index)?.take()?;
    Some(ReferrerNode {
        descriptor: node.descriptor,
        referrers: node
            .children
            .into_iter()
            .filter_map(|child| assemble(slots, child))
            .collect(),
        repeated: node.repeated,
        truncated: node.truncated,
    })
}

// ---------------------------------------------------------------------------
// Attaching
// ---------------------------------------------------------------------------

/// How the fallback index is updated when the registry has no referrers API.
///
/// The distribution spec has no compare-and-swap for tags: a `PUT` simply
/// replaces what the tag pointed to. Two writers that read the index at the
/// same time each add their entry to what they read, and the later `PUT`
/// drops the earlier writer's entry. ferry narrows that window with
/// optimistic concurrency: after writing, it re-reads the tag `confirmations`
/// times, `settle` apart, and writes again (after a backoff) whenever its
/// entry is gone. What this cannot prevent: a writer whose read came before
/// our write and whose `PUT` arrives after our last confirmation (more than
/// `settle * confirmations` later) still erases our entry, and nobody
/// notices. Registries with the referrers API have no such race.
#[derive(Debug, Clone, Copy)]
pub struct FallbackPolicy {
    /// Read-modify-write attempts before giving up.
    pub attempts: u32,
    /// Delay between attempts (jittered, growing).
    pub backoff: RetryPolicy,
    /// Wait between writing and each confirming read.
    pub settle: Duration,
    /// Confirming reads that must all show the entry.
    pub confirmations: u32,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy {
            attempts: 20,
            backoff: RetryPolicy {
                attempts: 20,
                base: Duration::from_millis(100),
                max: Duration::from_secs(3),
            },
            settle: Duration::from_millis(250),
            confirmations: 2,
        }
    }
}

/// What `ferry attach` is told.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// The referrer's `artifactType` (REQUIRED: its config is the empty descriptor).
    pub artifact_type: String,
    /// Files, one layer each, titled with their file name.
    pub files: Vec<PathBuf>,
    /// Media type of every layer.
    pub layer_media_type: String,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Blobs pushed at once.
    pub concurrency: usize,
    /// How the fallback tag is maintained.
    pub fallback: FallbackPolicy,
}

/// What an attach pushed.
#[derive(Debug, Clone)]
pub struct Attached {
    /// `registry/repository@digest` of the referrer.
    pub reference: String,
    /// The subject's descriptor.
    pub subject: Descriptor,
    /// The referrer's descriptor as referrer lists show it.
    pub descriptor: Descriptor,
    /// Set when the registry did not index the subject and ferry updated the
    /// fallback tag instead.
    pub fallback: Option<FallbackUpdate>,
}

/// A fallback tag update.
#[derive(Debug, Clone)]
pub struct FallbackUpdate {
    /// The tag (`sha256-<hex>`).
    pub tag: String,
    /// Read-modify-write attempts it took.
    pub attempts: u32,
}

/// Pushes `options.files` as an artifact whose `subject` is the manifest
/// `subject` names, then makes sure it is listed: by the registry (it
/// answered `OCI-Subject`) or in the fallback tag.
pub async fn attach(
    client: &Client,
    subject: &Reference,
    options: &AttachOptions,
    progress: &dyn TransferProgress,
) -> Result<Attached> {
    check_media_type("artifact type", &options.artifact_type)?;
    check_media_type("layer media type", &options.layer_media_type)?;
    if options.files.is_empty() {
        return Err(ClientError::Config("attach needs at least one file".into()));
    }
    let titles = titles(&options.files)?;
    let endpoint = Endpoint::of(subject);
    let subject_descriptor = resolve_descriptor(client, subject).await?;

    let mut layers = Vec::with_capacity(options.files.len());
    for (path, title) in options.files.iter().zip(titles) {
        let (digest, size) = hash_file(path).await?;
        let mut layer = Descriptor::new(
            MediaType::from(options.layer_media_type.as_str()),
            size,
            digest,
        );
        layer.set_annotations(Some([(TITLE.to_string(), title)].into_iter().collect()));
        layers.push(layer);
    }
    let config = empty_config_descriptor();
    client
        .push_blob_bytes(&endpoint, &config, Bytes::from_static(EMPTY_CONFIG))
        .await?;
    stream::iter(options.files.iter().zip(&layers))
        .map(|(path, layer)| client.push_blob_file(&endpoint, path, layer, None, progress))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<Vec<bool>>()
        .await?;

    let artifact_type = MediaType::from(options.artifact_type.as_str());
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(artifact_type.clone())
        .config(config)
        .layers(layers)
        .subject(subject_descriptor.clone());
    if !options.annotations.is_empty() {
        builder = builder.annotations(
            options
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let manifest = builder
        .build()
        .map_err(|e| ClientError::Config(format!("cannot build the referrer manifest: {e}")))?;
    let bytes = ferry_spec::json::canonical_json(&manifest)
        .map_err(|e| ClientError::Config(format!("cannot serialize the referrer manifest: {e}")))?;
    let digest = ferry_spec::digest::sha256_digest(&bytes);
    let mut descriptor =
        Descriptor::new(MediaType::ImageManifest, bytes.len() as u64, digest.clone());
    descriptor.set_artifact_type(Some(artifact_type));
    if !options.annotations.is_empty() {
        descriptor.set_annotations(manifest.annotations().clone());
    }
    let pushed = put_manifest_through_blob_races(
        client,
        &endpoint,
        digest.as_ref(),
        MEDIA_TYPE_IMAGE_MANIFEST,
        Bytes::from(bytes),
        &options.fallback.backoff,
    )
    .await?;
    let fallback = if pushed.subject_indexed {
        None
    } else {
        let tag = fallback_tag(subject_descriptor.digest());
        let store = RegistryTag {
            client,
            endpoint: &endpoint,
            tag: &tag,
        };
        let entry = serde_json::to_value(&descriptor).map_err(|e| {
            ClientError::Config(format!("cannot serialize the referrer descriptor: {e}"))
        })?;
        let attempts = add_to_fallback_index(&store, &tag, &entry, &options.fallback).await?;
        Some(FallbackUpdate { tag, attempts })
    };
    Ok(Attached {
        reference: format!("{}/{}@{digest}", endpoint.registry, endpoint.repository),
        subject: subject_descriptor,
        descriptor,
        fallback,
    })
}

/// Rejects what cannot be a media type (`type/subtype`).
fn check_media_type(what: &str, value: &str) -> Result<()> {
    if ferry_spec::media::is_valid_media_type(value) {
        Ok(())
    } else {
        Err(ClientError::Config(format!(
            "{what} {value:?} is not a media type (type/subtype)"
        )))
    }
}

/// The title of each file (its name), refusing two files with one name.
fn titles(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    files
        .iter()
        .map(|path| {
            let title = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    ClientError::Config(format!(
                        "{} has no UTF-8 file name to use as a title",
                        path.display()
                    ))
                })?
                .to_string();
            if !seen.insert(title.clone()) {
                return Err(ClientError::Config(format!(
                    "two files are named {title:?}: layer titles must be unique"
                )));
            }
            Ok(title)
        })
        .collect()
}

async fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&owned).map_err(io_error("reading", owned.display()))?;
        if !file
            .metadata()
            .map_err(io_error("reading", owned.display()))?
            .is_file()
        {
            return Err(ClientError::Config(format!(
                "{} is not a regular file",
                owned.display()
            )));
        }
        let mut reader = ferry_spec::digest::HashingReader::new(file);
        std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(io_error("reading", owned.display()))?;
        Ok(reader.finish())
    })
    .await
    .map_err(|e| ClientError::Config(format!("hashing {}: {e}", path.display())))?
}

/// A fallback index: read whole, written whole.
pub(crate) trait FallbackStore {
    /// The index document, or `None` when the tag does not exist.
    async fn read(&self) -> Result<Option<Value>>;
    /// Replaces the index.
    async fn write(&self, document: Vec<u8>) -> Result<()>;
}

struct RegistryTag<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    tag: &'a str,
}

impl FallbackStore for RegistryTag<'_> {
    async fn read(&self) -> Result<Option<Value>> {
        read_fallback(self.client, self.endpoint, self.tag).await
    }

    async fn write(&self, document: Vec<u8>) -> Result<()> {
        put_manifest_through_blob_races(
            self.client,
            self.endpoint,
            self.tag,
            MEDIA_TYPE_IMAGE_INDEX,
            Bytes::from(document),
            &RetryPolicy::default(),
        )
        .await
        .map(|_| ())
    }
}

/// Error codes a manifest `PUT` gets when a blob or manifest it names is
/// momentarily unreadable on the registry.
const BLOB_RACE_CODES: [&str; 3] = ["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"];

/// Attempts of a manifest `PUT` refused for [`BLOB_RACE_CODES`].
const BLOB_RACE_ATTEMPTS: u32 = 5;

/// `put_manifest`, retried when the registry claims a referenced blob is
/// unknown or invalid. docker-registry 2.8's filesystem driver rewrites a
/// repository's blob link in place, so while another client uploads the same
/// blob (every attach shares the empty config) a manifest naming it can be
/// refused with `DIGEST_INVALID`; a moment later the link is whole again. A
/// blob that is really missing still fails after [`BLOB_RACE_ATTEMPTS`].
async fn put_manifest_through_blob_races(
    client: &Client,
    endpoint: &Endpoint,
    reference: &str,
    media_type: &str,
    bytes: Bytes,
    backoff: &RetryPolicy,
) -> Result<crate::api::PushedManifest> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client
            .put_manifest(endpoint, reference, media_type, bytes.clone())
            .await
        {
            Err(ClientError::Status {
                status: 400,
                body: Some(body),
                ..
            }) if BLOB_RACE_CODES.contains(&body.code.as_str()) && attempt < BLOB_RACE_ATTEMPTS => {
                let delay = backoff.delay(attempt, None);
                tracing::info!(
                    "{}: manifest {reference} refused with {} (a concurrent upload of a shared blob?); retrying in {delay:?}",
                    endpoint.registry,
                    body.code
                );
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// True when the index lists `digest`.
fn lists(document: &Value, digest: &str) -> bool {
    document
        .get("manifests")
        .and_then(Value::as_array)
        .is_some_and(|m| {
            m.iter()
                .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest))
        })
}

/// `document` (or a new index) with `entry` appended; every other entry and
/// field is kept as read, so entries written by other tools survive.
fn with_entry(document: Option<Value>, entry: &Value) -> Value {
    let mut document = document.unwrap_or_else(|| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_IMAGE_INDEX,
            "manifests": [],
        })
    });
    if let Some(manifests) = document.get_mut("manifests").and_then(Value::as_array_mut) {
        manifests.push(entry.clone());
    }
    document
}

/// Adds `entry` (a descriptor) to the fallback index unless it is listed,
/// then confirms it stays listed; see [`FallbackPolicy`]. Returns the
/// attempts it took.
pub(crate) async fn add_to_fallback_index(
    store: &impl FallbackStore,
    what: &str,
    entry: &Value,
    policy: &FallbackPolicy,
) -> Result<u32> {
    let digest = entry
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Config("referrer descriptor without a digest".into()))?;
    let attempts = policy.attempts.max(1);
    for attempt in 1..=attempts {
        let current = store.read().await?;
        if !current.as_ref().is_some_and(|d| lists(d, digest)) {
            let updated = with_entry(current, entry);
            let bytes = ferry_spec::json::canonical_json(&updated).map_err(|e| {
                ClientError::Config(format!("cannot serialize the index for {what}: {e}"))
            })?;
            store.write(bytes).await?;
        }
        let mut confirmed = true;
        for _ in 0..policy.confirmations {
            tokio::time::sleep(policy.settle).await;
            if !store.read().await?.is_some_and(|d| lists(&d, digest)) {
                confirmed = false;
                break;
            }
        }
        if confirmed {
            return Ok(attempt);
        }
        let delay = policy.backoff.delay(attempt, None);
        tracing::info!(
            "{what}: a concurrent writer replaced the index; retrying in {delay:?} (attempt {attempt})"
        );
        tokio::time::sleep(delay).await;
    }
    Err(ClientError::Contended {
        what: what.to_string(),
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn digest(n: u8) -> Digest {
        ferry_spec::digest::sha256_digest(&[n])
    }

    fn descriptor(n: u8, artifact_type: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(MediaType::ImageManifest, 100 + n as u64, digest(n));
        d.set_artifact_type(artifact_type.map(MediaType::from));
        d
    }

    #[test]
    fn fallback_tag_is_alg_dash_hex_within_the_tag_limit() {
        let d = digest(1);
        let tag = fallback_tag(&d);
        assert_eq!(tag, format!("sha256-{}", d.digest()));
        let long = Digest::try_from(format!("sha512:{}", "ab".repeat(64))).unwrap();
        let tag = fallback_tag(&long);
        assert_eq!(tag, format!("sha512-{}", "ab".repeat(32)));
        assert!(tag.len() <= 128);
    }

    #[test]
    fn empty_descriptor_matches_the_spec() {
        let d = empty_config_descriptor();
        assert_eq!(
            d.digest().to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(d.size(), 2);
        assert_eq!(
            d.media_type().to_string(),
            "application/vnd.oci.empty.v1+json"
        );
    }

    #[test]
    fn artifact_type_filter_keeps_only_matches() {
        let mut list = vec![
            descriptor(1, Some("application/vnd.a")),
            descriptor(2, Some("application/vnd.b")),
            descriptor(3, None),
        ];
        retain_artifact_type(&mut list, "application/vnd.b");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].digest(), &digest(2));
    }

    #[test]
    fn media_types_and_titles_are_checked() {
        assert!(check_media_type("t", "application/vnd.example+json").is_ok());
        for bad in ["", "application", "a/b/c", "/x", "a b/c"] {
            assert!(check_media_type("t", bad).is_err(), "{bad:?} accepted");
        }
        let ok = titles(&[PathBuf::from("/a/x.json"), PathBuf::from("/b/y.json")]).unwrap();
        assert_eq!(ok, vec!["x.json", "y.json"]);
        let err = titles(&[PathBuf::from("/a/x.json"), PathBuf::from("/b/x.json")]).unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }

    #[test]
    fn next_link_follows_rel_next() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "link",
            "</v2/r/referrers/sha256:aa?last=x>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/r/referrers/sha256:aa?last=x")
        );
        assert_eq!(next_link(&reqwest::header::HeaderMap::new()), None);
    }

    /// A referrer graph in memory.
    struct Graph(HashMap<Digest, Vec<Descriptor>>, RefCell<usize>);

    impl ListReferrers for Graph {
        async fn list(
            &self,
            subject: &Digest,
            artifact_type: Option<&str>,
        ) -> Result<Vec<Descriptor>> {
            *self.1.borrow_mut() += 1;
            let mut out = self.0.get(subject).cloned().unwrap_or_default();
            if let Some(t) = artifact_type {
                retain_artifact_type(&mut out, t);
            }
            Ok(out)
        }
    }

    #[tokio::test]
    async fn trees_survive_cycles_and_stop_at_the_depth_limit() {
        // 0 <- 1 <- 2 <- 3, and a fallback tag claiming 0 refers to 2 (a cycle).
        let mut edges = HashMap::new();
        edges.insert(digest(0), vec![descriptor(1, Some("application/vnd.sig"))]);
        edges.insert(digest(1), vec![descriptor(2, None)]);
        edges.insert(digest(2), vec![descriptor(3, None), descriptor(0, None)]);
        let graph = Graph(edges, RefCell::new(0));
        let tree = build_tree(&graph, &digest(0), None, 10).await.unwrap();
        assert_eq!(tree.len(), 1);
        let two = &tree[0].referrers[0];
        assert_eq!(two.descriptor.digest(), &digest(2));
        let children: Vec<_> = two
            .referrers
            .iter()
            .map(|n| n.descriptor.digest())
            .collect();
        assert_eq!(children, vec![&digest(3), &digest(0)]);
        assert!(
            two.referrers[1].repeated,
            "the subject met again is not expanded"
        );
        assert!(two.referrers[1].referrers.is_empty());
        assert!(!two.referrers[0].repeated);

        let shallow = build_tree(&graph, &digest(0), None, 2).await.unwrap();
        let two = &shallow[0].referrers[0];
        assert!(two.referrers.is_empty());
        assert!(two.truncated, "more below the depth limit is flagged");
        assert!(!shallow[0].truncated);

        let filtered = build_tree(&graph, &digest(0), Some("application/vnd.other"), 10)
            .await
            .unwrap();
        assert!(filtered.is_empty());
    }

    /// A tag whose writes land `lag` after they were computed, like a slow
    /// client racing others.
    struct RacyTag {
        document: RefCell<Option<Value>>,
        lag: Duration,
    }

    impl FallbackStore for RacyTag {
        async fn read(&self) -> Result<Option<Value>> {
            Ok(self.document.borrow().clone())
        }
        async fn write(&self, document: Vec<u8>) -> Result<()> {
            tokio::time::sleep(self.lag).await;
            *self.document.borrow_mut() = Some(serde_json::from_slice(&document).unwrap());
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_fallback_writers_all_end_up_listed() {
        let tag = RacyTag {
            document: RefCell::new(None),
            lag: Duration::from_millis(5),
        };
        let policy = FallbackPolicy {
            attempts: 50,
            backoff: RetryPolicy {
                attempts: 50,
                base: Duration::from_millis(1),
                max: Duration::from_millis(20),
            },
            settle: Duration::from_millis(20),
            confirmations: 2,
        };
        let entries: Vec<Value> = (0..8)
            .map(|n| serde_json::to_value(descriptor(n, Some("application/vnd.x"))).unwrap())
            .collect();
        let results = futures_util::future::join_all(
            entries
                .iter()
                .map(|e| add_to_fallback_index(&tag, "t", e, &policy)),
        )
        .await;
        let attempts: Vec<u32> = results.into_iter().map(|r| r.unwrap()).collect();
        assert!(
            attempts.iter().any(|a| *a > 1),
            "the writers raced (some had to retry): {attempts:?}"
        );
        let document = tag.document.borrow().clone().unwrap();
        for n in 0..8 {
            assert!(lists(&document, digest(n).as_ref()), "entry {n} lost");
        }
        assert_eq!(document["manifests"].as_array().unwrap().len(), 8);
        assert_eq!(document["mediaType"], MEDIA_TYPE_IMAGE_INDEX);
    }

    #[tokio::test]
    async fn an_entry_already_listed_is_not_written_again() {
        let entry = serde_json::to_value(descriptor(1, None)).unwrap();
        let existing = with_entry(None, &entry);
        let tag = RacyTag {
            document: RefCell::new(Some(existing.clone())),
            lag: Duration::ZERO,
        };
        let policy = FallbackPolicy {
            settle: Duration::ZERO,
            ..FallbackPolicy::default()
        };
        assert_eq!(
            add_to_fallback_index(&tag, "t", &entry, &policy)
                .await
                .unwrap(),
            1
        );
        assert_eq!(tag.document.borrow().clone().unwrap(), existing);
    }

    /// A tag that another writer keeps overwriting: ferry gives up with an error.
    struct Hostile;
    impl FallbackStore for Hostile {
        async fn read(&self) -> Result<Option<Value>> {
            Ok(None)
        }
        async fn write(&self, _document: Vec<u8>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_tag_that_never_keeps_the_entry_fails_after_the_attempts() {
        let entry = serde_json::to_value(descriptor(1, None)).unwrap();
        let policy = FallbackPolicy {
            attempts: 3,
            backoff: RetryPolicy {
                attempts: 3,
                base: Duration::from_millis(1),
                max: Duration::from_millis(1),
            },
            settle: Duration::ZERO,
            confirmations: 1,
        };
        let err = add_to_fallback_index(&Hostile, "sha256-x", &entry, &policy)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Contended { attempts: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("sha256-x"));
    }

    /// A registry that answers manifest `PUT`s with `codes` in turn (an
    /// empty code: 201), one connection per request. Returns its address
    /// and a counter of the `PUT`s it saw.
    async fn scripted_registry(
        codes: Vec<&'static str>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let puts = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = puts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                let body_len = loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break Some((end + 4, len));
                    }
                };
                let Some((start, len)) = body_len else {
                    continue;
                };
                while request.len() < start + len {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                }
                let index = seen.fetch_add(1, Ordering::SeqCst);
                let code = codes.get(index).copied().unwrap_or("");
                let response = if code.is_empty() {
                    "HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string()
                } else {
                    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#);
                    format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (addr, puts)
    }

    async fn put_through(codes: Vec<&'static str>) -> (Result<Digest>, usize) {
        let (addr, puts) = scripted_registry(codes).await;
        let client = Client::new(crate::ClientOptions {
            plain_http: true,
            ..crate::ClientOptions::default()
        });
        let endpoint = Endpoint {
            registry: addr,
            repository: "r".into(),
        };
        let fast = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        };
        let result = put_manifest_through_blob_races(
            &client,
            &endpoint,
            "v1",
            MEDIA_TYPE_IMAGE_MANIFEST,
            Bytes::from_static(b"{}"),
            &fast,
        )
        .await
        .map(|pushed| pushed.digest);
        (result, puts.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn manifest_puts_outlast_a_blob_being_rewritten() {
        let (result, puts) = put_through(vec!["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"]).await;
        assert_eq!(result.unwrap(), ferry_spec::digest::sha256_digest(b"{}"));
        assert_eq!(puts, 3);

        let (result, puts) = put_through(vec!["DIGEST_INVALID"; 10]).await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("DIGEST_INVALID"), "{err}");
        assert_eq!(
            puts, BLOB_RACE_ATTEMPTS as usize,
            "a missing blob still fails"
        );

        let (result, puts) = put_through(vec!["MANIFEST_INVALID"]).await;
        assert!(result.unwrap_err().to_string().contains("MANIFEST_INVALID"));
        assert_eq!(puts, 1, "other refusals are not retried");
    }
}
