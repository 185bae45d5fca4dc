//! `GET /v2/<name>/referrers/<digest>[?artifactType=]`, one page at a time.

use reqwest::{Method, StatusCode};

use ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX;
use ferry_spec::oci::{Digest, ImageIndex};

use super::response_error;
use super::{next_link, read_document};
use crate::client::{Access, Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::request::{Request, with_query};

/// One page of the referrers API.
#[derive(Debug, Clone)]
pub(crate) struct ReferrersPage {
    /// The page's index.
    pub index: ImageIndex,
    /// The registry said `OCI-Filters-Applied: artifactType`.
    pub filtered: bool,
    /// Where the next page is (`Link: <...>; rel="next"`).
    pub next: Option<String>,
}

/// The first page's URL.
pub(crate) fn first_page(
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> String {
    let url = format!("/v2/{}/referrers/{subject}", endpoint.repository);
    match artifact_type {
        Some(t) => with_query(&url, "artifactType", t),
        None => url,
    }
}

impl Client {
    /// A page of referrers of `subject` at `url`. `None` when this is the
    /// first page and the registry has no referrers API (404, 405, or an
    /// answer that is not an image index).
    pub(crate) async fn referrers_page(
        &self,
        endpoint: &Endpoint,
        url: &str,
        subject: &Digest,
        first: bool,
    ) -> Result<Option<ReferrersPage>> {
        let request = Request::new(
            Method::GET,
            url.to_string(),
            Access::Pull,
            format!("listing referrers of {subject}"),
        )
        .header("accept", MEDIA_TYPE_IMAGE_INDEX);
        let response = self.send(endpoint, &request).await?;
        let status = response.status();
        if first && (status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(response_error(endpoint, &request, response).await);
        }
        let headers = response.headers().clone();
        let answered = response.url().clone();
        let is_index = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(MEDIA_TYPE_IMAGE_INDEX));
        let filtered = headers
            .get_all("oci-filters-applied")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|f| f.trim() == "artifactType");
        let body = read_document(endpoint, response, "referrers index").await?;
        let index: ImageIndex = match serde_json::from_slice(&body) {
            Ok(index) => index,
            // Something answered 200 with a page that is not an index (a
            // proxy, a web UI): this registry has no referrers API.
            Err(_) if first && !is_index => return Ok(None),
            Err(e) => {
                return Err(ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!("referrers of {subject}: {e}"),
                });
            }
        };
        Ok(Some(ReferrersPage {
            index,
            filtered,
            next: next_link(self, endpoint, &answered, &headers)?,
        }))
    }
}
