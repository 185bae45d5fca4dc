//! Manifests by tag or digest, and the referrers API.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::Digest;
use futures_util::StreamExt;
use serde_json::Value;

use super::blobs::storage_error;
use super::manifest_rules::{self, ManifestKind, declared_kind};
use super::{Query, set_header};
use crate::error::{ErrorCode, RegistryError, RegistryResult};
use crate::names::{BadReference, ManifestRef, parse_digest};
use crate::storage::{ByteStream, ReferrerDescriptor, Storage, StoredManifest};
use ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX as INDEX_MEDIA_TYPE;

async fn resolve(
    storage: &dyn Storage,
    name: &str,
    reference: &ManifestRef,
) -> RegistryResult<StoredManifest> {
    let digest = match reference {
        ManifestRef::Digest(digest) => digest.clone(),
        ManifestRef::Tag(tag) => storage
            .tag_get(name, tag)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| RegistryError::manifest_unknown(tag))?,
    };
    storage
        .manifest_get(name, &digest)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| RegistryError::manifest_unknown(&digest))
}

/// `GET|HEAD /v2/<name>/manifests/<reference>`.
pub async fn get(
    storage: &dyn Storage,
    name: &str,
    reference: &str,
    head_only: bool,
) -> RegistryResult<Response> {
    // A tag that cannot name anything is simply unknown here.
    let reference = ManifestRef::parse(reference).map_err(|bad| match bad {
        BadReference::Tag(_) => RegistryError::manifest_unknown(reference),
        BadReference::Digest(error) => error,
    })?;
    let manifest = resolve(storage, name, &reference).await?;
    let len = manifest.bytes.len();
    let content_type = served_media_type(&manifest);
    let body = if head_only {
        Body::empty()
    } else {
        Body::from(manifest.bytes)
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    set_header(h, "content-type", content_type);
    set_header(h, "content-length", &len.to_string());
    set_header(h, "docker-content-digest", manifest.digest.as_ref());
    Ok(response)
}

/// The Content-Type a stored manifest is served with: always a manifest
/// media type (one stored before types were checked falls back to its
/// body's, else to plain bytes), never what a pusher chose.
fn served_media_type(manifest: &StoredManifest) -> &'static str {
    ManifestKind::from_media_type(&manifest.media_type)
        .or_else(|| {
            serde_json::from_slice::<Value>(&manifest.bytes)
                .ok()?
                .get("mediaType")?
                .as_str()
                .and_then(ManifestKind::from_media_type)
        })
        .map_or("application/octet-stream", ManifestKind::media_type)
}

fn too_large(limit: usize) -> RegistryError {
    RegistryError::too_large(format!("manifest is larger than the {limit}-byte limit"))
}

/// Reads a body of at most `limit` bytes (the body fails by itself when the
/// client stalls).
async fn read_limited(
    mut body: ByteStream,
    limit: usize,
    declared: Option<u64>,
) -> RegistryResult<Bytes> {
    // Announced far over the limit: not worth reading at all.
    if declared.is_some_and(|n| n > limit.saturating_mul(2) as u64) {
        return Err(too_large(limit));
    }
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| RegistryError::manifest_invalid(format!("reading body: {e}")))?;
        if buffer.len() + chunk.len() > limit {
            // Read and drop the rest (up to twice the limit) so the client
            // is still listening when the 413 comes, instead of having its
            // connection reset mid-body.
            let mut seen = buffer.len() + chunk.len();
            while seen <= limit.saturating_mul(2) {
                match body.next().await {
                    Some(Ok(chunk)) => seen += chunk.len(),
                    _ => break,
                }
            }
            return Err(too_large(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

fn descriptor_digest(descriptor: &Value) -> RegistryResult<Digest> {
    let digest = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| RegistryError::manifest_invalid("descriptor without digest"))?;
    parse_digest(digest)
        .map_err(|_| RegistryError::manifest_invalid(format!("invalid digest {digest:?}")))
}

/// `PUT /v2/<name>/manifests/<reference>`.
pub async fn put(
    storage: &dyn Storage,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: ByteStream,
    limit: usize,
    deadline: Duration,
) -> RegistryResult<Response> {
    let reference = ManifestRef::parse(reference)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // A manifest is small: however it trickles in, it has one deadline.
    let bytes = tokio::time::timeout(deadline, read_limited(body, limit, declared))
        .await
        .map_err(|_| {
            RegistryError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::ManifestInvalid,
                format!("the manifest did not arrive within {deadline:?}"),
            )
        })??;
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::manifest_invalid(format!("manifest is not JSON: {e}")))?;
    if !document.is_object() {
        return Err(RegistryError::manifest_invalid(
            "manifest is not a JSON object",
        ));
    }
    let kind = declared_kind(headers, &document)?;
    let references = manifest_rules::validate(kind, &document)?;
    let media_type = kind.media_type().to_string();
    let digest = match &reference {
        ManifestRef::Digest(expected) => {
            // `parse_digest` admitted only algorithms the hasher computes.
            let hasher = DigestHasher::for_digest(expected)
                .map_err(|e| RegistryError::unsupported(e.to_string()))?;
            let actual = digest_of(&bytes, hasher);
            if &actual != expected {
                return Err(RegistryError::digest_invalid(format!(
                    "manifest digest is {actual}, not {expected}"
                )));
            }
            actual
        }
        ManifestRef::Tag(_) => digest_of(&bytes, DigestHasher::sha256()),
    };
    manifest_rules::check_exist(storage, name, &references).await?;
    // Validated before anything is stored: a refused manifest leaves no trace.
    let subject_digest = document
        .get("subject")
        .filter(|s| !s.is_null())
        .map(descriptor_digest)
        .transpose()?;
    let size = bytes.len() as u64;
    let manifest = StoredManifest {
        bytes,
        media_type: media_type.clone(),
        digest: digest.clone(),
    };
    let tag = match &reference {
        ManifestRef::Tag(tag) => Some(tag.as_str()),
        ManifestRef::Digest(_) => None,
    };
    storage
        .manifest_put(name, &manifest, tag)
        .await
        .map_err(storage_error)?;
    let mut response = StatusCode::CREATED.into_response();
    if let Some(subject_digest) = subject_digest {
        let descriptor = referrer_descriptor(&document, media_type, &digest, size);
        storage
            .referrer_add(name, &subject_digest, &descriptor)
            .await
            .map_err(storage_error)?;
        set_header(
            response.headers_mut(),
            "oci-subject",
            subject_digest.as_ref(),
        );
    }
    let h = response.headers_mut();
    set_header(h, "location", &format!("/v2/{name}/manifests/{digest}"));
    set_header(h, "docker-content-digest", digest.as_ref());
    set_header(h, "content-length", "0");
    Ok(response)
}

