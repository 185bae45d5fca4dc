//! The diffIds a remote artifact's config declares (ModelPack's
//! `modelfs.diffIds`, an image config's `rootfs.diff_ids`), so that
//! `pull --extract` and `fetch` check each layer's uncompressed digest.

use ferry_spec::oci::{Digest, ImageManifest};

use crate::client::Client;
use crate::error::Result;
use crate::sources::ReadSources;

/// One entry per manifest layer when the config declares diffIds, else
/// `None` (only blob digests are checked then).
pub(crate) async fn remote_diff_ids(
    client: &Client,
    sources: &ReadSources,
    manifest: &ImageManifest,
) -> Result<Option<Vec<Digest>>> {
    let config = manifest.config();
    if !ferry_store::decompress::declares_diff_ids(config.media_type().as_ref()) {
        return Ok(None);
    }
    let (_, bytes) = sources
        .first(async |endpoint| client.blob_document(endpoint, config).await)
        .await?;
    Ok(ferry_store::decompress::declared_diff_ids(
        config,
        &bytes,
        manifest.layers().len(),
    )?)
}
