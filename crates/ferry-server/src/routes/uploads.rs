//! Blob uploads: `POST` (session, monolithic, mount), `PATCH`, `PUT`,
//! `GET` status and `DELETE`.

use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::blobs::storage_error;
use super::upload_limits::SessionTracker;
use super::{Query, set_header};
use ferry_spec::oci::Digest;

use crate::error::{ErrorCode, RegistryError, RegistryResult};
use crate::names::{parse_digest, validate_name};
use crate::storage::{ByteStream, Storage, StorageError};

/// `201 Created` for a blob now in the repository.
fn created(name: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    set_header(h, "location", &format!("/v2/{name}/blobs/{digest}"));
    set_header(h, "docker-content-digest", digest.as_ref());
    set_header(h, "content-length", "0");
    response
}

/// `202 Accepted` for a session at `offset` bytes.
fn accepted(name: &str, id: &str, offset: u64, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let h = response.headers_mut();
    set_header(h, "location", &format!("/v2/{name}/blobs/uploads/{id}"));
    set_header(h, "docker-upload-uuid", id);
    // An empty session reports `0-0`, as registries conventionally do.
    set_header(h, "range", &format!("0-{}", offset.saturating_sub(1)));
    set_header(h, "content-length", "0");
    response
}

/// Opens a session counted for `client`; refused when a cap is reached.
async fn open_session(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    name: &str,
    client: IpAddr,
) -> RegistryResult<String> {
    sessions.admit(client)?;
    let id = storage.upload_start(name).await.map_err(storage_error)?;
    if let Err(full) = sessions.register(&id, client) {
        // Another request took the last slot meanwhile.
        let _ = storage.upload_cancel(name, &id).await;
        return Err(full);
    }
    Ok(id)
}

/// `POST /v2/<name>/blobs/uploads/`.
pub async fn start(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    client: IpAddr,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: ByteStream,
) -> RegistryResult<Response> {
    if let Some(mount) = query.get("mount") {
        // A mount that cannot be honoured falls back to a new session.
        if let Ok(digest) = parse_digest(mount) {
            let available = match query.get("from") {
                Some(from) => {
                    validate_name(from).is_ok()
                        && storage
                            .blob_linked(from, &digest)
                            .await
                            .map_err(storage_error)?
                }
                None => storage.blob_known(&digest).await.map_err(storage_error)?,
            };
            if available {
                match storage.blob_link(name, &digest).await {
                    Ok(()) => return Ok(created(name, &digest)),
                    // Linked in `from` but the content is gone: not mountable.
                    Err(StorageError::NotFound) => {}
                    Err(other) => return Err(storage_error(other)),
                }
            }
        }
    }
    if let Some(digest) = query.get("digest") {
        let digest = parse_digest(digest)?;
        check_declared_length(headers)?;
        let id = open_session(storage, sessions, name, client).await?;
        let result = async {
            storage
                .upload_append(name, &id, None, body, sessions.lifetime())
                .await?;
            storage.upload_finish(name, &id, &digest).await
        }
        .await;
        if result.is_err() {
            let _ = storage.upload_cancel(name, &id).await;
        }
        sessions.release(&id);
        result.map_err(storage_error)?;
        return Ok(created(name, &digest));
    }
    let id = open_session(storage, sessions, name, client).await?;
    Ok(accepted(name, &id, 0, StatusCode::ACCEPTED))
}

fn check_declared_length(headers: &HeaderMap) -> RegistryResult<Option<u64>> {
    match headers.get("content-length") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| RegistryError::size_invalid("invalid Content-Length")),
    }
}

/// Parses `Content-Range: <start>-<end>` (an optional `bytes ` prefix is tolerated).
fn content_range(headers: &HeaderMap) -> RegistryResult<Option<(u64, u64)>> {
    let Some(value) = headers.get("content-range") else {
        return Ok(None);
    };
    let invalid = || {
        RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::BlobUploadInvalid,
            "invalid Content-Range",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text
        .strip_prefix("bytes=")
        .or_else(|| text.strip_prefix("bytes "))
        .unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.trim().parse().map_err(|_| invalid())?;
    // `end + 1` is the offset after the chunk: it must exist.
    if end < start || end == u64::MAX {
        return Err(invalid());
    }
    Ok(Some((start, end)))
}

async fn append_checked(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: ByteStream,
) -> RegistryResult<u64> {
    let range = content_range(headers)?;
    if let Some((start, end)) = range
        && let Some(length) = check_declared_length(headers)?
        && length != end - start + 1
    {
        return Err(RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::BlobUploadInvalid,
            "Content-Length does not match Content-Range",
        ));
    }
    let start = range.map(|(start, _)| start);
    match storage
        .upload_append(name, id, start, body, sessions.lifetime())
        .await
    {
        Ok(offset) => {
            if let Some((_, end)) = range
                && offset != end + 1
            {
                return Err(RegistryError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::BlobUploadInvalid,
                    format!(
                        "chunk ended at offset {offset}, Content-Range said {}",
                        end + 1
                    ),
                ));
            }
            Ok(offset)
        }
        Err(error @ (StorageError::NotFound | StorageError::Expired)) => {
            // Gone: it stops counting against its owner.
            sessions.release(id);
            Err(storage_error(error))
        }
        Err(other) => Err(storage_error(other)),
    }
}

