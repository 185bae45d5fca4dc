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
        let body = open_layer(client, &sources, layer).await?;
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

/// Streams every layer of the artifact `reference` names through `visit`,
/// on a blocking thread, nothing stored: `visit` reads what it needs of the
/// layer's bytes, the rest is read after it, and the whole blob must match
/// its digest and size, or the layer's result is an integrity error.
/// Returns the manifest digest and one result of `visit` per layer.
pub async fn visit_remote_layers<T, F>(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
    visit: F,
) -> Result<(ferry_spec::oci::Digest, Vec<T>)>
where
    T: Send + 'static,
    F: FnMut(&ferry_spec::oci::Descriptor, &mut dyn std::io::Read) -> std::io::Result<T>
        + Send
        + 'static,
{
    let sources = client.read_sources(&Endpoint::of(reference));
    let (sources, fetched, manifest) =
        resolve_manifest(client, &sources, reference, platform).await?;
    let visit = std::sync::Arc::new(std::sync::Mutex::new(visit));
    let mut results = Vec::new();
    for layer in manifest.layers() {
        if is_foreign(layer) {
            continue;
        }
        let digest = layer.digest();
        let body = open_layer(client, &sources, layer).await?;
        let (owned, visit) = (layer.clone(), std::sync::Arc::clone(&visit));
        let result = consume_blocking(body.stream, digest, &NoProgress, move |reader| {
            let sized = ferry_store::sized::DeclaredSize::new(reader, owned.size());
            let mut hashing = ferry_spec::digest::HashingReader::new(sized);
            let mut visit = visit
                .lock()
                .map_err(|_| ClientError::invalid_input("a layer visitor panicked"))?;
            let result = (*visit)(&owned, &mut hashing).map_err(|source| ClientError::Io {
                action: "reading layer",
                path: owned.digest().to_string(),
                source,
            })?;
            std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|source| {
                ClientError::Io {
                    action: "reading layer",
                    path: owned.digest().to_string(),
                    source,
                }
            })?;
            let (actual, size) = hashing.finish();
            if &actual != owned.digest() || size != owned.size() {
                return Err(ClientError::Integrity {
                    what: format!("blob {}", owned.digest()),
                    reason: format!("downloaded content hashes to {actual} ({size} bytes)"),
                });
            }
            Ok(result)
        })
        .await?;
        results.push(result);
    }
    Ok((fetched.digest, results))
}

/// The body of `layer`'s blob from the first source that serves it with the
/// length its descriptor declares.
async fn open_layer(
    client: &Client,
    sources: &crate::sources::ReadSources,
    layer: &ferry_spec::oci::Descriptor,
) -> Result<crate::api::blobs::BlobBody> {
    let (_, body) = sources
        .first(async |endpoint| {
            let body = client.get_blob(endpoint, layer.digest(), 0).await?;
            body.check_length(endpoint, layer)?;
            Ok(body)
        })
        .await?;
    Ok(body)
}
