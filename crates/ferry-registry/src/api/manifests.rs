//! `GET`, `HEAD` and `PUT /v2/<name>/manifests/<reference>`.

use bytes::Bytes;
use reqwest::{Method, StatusCode};

use ferry_spec::digest::{DigestHasher, parse_digest};
use ferry_spec::oci::Digest;

use super::response_error;
use super::{MANIFEST_ACCEPT, read_document};
use crate::client::{Access, Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::request::{Request, RequestBody, Target};

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Exact bytes.
    pub bytes: Bytes,
    /// Media type (Content-Type, else the document's `mediaType`).
    pub media_type: String,
    /// Digest of the bytes: the one asked for (verified), else sha256.
    pub digest: Digest,
}

/// What a manifest push returned.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// Digest of the bytes.
    pub digest: Digest,
    /// The registry indexed the subject (`OCI-Subject` came back).
    pub subject_indexed: bool,
}

impl Client {
    /// Fetches a manifest by tag or digest, verifying a digest reference.
    pub async fn manifest(&self, endpoint: &Endpoint, reference: &str) -> Result<FetchedManifest> {
        let request = Request::new(
            Method::GET,
            format!("/v2/{}/manifests/{reference}", endpoint.repository),
            Access::Pull,
            format!("fetching manifest {reference}"),
        )
        .header("accept", MANIFEST_ACCEPT)
        .target(Target::Manifest(reference.to_string()));
        let response = self.send(endpoint, &request).await?;
        if !response.status().is_success() {
            return Err(response_error(endpoint, &request, response).await);
        }
        let header_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let what = format!(
            "manifest {}/{}:{reference}",
            endpoint.registry, endpoint.repository
        );
        let body = read_document(endpoint, response, &what).await?;
        let digest = match parse_digest(reference) {
            Ok(expected) => {
                let mut hasher = DigestHasher::for_digest(&expected).map_err(|e| {
                    ClientError::invalid_input_because(format!("manifest {reference}"), e)
                })?;
                hasher.update(&body);
                let actual = hasher.finish();
                if actual != expected {
                    return Err(ClientError::Integrity {
                        what,
                        reason: format!("content hashes to {actual}"),
                    });
                }
                expected
            }
            Err(_) => ferry_spec::digest::sha256_digest(&body),
        };
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: format!("manifest {reference} is not JSON: {e}"),
            })?;
        let media_type = document
            .get("mediaType")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or(header_type.filter(|t| !t.is_empty() && t != "application/json"))
            .unwrap_or_else(|| ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST.to_string());
        Ok(FetchedManifest {
            bytes: Bytes::from(body),
            media_type,
            digest,
        })
    }

    /// `HEAD` a manifest: its digest when present (and the registry says it).
    pub async fn manifest_digest(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        access: Access,
    ) -> Result<Option<Digest>> {
        let request = Request::new(
            Method::HEAD,
            format!("/v2/{}/manifests/{reference}", endpoint.repository),
            access,
            format!("checking manifest {reference}"),
        )
        .header("accept", MANIFEST_ACCEPT);
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            s if s.is_success() => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_digest(v.trim()).ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(response_error(endpoint, &request, response).await),
        }
    }

    /// Pushes manifest bytes under a tag or their digest.
    pub async fn put_manifest(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<PushedManifest> {
        let digest = ferry_spec::digest::sha256_digest(&bytes);
        let request = Request::new(
            Method::PUT,
            format!("/v2/{}/manifests/{reference}", endpoint.repository),
            Access::Push,
            format!("pushing manifest {reference}"),
        )
        .header("content-type", media_type)
        .body(RequestBody::Bytes(bytes));
        let response = self.send(endpoint, &request).await?;
        if !response.status().is_success() {
            return Err(response_error(endpoint, &request, response).await);
        }
        let subject_indexed = response.headers().contains_key("oci-subject");
        Ok(PushedManifest {
            digest,
            subject_indexed,
        })
    }
}