/// Fails with `BLOB_UPLOAD_UNKNOWN` unless session `id` of `name` is open
/// (a session found gone stops counting against its owner).
async fn require_session(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    name: &str,
    id: &str,
) -> RegistryResult<()> {
    match storage
        .upload_offset(name, id)
        .await
        .map_err(storage_error)?
    {
        Some(_) => Ok(()),
        None => {
            sessions.release(id);
            Err(RegistryError::upload_unknown())
        }
    }
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: a chunk, or a whole stream.
pub async fn patch(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: ByteStream,
) -> RegistryResult<Response> {
    require_session(storage, sessions, name, id).await?;
    match append_checked(storage, sessions, name, id, headers, body).await {
        Ok(offset) => Ok(accepted(name, id, offset, StatusCode::ACCEPTED)),
        Err(error) if error.status == StatusCode::RANGE_NOT_SATISFIABLE => {
            let offset = storage
                .upload_offset(name, id)
                .await
                .ok()
                .flatten()
                .unwrap_or(0);
            let mut response = error.into_response();
            let h = response.headers_mut();
            set_header(h, "location", &format!("/v2/{name}/blobs/uploads/{id}"));
            set_header(h, "range", &format!("0-{}", offset.saturating_sub(1)));
            Ok(response)
        }
        Err(error) => Err(error),
    }
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: optional last chunk, then close.
pub async fn put(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    name: &str,
    id: &str,
    query: &Query,
    headers: &HeaderMap,
    body: ByteStream,
) -> RegistryResult<Response> {
    require_session(storage, sessions, name, id).await?;
    let digest = query
        .get("digest")
        .ok_or_else(|| RegistryError::digest_invalid("digest query parameter is required"))?;
    let digest = parse_digest(digest)?;
    append_checked(storage, sessions, name, id, headers, body).await?;
    let finished = storage.upload_finish(name, id, &digest).await;
    // Finished, refused for its digest or gone: the session no longer exists.
    if matches!(
        finished,
        Ok(_) | Err(StorageError::DigestMismatch(_) | StorageError::NotFound)
    ) {
        sessions.release(id);
    }
    match finished {
        Ok(_) => Ok(created(name, &digest)),
        Err(StorageError::NotFound) => Err(RegistryError::upload_unknown()),
        Err(other) => Err(storage_error(other)),
    }
}

/// `GET /v2/<name>/blobs/uploads/<id>`: 204 with the received range.
pub async fn status(storage: &dyn Storage, name: &str, id: &str) -> RegistryResult<Response> {
    match storage
        .upload_offset(name, id)
        .await
        .map_err(storage_error)?
    {
        Some(offset) => Ok(accepted(name, id, offset, StatusCode::NO_CONTENT)),
        None => Err(RegistryError::upload_unknown()),
    }
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`.
pub async fn cancel(
    storage: &dyn Storage,
    sessions: &SessionTracker,
    name: &str,
    id: &str,
) -> RegistryResult<Response> {
    if storage
        .upload_cancel(name, id)
        .await
        .map_err(storage_error)?
    {
        sessions.release(id);
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(RegistryError::upload_unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> RegistryResult<Option<(u64, u64)>> {
        let mut headers = HeaderMap::new();
        headers.insert("content-range", value.parse().unwrap());
        content_range(&headers)
    }

    #[test]
    fn content_ranges() {
        assert_eq!(range("0-4").unwrap(), Some((0, 4)));
        assert_eq!(range("bytes 5-9/10").unwrap(), Some((5, 9)));
        assert_eq!(range("bytes=5-9").unwrap(), Some((5, 9)));
        assert!(range("9-5").is_err());
        assert!(range("a-b").is_err());
        // Found by fuzzing: the end offset `end + 1` overflowed (a panic in
        // debug builds, a wrapped length check in release).
        let error = range("0-18446744073709551615").unwrap_err();
        assert_eq!(error.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert!(range("18446744073709551614-18446744073709551614").is_ok());
    }
}
