//! Moving artifacts between the local store and a registry.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use ferry_spec::Reference;
use ferry_spec::oci::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
use ferry_store::Store;

use crate::api::{FetchedManifest, hash_prefix};
use crate::client::{Access, Client, Endpoint, Request, status_error};
use crate::error::{ClientError, Result, io_error};
use crate::platform::{Platform, choose};
use crate::progress::TransferProgress;

/// Default number of blobs moved at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Normalized reference.
    pub reference: String,
    /// Manifest digest (the platform's manifest when the tag was an index).
    pub digest: Digest,
    /// Blobs downloaded (not already present).
    pub downloaded: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// What a push sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Destination reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub skipped: usize,
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// The tag or digest to ask a registry for.
pub fn reference_tail(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// Resolves a reference to an image manifest, choosing a platform from an index.
pub async fn resolve_manifest(
    client: &Client,
    endpoint: &Endpoint,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<(FetchedManifest, ImageManifest)> {
    let mut fetched = client
        .manifest(endpoint, &reference_tail(reference))
        .await?;
    if is_index(&fetched.media_type) {
        let index: ImageIndex =
            serde_json::from_slice(&fetched.bytes).map_err(|e| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("index: {e}"),
            })?;
        let wanted = platform.cloned().unwrap_or_else(Platform::host);
        let chosen = choose(index.manifests(), &wanted).ok_or_else(|| ClientError::NotFound {
            what: format!("{} for platform {wanted}", reference.whole()),
        })?;
        fetched = client.manifest(endpoint, chosen.digest().as_ref()).await?;
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&fetched.bytes).map_err(|e| ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: format!("manifest: {e}"),
        })?;
    Ok((fetched, manifest))
}

/// Pulls `reference` into the store: blobs first (verified), then the
/// manifest, then the name. An interrupted pull resumes where it stopped.
pub async fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    platform: Option<&Platform>,
    concurrency: usize,
    progress: &dyn TransferProgress,
) -> Result<Pulled> {
    let endpoints = pull_endpoints(client, reference);
    let (source, fetched, manifest) = resolve_from(client, &endpoints, reference, platform).await?;
    // Blobs come from where the manifest came from, falling back in order.
    let endpoints = &endpoints[source..];
    let _ingest = store.lock_ingest()?;
    let mut blobs: Vec<Descriptor> = vec![manifest.config().clone()];
    blobs.extend(manifest.layers().iter().cloned());
    blobs.retain(|d| !is_foreign(d));
    let results: Vec<(bool, u64)> = stream::iter(blobs.iter())
        .map(|descriptor| download_blob_from(client, endpoints, store, descriptor, progress))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let stored = store.put_document(&fetched.bytes)?;
    if stored != fetched.digest {
        return Err(ClientError::Integrity {
            what: reference.whole(),
            reason: format!("manifest stored as {stored}, fetched as {}", fetched.digest),
        });
    }
    let mut descriptor = Descriptor::new(
        MediaType::from(fetched.media_type.as_str()),
        fetched.bytes.len() as u64,
        fetched.digest.clone(),
    );
    descriptor.set_artifact_type(manifest.artifact_type().clone());
    store.set_reference(&local_name(reference), &descriptor)?;
    Ok(Pulled {
        reference: local_name(reference).whole(),
        digest: fetched.digest,
        downloaded: results.iter().filter(|(d, _)| *d).count(),
        bytes: results.iter().map(|(_, b)| *b).sum(),
    })
}

