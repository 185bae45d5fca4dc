//! Listing the referrers of a subject: the referrers API (following `Link`
//! pages), else the fallback tag.

use serde_json::Value;

use ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX;
use ferry_spec::oci::{Descriptor, Digest};

use super::fallback_tag;
use crate::api::referrers::first_page;
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};

/// Pages of the referrers API followed before giving up (each page is at
/// most [`crate::api::MAX_DOCUMENT_BYTES`]).
pub const MAX_PAGES: usize = 1_000;

/// Referrers of one subject read through the API before giving up: a
/// registry's paging may not grow the list without end.
pub const MAX_REFERRERS: usize = 10_000;

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

/// Lists the referrers of `subject` in `endpoint`'s repository (read from
/// its mirrors or the registry): through the referrers API, else from the
/// fallback tag. With `artifact_type`, only referrers of that type are
/// returned (filtered here when the registry did not say
/// `OCI-Filters-Applied: artifactType`).
pub async fn list_referrers(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Referrers> {
    let sources = client.read_sources(endpoint);
    let (_, listed) = sources
        .first(async |at| list_at(client, at, subject, artifact_type).await)
        .await?;
    Ok(listed)
}

/// [`list_referrers`] at one registry.
async fn list_at(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Referrers> {
    if let Some((mut descriptors, filtered)) =
        referrers_api(client, endpoint, subject, artifact_type).await?
    {
        if let Some(wanted) = artifact_type
            && !filtered
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
pub(crate) fn retain_artifact_type(descriptors: &mut Vec<Descriptor>, wanted: &str) {
    descriptors.retain(|d| {
        d.artifact_type()
            .as_ref()
            .is_some_and(|t| t.to_string() == wanted)
    });
}

/// Every page of the referrers API, and whether every page said it
/// filtered by `artifact_type`; `None` when the registry lacks the API.
async fn referrers_api(
    client: &Client,
    endpoint: &Endpoint,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Option<(Vec<Descriptor>, bool)>> {
    let mut url = first_page(endpoint, subject, artifact_type);
    let mut descriptors = Vec::new();
    let mut filtered = artifact_type.is_some();
    for page in 0..MAX_PAGES {
        let Some(answer) = client
            .referrers_page(endpoint, &url, subject, page == 0)
            .await?
        else {
            return Ok(None);
        };
        filtered &= answer.filtered;
        if descriptors.len() + answer.index.manifests().len() > MAX_REFERRERS {
            return Err(ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("referrers of {subject}: more than {MAX_REFERRERS}"),
            });
        }
        descriptors.extend(answer.index.manifests().iter().cloned());
        match answer.next {
            Some(next) => url = next,
            None => return Ok(Some((descriptors, filtered))),
        }
    }
    Err(ClientError::Invalid {
        registry: endpoint.registry.clone(),
        reason: format!("referrers of {subject}: more than {MAX_PAGES} pages"),
    })
}

/// The fallback index under `tag` at `endpoint`, or `None` when the tag does
/// not exist.
pub(crate) async fn read_fallback(
    client: &Client,
    endpoint: &Endpoint,
    tag: &str,
) -> Result<Option<Value>> {
    let fetched = match client.manifest(endpoint, tag).await {
        Ok(fetched) => fetched,
        Err(ClientError::NotFound(_)) => return Ok(None),
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::referrers::fixtures::descriptor;

    #[test]
    fn artifact_type_filter_keeps_only_matches() {
        let mut list = vec![
            descriptor(1, Some("application/vnd.a")),
            descriptor(2, Some("application/vnd.b")),
            descriptor(3, None),
        ];
        retain_artifact_type(&mut list, "application/vnd.b");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].digest(), descriptor(2, None).digest());
    }

    #[test]
    fn invalid_fallback_entries_are_skipped() {
        let good = serde_json::to_value(descriptor(1, None)).unwrap();
        let document = serde_json::json!({"manifests": [good, {"digest": 7}]});
        let entries = fallback_entries(&document, "sha256-x");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].digest(), descriptor(1, None).digest());
    }
}
