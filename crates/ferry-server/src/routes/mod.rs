//! Request dispatch: repository names contain slashes, so the path is
//! parsed here rather than by a pattern router.

mod blobs;
mod manifest_rules;
mod manifests;
mod tags;
mod upload_limits;
mod uploads;

pub use upload_limits::{SessionTracker, UploadLimits};

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};

use crate::auth::Access;
use crate::error::{RegistryError, RegistryResult};
use crate::names::validate_name;
use crate::storage::{ByteStream, Storage};

/// Shared state of every request.
pub struct AppState {
    /// The storage backend.
    pub storage: Arc<dyn Storage>,
    /// Who may do what.
    pub access: Access,
    /// Largest manifest accepted.
    pub max_manifest_bytes: usize,
    /// A request body that stalls this long fails.
    pub idle_timeout: Duration,
    /// A whole manifest body must arrive within this.
    pub manifest_timeout: Duration,
    /// Open upload sessions, by client.
    pub sessions: Arc<SessionTracker>,
}

/// A parsed registry path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Tags(String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Manifest(String, String),
    Referrers(String, String),
}

fn parse_route(path: &str) -> Option<Route> {
    if path == "/v2/" || path == "/v2" {
        return Some(Route::Base);
    }
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_string()));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart(name.to_string()));
    }
    // The marker nearest the end wins: a repository may itself contain a
    // component called "blobs" or "manifests", the final segment may not
    // contain a slash.
    let markers = ["/blobs/uploads/", "/blobs/", "/manifests/", "/referrers/"];
    let (marker, index) = markers
        .iter()
        .filter_map(|m| rest.rfind(m).map(|i| (*m, i)))
        .filter(|(m, i)| !rest[i + m.len()..].contains('/'))
        .max_by_key(|(m, i)| (*i, m.len()))?;
    let name = rest[..index].to_string();
    let tail = rest[index + marker.len()..].to_string();
    Some(match marker {
        "/blobs/uploads/" => Route::Upload(name, tail),
        "/blobs/" => Route::Blob(name, tail),
        "/manifests/" => Route::Manifest(name, tail),
        _ => Route::Referrers(name, tail),
    })
}

/// The single entry point for every request.
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    match handle(&state, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%method, %path, %query, code = ?error.code, "request failed");
            error.into_response()
        }
    }
}

async fn handle(state: &AppState, request: Request<Body>) -> RegistryResult<Response> {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let route = parse_route(parts.uri.path()).ok_or_else(RegistryError::no_such_endpoint)?;
    // Without connection info (the router called directly) all callers
    // share one address.
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| {
            client_key(info.0.ip())
        });
    state.access.check(&parts.headers, &method, client).await?;
    let query = Query::parse(parts.uri.query().unwrap_or(""));
    let headers = parts.headers;
    let body = with_idle_timeout(
        Box::pin(body.into_data_stream().map_err(io::Error::other)),
        state.idle_timeout,
    );
    let s = &*state.storage;
    let sessions = &*state.sessions;
    match route {
        Route::Base => Ok(base()),
        Route::Catalog => tags::catalog(s, &query).await,
        Route::Tags(name) => {
            validate_name(&name)?;
            tags::list(s, &name, &query).await
        }
        Route::Blob(name, digest) => {
            validate_name(&name)?;
            match method {
                Method::GET | Method::HEAD => {
                    blobs::get(s, &name, &digest, &headers, method == Method::HEAD).await
                }
                Method::DELETE => blobs::delete(s, &name, &digest).await,
                _ => Err(method_not_allowed()),
            }
        }
        Route::UploadStart(name) => {
            validate_name(&name)?;
            match method {
                Method::POST => {
                    uploads::start(s, sessions, client, &name, &query, &headers, body).await
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::Upload(name, id) => {
            validate_name(&name)?;
            match method {
                Method::PATCH => uploads::patch(s, sessions, &name, &id, &headers, body).await,
                Method::PUT => uploads::put(s, sessions, &name, &id, &query, &headers, body).await,
                Method::GET => uploads::status(s, &name, &id).await,
                Method::DELETE => uploads::cancel(s, sessions, &name, &id).await,
                _ => Err(method_not_allowed()),
            }
        }
        Route::Manifest(name, reference) => {
            validate_name(&name)?;
            match method {
                Method::GET | Method::HEAD => {
                    manifests::get(s, &name, &reference, method == Method::HEAD).await
                }
                Method::PUT => {
                    manifests::put(
                        s,
                        &name,
                        &reference,
                        &headers,
                        body,
                        state.max_manifest_bytes,
                        state.manifest_timeout,
                    )
                    .await
                }
                Method::DELETE => manifests::delete(s, &name, &reference).await,
                _ => Err(method_not_allowed()),
            }
        }
        Route::Referrers(name, digest) => {
            validate_name(&name)?;
            match method {
                Method::GET => manifests::referrers(s, &name, &digest, &query).await,
                _ => Err(method_not_allowed()),
            }
        }
    }
}

/// The address a client's limits are counted by: an IPv6 client owns a
/// whole /64 (it can pick any address in it), an IPv4-mapped one is IPv4.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// A body that fails with `TimedOut` when no bytes arrive for `idle`, and
/// ends after its first error: a stalled client cannot hold a request (and
/// an upload session's lock) forever.
fn with_idle_timeout(body: ByteStream, idle: Duration) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some(body),
        move |body| async move {
            let mut body = body?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(error))) => Some((Err(error), None)),
                Ok(None) => None,
                Err(_) => {
                    let stalled = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("client sent no data for {idle:?}"),
                    );
                    Some((Err(stalled), None))
                }
            }
        },
    ))
}

