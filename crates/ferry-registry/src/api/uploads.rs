//! Upload sessions: `POST /v2/<name>/blobs/uploads/` (optionally mounting),
//! `PATCH` (a chunk of a file, or a whole stream), `GET` (where the session
//! stands), `PUT ?digest=` (closing it) and `DELETE` (abandoning it).
//! [`crate::upload`] builds the one upload path on these.

use std::path::Path;

use reqwest::{Method, StatusCode};

use ferry_spec::oci::Digest;

use super::response_error;
use super::session_location;
use crate::bridge::ByteStream;
use crate::client::{Access, Client, Endpoint};
use crate::error::Result;
use crate::request::{Request, RequestBody, with_query};

/// How an upload session began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadStart {
    /// The registry mounted the blob from the other repository: done.
    Mounted,
    /// A session to send bytes to (its `Location`).
    Session(String),
}

/// What a chunk `PATCH` got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChunkAnswer {
    /// Taken; the session continues at this location.
    Accepted(String),
    /// Refused as out of order (416): ask where the session stands.
    OutOfOrder,
}

impl Client {
    /// Starts a session, or mounts the blob when `mount` names its digest
    /// and a repository of the same registry holding it.
    pub(crate) async fn start_upload(
        &self,
        endpoint: &Endpoint,
        access: &Access,
        mount: Option<(&Digest, &str)>,
    ) -> Result<UploadStart> {
        let mut url = format!("/v2/{}/blobs/uploads/", endpoint.repository);
        if let Some((digest, from)) = mount {
            url = with_query(&with_query(&url, "mount", digest.as_ref()), "from", from);
        }
        let request = Request::new(Method::POST, url, access.clone(), "starting an upload")
            .header("content-length", "0");
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED => Ok(UploadStart::Session(session_location(
                self, endpoint, &response,
            )?)),
            _ => Err(response_error(endpoint, &request, response).await),
        }
    }

    /// Sends `len` bytes of `path` from `offset` as one chunk. Tried once:
    /// after a failure the caller asks [`Client::upload_offset`] where to
    /// resume.
    pub(crate) async fn patch_file_chunk(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
        path: &Path,
        offset: u64,
        len: u64,
    ) -> Result<ChunkAnswer> {
        let request = Request::new(
            Method::PATCH,
            location.to_string(),
            access.clone(),
            format!(
                "uploading bytes {offset}-{} of {}",
                offset + len,
                path.display()
            ),
        )
        .header("content-type", "application/octet-stream")
        .header("content-range", &format!("{offset}-{}", offset + len - 1))
        .header("content-length", &len.to_string())
        .body(RequestBody::File {
            path: path.to_path_buf(),
            offset,
            len,
        })
        .once();
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Ok(ChunkAnswer::Accepted(
                session_location(self, endpoint, &response)?,
            )),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(ChunkAnswer::OutOfOrder),
            _ => Err(response_error(endpoint, &request, response).await),
        }
    }

    /// Sends a whole stream as one chunked `PATCH`; returns the session's
    /// next location. A stream cannot be replayed: a failure abandons the
    /// session, and the caller starts over with a new one.
    pub(crate) async fn patch_stream(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
        body: ByteStream,
    ) -> Result<String> {
        let request = Request::new(
            Method::PATCH,
            location.to_string(),
            access.clone(),
            "uploading a stream",
        )
        .header("content-type", "application/octet-stream")
        .body(RequestBody::once(body));
        let response = self.send(endpoint, &request).await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT => {
                session_location(self, endpoint, &response)
            }
            _ => Err(response_error(endpoint, &request, response).await),
        }
    }

    /// The next byte the session expects, from its `Range: 0-END`.
    pub(crate) async fn upload_offset(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
    ) -> Result<u64> {
        let request = Request::new(
            Method::GET,
            location.to_string(),
            access.clone(),
            "checking upload status",
        );
        let response = self.send(endpoint, &request).await?;
        if !response.status().is_success() {
            return Err(response_error(endpoint, &request, response).await);
        }
        let range = response
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        // distribution answers `0-0` for an empty upload (and for one byte):
        // resuming from 0 is right in the common case, and a registry that
        // does hold one byte refuses the overlap instead of corrupting the blob.
        if range == Some("0-0") {
            return Ok(0);
        }
        let end = range
            .and_then(|r| r.rsplit('-').next())
            .and_then(|e| e.parse::<u64>().ok());
        Ok(end.map_or(0, |end| end.saturating_add(1)))
    }

    /// Closes a session with `PUT ?digest=`, carrying `body` (the whole blob
    /// for a monolithic upload, nothing after chunks); the registry checks
    /// the digest against everything it received. Tried once: a retry
    /// would append the body again.
    pub(crate) async fn finish_upload(
        &self,
        endpoint: &Endpoint,
        location: &str,
        access: &Access,
        digest: &Digest,
        body: RequestBody,
    ) -> Result<()> {
        let length = match &body {
            RequestBody::Bytes(bytes) => bytes.len() as u64,
            RequestBody::File { len, .. } => *len,
            _ => 0,
        };
        let request = Request::new(
            Method::PUT,
            with_query(location, "digest", digest.as_ref()),
            access.clone(),
            format!("finishing upload of {digest}"),
        )
        .header("content-type", "application/octet-stream")
        .header("content-length", &length.to_string())
        .body(body)
        .once();
        let response = self.send(endpoint, &request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(response_error(endpoint, &request, response).await);
        }
        Ok(())
    }

    /// Abandons a session (best effort: registries expire them anyway).
    pub(crate) async fn cancel_upload(&self, endpoint: &Endpoint, location: &str, access: &Access) {
        let request = Request::new(
            Method::DELETE,
            location.to_string(),
            access.clone(),
            "cancelling an upload",
        );
        if let Err(error) = self.send(endpoint, &request).await {
            tracing::debug!("cancelling an upload session: {error}");
        }
    }
}