/// The digest of a whole manifest body.
fn digest_of(bytes: &[u8], mut hasher: DigestHasher) -> Digest {
    hasher.update(bytes);
    hasher.finish()
}

fn referrer_descriptor(
    document: &Value,
    media_type: String,
    digest: &Digest,
    size: u64,
) -> ReferrerDescriptor {
    let artifact_type = document
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| {
            document
                .get("config")
                .and_then(|c| c.get("mediaType"))
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    ReferrerDescriptor {
        media_type,
        digest: digest.clone(),
        size,
        artifact_type,
        annotations: document
            .get("annotations")
            .and_then(Value::as_object)
            .cloned(),
    }
}

/// `DELETE /v2/<name>/manifests/<reference>`: by digest removes the
/// manifest and its tags; by tag removes only the tag.
pub async fn delete(
    storage: &dyn Storage,
    name: &str,
    reference: &str,
) -> RegistryResult<Response> {
    match ManifestRef::parse(reference)? {
        ManifestRef::Tag(tag) => {
            if !storage
                .tag_delete(name, &tag)
                .await
                .map_err(storage_error)?
            {
                return Err(RegistryError::manifest_unknown(&tag));
            }
        }
        ManifestRef::Digest(digest) => {
            let manifest = storage
                .manifest_get(name, &digest)
                .await
                .map_err(storage_error)?
                .ok_or_else(|| RegistryError::manifest_unknown(&digest))?;
            storage
                .manifest_delete(name, &digest)
                .await
                .map_err(storage_error)?;
            let subject = serde_json::from_slice::<Value>(&manifest.bytes)
                .ok()
                .and_then(|d| d.get("subject").cloned());
            if let Some(subject) = subject
                && let Ok(subject_digest) = descriptor_digest(&subject)
            {
                storage
                    .referrer_remove(name, &subject_digest, &digest)
                    .await
                    .map_err(storage_error)?;
            }
        }
    }
    let mut response = StatusCode::ACCEPTED.into_response();
    set_header(response.headers_mut(), "content-length", "0");
    Ok(response)
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: always an index.
pub async fn referrers(
    storage: &dyn Storage,
    name: &str,
    digest: &str,
    query: &Query,
) -> RegistryResult<Response> {
    let subject = parse_digest(digest)?;
    let mut descriptors = storage
        .referrers(name, &subject)
        .await
        .map_err(storage_error)?;
    let filter = query.get("artifactType").filter(|t| !t.is_empty());
    if let Some(wanted) = filter {
        descriptors.retain(|d| d.artifact_type.as_deref() == Some(wanted));
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": descriptors,
    })
    .to_string();
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    set_header(h, "content-type", INDEX_MEDIA_TYPE);
    if filter.is_some() {
        set_header(h, "oci-filters-applied", "artifactType");
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(media_type: &str, body: &str) -> StoredManifest {
        StoredManifest {
            bytes: Bytes::from(body.to_string()),
            media_type: media_type.to_string(),
            digest: parse_digest(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        }
    }

    #[test]
    fn manifests_are_served_only_as_manifest_types() {
        let index = ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX;
        assert_eq!(served_media_type(&stored(index, "{}")), index);
        // Stored by an older server with the pusher's type: the body's
        // type if it names one, else plain bytes.
        let body = format!(r#"{{"mediaType":"{index}"}}"#);
        assert_eq!(served_media_type(&stored("text/html", &body)), index);
        assert_eq!(
            served_media_type(&stored("text/html", "<script></script>")),
            "application/octet-stream"
        );
        assert_eq!(
            served_media_type(&stored("text/html", r#"{"mediaType":"text/html"}"#)),
            "application/octet-stream"
        );
    }
}
