//! The config's `modelfs.diffIds` of a remote ModelPack artifact, so that
//! `pull --extract` and `fetch` check each layer's uncompressed digest.

use futures_util::TryStreamExt;

use ferry_spec::media;
use ferry_spec::oci::{Digest, ImageManifest};

use crate::client::{Client, Endpoint};
use crate::copy::registry_blob_stream;
use crate::error::{ClientError, Result};

/// Configs larger than this are refused (ModelPack configs are a few KiB).
const MAX_CONFIG: u64 = 4 << 20;

/// One entry per manifest layer when the config is a ModelPack config,
/// else `None` (only blob digests are checked then).
pub async fn remote_diff_ids(
    client: &Client,
    endpoint: &Endpoint,
    manifest: &ImageManifest,
) -> Result<Option<Vec<Digest>>> {
    let config = manifest.config();
    if config.media_type().to_string() != media::MEDIA_TYPE_MODEL_CONFIG {
        return Ok(None);
    }
    if config.size() > MAX_CONFIG {
        return Err(ClientError::Integrity {
            what: format!("config {}", config.digest()),
            reason: format!(
                "{} bytes is more than a ModelPack config can be",
                config.size()
            ),
        });
    }
    let mut stream = registry_blob_stream(client, endpoint, config).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.try_next().await.map_err(|e| ClientError::Io {
        action: "downloading config",
        path: config.digest().to_string(),
        source: e,
    })? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > config.size() {
            break;
        }
    }
    let actual = ferry_spec::digest::sha256_digest(&bytes);
    if &actual != config.digest() || bytes.len() as u64 != config.size() {
        return Err(ClientError::Integrity {
            what: format!("config {} from {}", config.digest(), endpoint.registry),
            reason: format!("downloaded content hashes to {actual}"),
        });
    }
    let ids = ferry_store::decompress::diff_ids_from_config(
        &bytes,
        config.digest(),
        manifest.layers().len(),
    )?;
    Ok(Some(ids))
}
