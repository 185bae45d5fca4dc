//! Every endpoint of the distribution API the client calls, in one place:
//! manifests ([`manifests`]), blobs ([`blobs`]), upload sessions
//! ([`uploads`]) and referrers pages ([`referrers`]). Code above this module
//! never builds a URL or judges a status code.

pub mod blobs;
pub mod manifests;
pub(crate) mod referrers;
pub(crate) mod uploads;

use oci_spec::distribution::ErrorCode;
use reqwest::Method;
use reqwest::header::{HeaderMap, RETRY_AFTER};

pub use manifests::{FetchedManifest, PushedManifest};

use crate::body::{BodyError, MAX_ERROR_BYTES, read_limited, read_prefix};
use crate::client::{Access, Client, Endpoint};
use crate::error::{ClientError, Missing, NetCause, RegistryErrorBody, Result};
use crate::request::{Request, Target};
use crate::retry::parse_retry_after;

/// Every manifest type ferry understands, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub use crate::body::MAX_DOCUMENT_BYTES;

/// Blobs up to this size go up in one `PUT`; larger ones in chunks.
pub const MONOLITHIC_MAX: u64 = 32 * 1024 * 1024;

/// Chunk size for chunked uploads.
pub const UPLOAD_CHUNK: u64 = 128 * 1024 * 1024;

impl Client {
    /// Checks that the registry answers and accepts our credentials.
    pub async fn check_login(&self, endpoint: &Endpoint, access: Access) -> Result<()> {
        let request = Request::new(Method::GET, "/v2/", access, "checking credentials");
        let response = self.send(endpoint, &request).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(response_error(endpoint, &request, response).await)
        }
    }
}

/// Reads a whole body of at most [`MAX_DOCUMENT_BYTES`]; `what` names it
/// in errors.
pub(crate) async fn read_document(
    endpoint: &Endpoint,
    response: reqwest::Response,
    what: &str,
) -> Result<Vec<u8>> {
    read_limited_body(endpoint, response, MAX_DOCUMENT_BYTES, what).await
}

/// Reads a whole body of at most `limit` bytes; `what` names it in errors.
pub(crate) async fn read_limited_body(
    endpoint: &Endpoint,
    response: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    read_limited(response, limit)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge { .. } => ClientError::Integrity {
                what: format!("{what} from {}", endpoint.registry),
                reason: error.to_string(),
            },
            BodyError::Interrupted(source) => ClientError::Unreachable {
                registry: endpoint.registry.clone(),
                cause: NetCause::Interrupted,
                source: Box::new(source),
            },
        })
}

/// The `Location` an upload response names, made absolute (see
/// [`Client::named_url`]: another origin gets no credentials, plain HTTP
/// after HTTPS is refused).
pub(crate) fn session_location(
    client: &Client,
    endpoint: &Endpoint,
    response: &reqwest::Response,
) -> Result<String> {
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: "upload response without Location".into(),
        })?;
    let resolved = client.named_url(endpoint, response.url(), "Location", location)?;
    Ok(resolved.to_string())
}

/// The next page a `Link: <URL>; rel="next"` header of the response from
/// `answered` names (RFC 8288), as a URL for [`Request`]. A link to another
/// origin is refused: pages of a registry's listing are the registry's own.
pub(crate) fn next_link(
    client: &Client,
    endpoint: &Endpoint,
    answered: &reqwest::Url,
    headers: &HeaderMap,
) -> Result<Option<String>> {
    let Some(target) = headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(next_target)
    else {
        return Ok(None);
    };
    let resolved = client.named_url(endpoint, answered, "Link", target)?;
    if !client.on_registry_origin(endpoint.host(), &resolved) {
        return Err(ClientError::Invalid {
            registry: endpoint.registry.clone(),
            reason: format!("Link header points to another origin: {resolved}"),
        });
    }
    Ok(Some(resolved.to_string()))
}

/// The URL of one link-value whose `rel` includes `next`.
fn next_target(link: &str) -> Option<&str> {
    let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
    let is_next = params.split(';').any(|param| {
        let Some((key, value)) = param.split_once('=') else {
            return false;
        };
        key.trim().eq_ignore_ascii_case("rel")
            && value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
    });
    is_next.then_some(target)
}

