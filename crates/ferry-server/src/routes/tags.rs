//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, paginated with `n` and `last`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::blobs::storage_error;
use super::{Query, set_header};
use crate::error::{ErrorCode, RegistryError, RegistryResult};
use crate::storage::Storage;

/// Applies `last` (exclusive start) and `n` (page size) to a sorted list;
/// returns the page and whether more follow.
fn paginate(items: Vec<String>, query: &Query) -> RegistryResult<(Vec<String>, bool)> {
    let mut items: Vec<String> = match query.get("last") {
        Some(last) => items.into_iter().filter(|t| t.as_str() > last).collect(),
        None => items,
    };
    let Some(n) = query.get("n") else {
        return Ok((items, false));
    };
    // The spec has no code for a bad page size: the request is unsupported.
    let n: usize = n.parse().map_err(|_| {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Unsupported,
            format!("invalid page size n={n:?}: a non-negative integer is expected"),
        )
    })?;
    let more = items.len() > n;
    items.truncate(n);
    Ok((items, more))
}

/// `n=..&last=..` for the next page, encoded: the client's `n` is echoed
/// into a header only as escaped query text.
fn next_query(n: &str, last: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("n", n)
        .append_pair("last", last)
        .finish()
}

fn page_response(body: serde_json::Value, next: Option<String>) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let h = response.headers_mut();
    set_header(h, "content-type", "application/json");
    if let Some(next) = next {
        set_header(h, "link", &format!("<{next}>; rel=\"next\""));
    }
    response
}

/// Tags of one repository.
pub async fn list(storage: &dyn Storage, name: &str, query: &Query) -> RegistryResult<Response> {
    let tags = storage
        .tags(name)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| RegistryError::name_unknown(name))?;
    let (page, more) = paginate(tags, query)?;
    let next = match (more, page.last(), query.get("n")) {
        (true, Some(last), Some(n)) => {
            Some(format!("/v2/{name}/tags/list?{}", next_query(n, last)))
        }
        _ => None,
    };
    Ok(page_response(
        serde_json::json!({"name": name, "tags": page}),
        next,
    ))
}

/// Every repository.
pub async fn catalog(storage: &dyn Storage, query: &Query) -> RegistryResult<Response> {
    let repositories = storage.repositories().await.map_err(storage_error)?;
    let (page, more) = paginate(repositories, query)?;
    let next = match (more, page.last(), query.get("n")) {
        (true, Some(last), Some(n)) => Some(format!("/v2/_catalog?{}", next_query(n, last))),
        _ => None,
    };
    Ok(page_response(
        serde_json::json!({"repositories": page}),
        next,
    ))
}