/// Where a pull looks, in order: the mirrors `registries.toml` names for the
/// reference's registry, then the registry itself (always last).
pub fn pull_endpoints(client: &Client, reference: &Reference) -> Vec<Endpoint> {
    let origin = Endpoint::of(reference);
    let mut endpoints: Vec<Endpoint> = client
        .options()
        .registries
        .entry_for(&origin.registry, &origin.repository)
        .map(|entry| {
            entry
                .mirrors
                .iter()
                .map(|mirror| mirror.trim_end_matches('/'))
                .filter(|mirror| !mirror.is_empty() && *mirror != origin.registry)
                .map(|mirror| Endpoint {
                    registry: mirror.to_string(),
                    repository: origin.repository.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    endpoints.push(origin);
    endpoints
}

/// Failures no other source can fix: the local store and configuration are
/// the same whichever registry answers.
fn is_local(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Store(_) | ClientError::Io { .. } | ClientError::Config(_)
    )
}

/// Resolves the manifest from the first endpoint that has it; returns that
/// endpoint's position. The last endpoint's error is the one reported.
async fn resolve_from(
    client: &Client,
    endpoints: &[Endpoint],
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<(usize, FetchedManifest, ImageManifest)> {
    let Some((origin, mirrors)) = endpoints.split_last() else {
        return Err(ClientError::Config("no registry to pull from".into()));
    };
    for (position, mirror) in mirrors.iter().enumerate() {
        match resolve_manifest(client, mirror, reference, platform).await {
            Ok((fetched, manifest)) => return Ok((position, fetched, manifest)),
            Err(error) if !is_local(&error) => {
                tracing::warn!(
                    "mirror {}: {error}; trying the next source",
                    mirror.registry
                );
            }
            Err(error) => return Err(error),
        }
    }
    let (fetched, manifest) = resolve_manifest(client, origin, reference, platform).await?;
    Ok((mirrors.len(), fetched, manifest))
}

/// [`download_blob`] from the first endpoint that serves it intact.
async fn download_blob_from(
    client: &Client,
    endpoints: &[Endpoint],
    store: &Store,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<(bool, u64)> {
    let Some((origin, mirrors)) = endpoints.split_last() else {
        return Err(ClientError::Config("no registry to pull from".into()));
    };
    for mirror in mirrors {
        match download_blob(client, mirror, store, descriptor, progress).await {
            Ok(done) => return Ok(done),
            Err(error) if !is_local(&error) => {
                tracing::warn!(
                    "mirror {}: {error}; trying the next source",
                    mirror.registry
                );
            }
            Err(error) => return Err(error),
        }
    }
    download_blob(client, origin, store, descriptor, progress).await
}

/// The name a pulled artifact gets in the store: the reference without a digest
/// when it has a tag, else as given.
fn local_name(reference: &Reference) -> Reference {
    match (reference.tag(), reference.digest()) {
        (Some(tag), Some(_)) => Reference::with_tag(
            reference.registry().to_string(),
            reference.repository().to_string(),
            tag.to_string(),
        ),
        _ => reference.clone(),
    }
}

/// Non-distributable layers are never pulled.
pub(crate) fn is_foreign(descriptor: &Descriptor) -> bool {
    let media_type = descriptor.media_type().to_string();
    media_type.contains(".nondistributable.") || media_type.contains(".foreign.")
}

/// Downloads one blob into the store unless present. Returns whether bytes
/// were fetched, and how many.
pub async fn download_blob(
    client: &Client,
    endpoint: &Endpoint,
    store: &Store,
    descriptor: &Descriptor,
    progress: &dyn TransferProgress,
) -> Result<(bool, u64)> {
    let digest = descriptor.digest();
    let size = descriptor.size();
    if store.has_blob(digest) {
        progress.skipped(digest, size);
        return Ok((false, 0));
    }
    if !digest.to_string().starts_with("sha256:") {
        return Err(ClientError::Integrity {
            what: digest.to_string(),
            reason: "only sha256 blobs can be stored locally".into(),
        });
    }
    let partial = store.partial_path(digest);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(io_error("opening", partial.display()))?;
    // Another process downloading the same blob holds this lock; wait for it.
    lock_partial(&file, &partial).await?;
    if store.has_blob(digest) {
        let _ = std::fs::remove_file(&partial);
        progress.skipped(digest, size);
        return Ok((false, 0));
    }
    let mut offset = file
        .metadata()
        .map_err(io_error("reading", partial.display()))?
        .len();
    if offset > size {
        file.set_len(0)
            .map_err(io_error("truncating", partial.display()))?;
        offset = 0;
    }
    let mut hasher = if offset > 0 {
        hash_prefix(&partial, offset).map_err(io_error("reading", partial.display()))?
    } else {
        Sha256::new()
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(io_error("seeking", partial.display()))?;
    progress.blob_started(digest, size);
    if offset > 0 {
        progress.advanced(digest, offset);
    }
    let policy = client.options().retry;
    let mut attempt = 0;
    let fetched_before = offset;
    let mut furthest = offset;
    while offset < size || size == 0 {
        attempt += 1;
        let mut request = Request::new(
            Method::GET,
            format!("/v2/{}/blobs/{digest}", endpoint.repository),
            Access::Pull,
            format!("downloading {digest}"),
        );
        if offset > 0 {
            request = request.header("range", &format!("bytes={offset}-"));
        }
        let response = client.send(endpoint, &request).await?;
        // Where the body starts: a 206 says so in Content-Range.
        let served_from = match response.status() {
            StatusCode::PARTIAL_CONTENT => content_range_start(&response),
            _ => Some(0),
        };
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT
                if offset > 0 && served_from == Some(0) =>
            {
                // The registry ignored the range: start over.
                file.set_len(0)
                    .map_err(io_error("truncating", partial.display()))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(io_error("seeking", partial.display()))?;
                offset = 0;
                hasher = Sha256::new();
            }
            StatusCode::PARTIAL_CONTENT if served_from.is_some_and(|start| start != offset) => {
                return Err(ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!(
                        "asked for {digest} from byte {offset}, got a range from byte {}",
                        served_from.unwrap_or_default()
                    ),
                });
            }
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            StatusCode::NOT_FOUND => {
                return Err(ClientError::NotFound {
                    what: format!(
                        "blob {digest} in {}/{}",
                        endpoint.registry, endpoint.repository
                    ),
                });
            }
            _ => return Err(status_error(endpoint, &request.action, response).await),
        }
        let mut body = response.bytes_stream();
        let mut failed = None;
        // Network chunks are small; batch them into large writes.
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, &file);
        let mut written_back = offset;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            if offset + chunk.len() as u64 > size {
                drop(writer);
                drop(file);
                let _ = std::fs::remove_file(&partial);
                return Err(ClientError::Integrity {
                    what: format!("blob {digest}"),
                    reason: format!(
                        "registry sent more than the {size} bytes the manifest declares"
                    ),
                });
            }
            writer
                .write_all(&chunk)
                .map_err(io_error("writing", partial.display()))?;
            hasher.update(&chunk);
            offset += chunk.len() as u64;
            progress.advanced(digest, chunk.len() as u64);
            if offset - written_back >= WRITEBACK_STEP {
                writer
                    .flush()
                    .map_err(io_error("writing", partial.display()))?;
                start_writeback(writer.get_ref(), written_back, offset - written_back);
                written_back = offset;
            }
        }
        writer
            .flush()
            .map_err(io_error("writing", partial.display()))?;
        drop(writer);
        if offset > furthest {
            // The retry budget is for failures in a row: an answer that took
            // the download further than ever before starts it over.
            furthest = offset;
            attempt = 0;
        }
        if let Some(reason) = failed {
            if attempt >= policy.attempts {
                return Err(ClientError::Unreachable {
                    registry: endpoint.registry.clone(),
                    reason: format!("download of {digest} interrupted at byte {offset}: {reason}"),
                });
            }
            tracing::warn!(
                "download of {digest} interrupted at byte {offset} ({reason}); resuming"
            );
            tokio::time::sleep(policy.delay(attempt, None)).await;
            continue;
        }
        if offset < size {
            if attempt >= policy.attempts {
                return Err(ClientError::Integrity {
                    what: format!("blob {digest}"),
                    reason: format!("registry sent {offset} of {size} bytes"),
                });
            }
            continue; // a short body: resume from where it stopped
        }
        break;
    }
    let actual = ferry_spec::digest::digest_from_hasher(hasher);
    if &actual != digest {
        drop(file);
        let _ = std::fs::remove_file(&partial);
        return Err(ClientError::Integrity {
            what: format!("blob {digest}"),
            reason: format!("downloaded content hashes to {actual}"),
        });
    }
    file.flush()
        .map_err(io_error("writing", partial.display()))?;
    store.install_verified(&partial, digest)?;
    progress.blob_done(digest);
    Ok((true, offset - fetched_before))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn content_range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    value
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Bytes between two requests to start writing a download back to disk.
const WRITEBACK_STEP: u64 = 64 << 20;

/// Asks the kernel to start writing a range to disk now, without waiting,
/// so the fsync before the blob is installed finds little left to do and
/// dirty pages do not pile up for large models.
fn start_writeback(file: &File, start: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own; failure is harmless
    // (the final fsync still makes the data durable).
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            start as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

async fn lock_partial(file: &File, path: &Path) -> Result<()> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error("locking", path.display())(e));
            }
        }
    }
}