/// The error a response stands for: `Unauthorized` for 401, `NotFound`
/// naming what is missing for a 404 (the registry's code tells a missing
/// repository from a missing tag, manifest or blob), else `Status` with the
/// registry's error envelope.
pub(crate) async fn response_error(
    endpoint: &Endpoint,
    request: &Request,
    response: reqwest::Response,
) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
    // The envelope is what matters; a longer body is cut off unread.
    let text = read_prefix(response, MAX_ERROR_BYTES).await;
    let body = RegistryErrorBody::parse(&text);
    if status == 401 {
        return ClientError::Unauthorized {
            registry: endpoint.registry.clone(),
        };
    }
    if status == 404
        && let Some(missing) = missing(endpoint, &request.target, body.as_ref())
    {
        return ClientError::NotFound(missing);
    }
    ClientError::Status {
        registry: endpoint.registry.clone(),
        action: request.action.clone(),
        status,
        body,
        retry_after,
    }
}

/// What a 404 to a request about `target` says is missing.
fn missing(
    endpoint: &Endpoint,
    target: &Target,
    body: Option<&RegistryErrorBody>,
) -> Option<Missing> {
    let registry = endpoint.registry.clone();
    let repository = endpoint.repository.clone();
    if body.is_some_and(|b| b.code.is(&ErrorCode::NameUnknown)) {
        return Some(Missing::Repository {
            registry,
            repository,
        });
    }
    match target {
        Target::Manifest(reference) if ferry_spec::digest::parse_digest(reference).is_ok() => {
            Some(Missing::Manifest {
                registry,
                repository,
                digest: reference.clone(),
            })
        }
        Target::Manifest(tag) => Some(Missing::Tag {
            registry,
            repository,
            tag: tag.clone(),
        }),
        Target::Blob(digest) => Some(Missing::Blob {
            registry,
            repository,
            digest: digest.to_string(),
        }),
        Target::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;

    fn links(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("link", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn link_headers_give_the_next_page_on_the_same_host() {
        let client = Client::new(ClientOptions {
            plain_http: true,
            ..ClientOptions::default()
        });
        let endpoint = Endpoint {
            registry: "r.io:5000".into(),
            repository: "m".into(),
        };
        let answered = reqwest::Url::parse("http://r.io:5000/v2/m/referrers/sha256:aa").unwrap();
        let next = |values: &[&str]| next_link(&client, &endpoint, &answered, &links(values));
        assert_eq!(
            next(&["</v2/m/referrers/sha256:aa?last=x>; rel=\"next\""]).unwrap(),
            Some("http://r.io:5000/v2/m/referrers/sha256:aa?last=x".into())
        );
        assert_eq!(
            next(&["<http://r.io:5000/v2/m/tags/list?n=1>; rel=\"prev\", </p2>; rel=next"])
                .unwrap(),
            Some("http://r.io:5000/p2".into()),
            "the next link among several, unquoted rel"
        );
        assert_eq!(next(&["</p1>; rel=\"prev\""]).unwrap(), None);
        assert_eq!(next(&[]).unwrap(), None);
        assert!(
            next(&["<https://elsewhere.example/v2/m/tags/list>; rel=\"next\""]).is_err(),
            "a page on another host is refused"
        );
        assert!(
            next(&["<https://r.io:5000/v2/m/tags/list>; rel=\"next\""]).is_err(),
            "a page on another scheme is refused"
        );
        assert!(
            next(&["<http://r.io:5001/p2>; rel=\"next\""]).is_err(),
            "a page on another port is refused"
        );
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            registry: "r.io".into(),
            repository: "org/m".into(),
        }
    }

    #[test]
    fn a_404_names_the_repository_the_tag_the_manifest_or_the_blob() {
        let name_unknown = RegistryErrorBody::parse(br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#);
        let manifest_unknown =
            RegistryErrorBody::parse(br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#);
        let digest = ferry_spec::digest::sha256_digest(b"x");
        let tag = Target::Manifest("v1".into());
        assert!(matches!(
            missing(&endpoint(), &tag, name_unknown.as_ref()),
            Some(Missing::Repository { .. })
        ));
        assert!(matches!(
            missing(&endpoint(), &tag, manifest_unknown.as_ref()),
            Some(Missing::Tag { tag, .. }) if tag == "v1"
        ));
        let by_digest = Target::Manifest(digest.to_string());
        assert!(matches!(
            missing(&endpoint(), &by_digest, None),
            Some(Missing::Manifest { .. })
        ));
        assert!(matches!(
            missing(&endpoint(), &Target::Blob(digest), None),
            Some(Missing::Blob { .. })
        ));
        assert_eq!(missing(&endpoint(), &Target::Other, None), None);
    }
}
