//! The files a registry's artifact would show a user, read without storing
//! anything: single-file layers are known from the manifest (a blob's
//! SHA-256 is its file's), tar layers are streamed and each file hashed
//! ([`ferry_store::files`]). What a `modelSigned` policy compares a model
//! signature with before anything is pulled.

use ferry_spec::Reference;
use ferry_store::decompress::Limits;
use ferry_store::files::{
    ArtifactFiles, add_file_layer, add_layer_from_reader, known_without_reading,
};

use crate::bridge::consume_blocking;
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::platform::Platform;
use crate::progress::NoProgress;
use crate::transfer::{is_foreign, resolve_manifest};

/// The files of the artifact `reference` names (pin it to a digest), the
/// image manifest chosen for `platform` when it names an index. Layers are
/// read in order, a later one replacing an earlier one's paths.
pub async fn remote_artifact_files(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<ArtifactFiles> {
    let sources = client.read_sources(&Endpoint::of(reference));
    let (sources, _, manifest) = resolve_manifest(client, &sources, reference, platform).await?;
    let limits = Limits::from_env()?;
    let mut files = ArtifactFiles::new();
    for layer in manifest.layers() {
        if is_foreign(layer) {
            continue;
        }
        if known_without_reading(layer)? {
            add_file_layer(layer, &mut files)?;
            continue;
        }
        let digest = layer.digest();
        let (_, body) = sources
            .first(async |endpoint| {
                let body = client.get_blob(endpoint, digest, 0).await?;
                body.check_length(endpoint, layer)?;
                Ok(body)
            })
            .await?;
        let (owned, mut read) = (layer.clone(), std::mem::take(&mut files));
        files = consume_blocking(body.stream, digest, &NoProgress, move |reader| {
            add_layer_from_reader(&owned, reader, &limits, &mut read)
                .map_err(ClientError::Store)?;
            Ok(read)
        })
        .await?;
    }
    Ok(files)
}