fn base() -> Response {
    let mut response = (StatusCode::OK, "{}").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn method_not_allowed() -> RegistryError {
    RegistryError::unsupported("method not allowed on this endpoint")
}

/// Query parameters, decoded.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `application/x-www-form-urlencoded` pairs; invalid escapes
    /// and UTF-8 are kept or replaced, never sliced.
    fn parse(query: &str) -> Query {
        Query(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Sets a header from a string known to be a valid header value.
pub fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_nested_and_tricky_names() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("/v2/a/b/tags/list"),
            Some(Route::Tags("a/b".into()))
        );
        assert_eq!(
            parse_route(&format!("/v2/a/blobs/b/blobs/{d}")),
            Some(Route::Blob("a/blobs/b".into(), d.clone()))
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads/123"),
            Some(Route::Upload("a".into(), "123".into()))
        );
        assert_eq!(
            parse_route("/v2/x/manifests/y/manifests/latest"),
            Some(Route::Manifest("x/manifests/y".into(), "latest".into()))
        );
        assert_eq!(
            parse_route(&format!("/v2/r/referrers/{d}")),
            Some(Route::Referrers("r".into(), d))
        );
        assert_eq!(parse_route("/v1/x"), None);
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_once_and_ends() {
        let stalled: ByteStream = Box::pin(
            futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"abc"))])
                .chain(futures_util::stream::pending()),
        );
        let mut body = with_idle_timeout(stalled, Duration::from_millis(50));
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        let error = body.next().await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(body.next().await.is_none());
    }

    #[test]
    fn clients_are_counted_by_ipv4_address_or_ipv6_prefix() {
        let key = |text: &str| client_key(text.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse("n=10&last=a%2Fb&from=x+y");
        assert_eq!(q.get("n"), Some("10"));
        assert_eq!(q.get("last"), Some("a/b"));
        assert_eq!(q.get("from"), Some("x y"));
        assert_eq!(q.get("missing"), None);
        // Found with the server_router fuzz target: `%` then a multi-byte
        // character sliced a str inside that character and panicked.
        let q = Query::parse("last=%a\u{e9}x&n=%e9%");
        assert_eq!(q.get("last"), Some("%a\u{e9}x"));
        assert_eq!(q.get("n"), Some("\u{fffd}%"));
        // `from_str_radix` took a sign: `%+1` is not an escape.
        assert_eq!(Query::parse("x=%+1").get("x"), Some("% 1"));
    }
}
