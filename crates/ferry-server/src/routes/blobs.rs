//! `HEAD|GET|DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::set_header;
use crate::error::{ErrorCode, RegistryError, RegistryResult};
use crate::names::parse_digest;
use crate::storage::{Storage, StorageError};

/// Streams a blob, honouring a single `Range`.
pub async fn get(
    storage: &dyn Storage,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head_only: bool,
) -> RegistryResult<Response> {
    let digest = parse_digest(digest)?;
    let Some(blob) = storage
        .blob_open(name, &digest)
        .await
        .map_err(storage_error)?
    else {
        return Err(RegistryError::blob_unknown(&digest));
    };
    let size = blob.size();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_range(value, size) {
            Ok(range) => Some(range),
            Err(()) => {
                let mut response = RegistryError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::BlobUnknown,
                    format!("range {value:?} not satisfiable for a {size}-byte blob"),
                )
                .into_response();
                set_header(
                    response.headers_mut(),
                    "content-range",
                    &format!("bytes */{size}"),
                );
                return Ok(response);
            }
        },
        None => None,
    };
    let (status, start, len) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head_only {
        Body::empty()
    } else {
        Body::from_stream(blob.read(start, len).await?)
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    set_header(h, "content-length", &len.to_string());
    set_header(h, "content-type", "application/octet-stream");
    set_header(h, "docker-content-digest", digest.as_ref());
    set_header(h, "accept-ranges", "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(
            h,
            "content-range",
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(response)
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` into an inclusive range.
fn parse_range(value: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(()); // multiple ranges are not served
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().map_err(|_| ())?;
        if suffix == 0 || size == 0 {
            return Err(());
        }
        return Ok((size.saturating_sub(suffix), size - 1));
    }
    let start: u64 = first.parse().map_err(|_| ())?;
    if start >= size {
        return Err(());
    }
    let end = if last.is_empty() {
        size - 1
    } else {
        let end: u64 = last.parse().map_err(|_| ())?;
        if end < start {
            return Err(());
        }
        end.min(size - 1)
    };
    Ok((start, end))
}

/// Unlinks a blob from the repository.
pub async fn delete(storage: &dyn Storage, name: &str, digest: &str) -> RegistryResult<Response> {
    let digest = parse_digest(digest)?;
    if storage
        .blob_unlink(name, &digest)
        .await
        .map_err(storage_error)?
    {
        let mut response = StatusCode::ACCEPTED.into_response();
        set_header(response.headers_mut(), "content-length", "0");
        Ok(response)
    } else {
        Err(RegistryError::blob_unknown(&digest))
    }
}

/// Maps storage failures to registry errors.
pub fn storage_error(error: StorageError) -> RegistryError {
    match error {
        StorageError::NotFound => RegistryError::upload_unknown(),
        StorageError::Expired => RegistryError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadUnknown,
            "the upload session expired: start a new one",
        ),
        StorageError::DigestMismatch(actual) => {
            RegistryError::digest_invalid(format!("content digest is {actual}"))
        }
        StorageError::Body(why) => RegistryError::upload_invalid(why.to_string()),
        StorageError::OutOfOrder(offset) => RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::BlobUploadInvalid,
            format!("chunk out of order: upload is at offset {offset}"),
        ),
        StorageError::Io(e) => RegistryError::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=-200", 100), Ok((0, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Ok((50, 99)));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=9-3", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
        assert!(parse_range("bytes=0-1,3-4", 100).is_err());
    }
}
