//! The config's `modelfs.diffIds` of a remote ModelPack artifact, so that
//! `pull --extract` and `fetch` check each layer's uncompressed digest.

use ferry_spec::media;
use ferry_spec::oci::{Digest, ImageManifest};

use crate::client::Client;
use crate::error::Result;
use crate::sources::ReadSources;

/// One entry per manifest layer when the config is a ModelPack config,
/// else `None` (only blob digests are checked then).
pub(crate) async fn remote_diff_ids(
    client: &Client,
    sources: &ReadSources,
    manifest: &ImageManifest,
) -> Result<Option<Vec<Digest>>> {
    let config = manifest.config();
    if config.media_type().to_string() != media::MEDIA_TYPE_MODEL_CONFIG {
        return Ok(None);
    }
    let (_, bytes) = sources
        .first(async |endpoint| client.blob_document(endpoint, config).await)
        .await?;
    let ids = ferry_store::decompress::diff_ids_from_config(
        &bytes,
        config.digest(),
        manifest.layers().len(),
    )?;
    Ok(Some(ids))
}