/// Pushes an artifact from the store to `destination`. Blobs the registry
/// has are skipped; with `mount_from`, blobs are mounted from that
/// repository of the same registry instead of uploaded.
pub async fn push(
    client: &Client,
    store: &Store,
    local: &str,
    destination: &Reference,
    concurrency: usize,
    progress: &dyn TransferProgress,
) -> Result<Pushed> {
    let resolved = store.resolve(local)?;
    let digest = resolved.descriptor.digest().clone();
    let bytes = Bytes::from(store.read_document(&digest)?);
    let media_type = resolved.descriptor.media_type().to_string();
    let endpoint = Endpoint::of(destination);
    let tail = reference_tail(destination);
    // An unchanged artifact: the registry already has this exact manifest.
    if client
        .manifest_digest(&endpoint, &tail, Access::Push)
        .await?
        .is_some_and(|d| d == digest.to_string())
    {
        return Ok(Pushed {
            reference: destination.whole(),
            digest,
            uploaded: 0,
            skipped: 0,
        });
    }
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid {
            registry: "local store".into(),
            reason: format!("manifest {digest}: {e}"),
        })?;
    let mut blobs: Vec<Descriptor> = vec![manifest.config().clone()];
    blobs.extend(manifest.layers().iter().cloned());
    blobs.retain(|d| !is_foreign(d));
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|d| seen.insert(d.digest().clone()));
    let mount_from = same_registry_source(store, &resolved, destination);
    let uploaded: Vec<bool> = stream::iter(blobs.iter())
        .map(|descriptor| {
            let path = store.blob_path(descriptor.digest());
            let endpoint = endpoint.clone();
            let mount_from = mount_from.clone();
            async move {
                client
                    .push_blob_file(
                        &endpoint,
                        &path,
                        descriptor,
                        mount_from.as_deref(),
                        progress,
                    )
                    .await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    client
        .put_manifest(&endpoint, &tail, &media_type, bytes)
        .await?;
    Ok(Pushed {
        reference: destination.whole(),
        digest,
        uploaded: uploaded.iter().filter(|u| **u).count(),
        skipped: uploaded.iter().filter(|u| !**u).count(),
    })
}

/// When the local name of an artifact is another repository of the
/// destination's registry, its blobs can be mounted from there.
fn same_registry_source(
    _store: &Store,
    resolved: &ferry_store::index::Resolved,
    destination: &Reference,
) -> Option<String> {
    let name = resolved.reference.as_deref()?;
    let source: Reference = name.parse().ok()?;
    (source.registry() == destination.registry() && source.repository() != destination.repository())
        .then(|| source.repository().to_string())
}

/// Pushes only a manifest document (blobs must already be there).
pub async fn push_manifest_bytes(
    client: &Client,
    endpoint: &Endpoint,
    reference: &str,
    media_type: &str,
    bytes: Bytes,
) -> Result<crate::api::PushedManifest> {
    client
        .put_manifest(endpoint, reference, media_type, bytes)
        .await
}
