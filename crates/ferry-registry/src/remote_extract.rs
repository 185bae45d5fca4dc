//! `ferry pull --extract` and `ferry fetch`: files from a registry (its
//! mirrors first) straight into a directory, nothing kept in the store.
//!
//! Each layer streams from the registry into the store's safe extraction
//! ([`ferry_store::extract::place_layer_from_reader`], on a blocking thread
//! fed through tokio's `SyncIoBridge`) inside a staging directory; the
//! staging directory is moved into place only when every layer is written
//! and verified, so a digest mismatch leaves nothing in the target.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};

use ferry_spec::Reference;
use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::StoreError;
use ferry_store::extract::{
    ExtractOptions, Extracted, LayerPlacement, Staging, place_layer_verified, placement,
    safe_components,
};

use crate::bridge::consume_blocking;
use crate::client::{Client, Endpoint};
use crate::download::blob_stream;
use crate::error::{ClientError, Missing, Result, join_error};
use crate::platform::Platform;
use crate::progress::TransferProgress;
use crate::sources::ReadSources;
use crate::transfer::{is_foreign, resolve_manifest};

// The layer selection is the store's, shared with mount.
pub use ferry_store::select::{LayerFilter, layer_path};

/// What [`extract_remote`] is told.
#[derive(Debug, Clone, Default)]
pub struct RemoteExtractOptions {
    /// Write into a non-empty directory, replacing files.
    pub force: bool,
    /// Which layers.
    pub filter: LayerFilter,
    /// Platform to choose when the reference is an index.
    pub platform: Option<Platform>,
    /// Layers downloaded at once (when they cannot overlap).
    pub concurrency: usize,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct RemoteExtracted {
    /// The reference, normalized.
    pub reference: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// Where the files went.
    pub dir: PathBuf,
    /// The path annotation of each layer written, in manifest order.
    pub layers: Vec<String>,
    /// Layers the filter left out.
    pub skipped_layers: usize,
    /// Files, links and directories created.
    pub entries: usize,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Writes the (filtered) layers of `reference` into `dir`.
pub async fn extract_remote(
    client: &Client,
    reference: &Reference,
    dir: &Path,
    options: &RemoteExtractOptions,
    progress: &dyn TransferProgress,
) -> Result<RemoteExtracted> {
    let sources = client.read_sources(&Endpoint::of(reference));
    let (sources, fetched, manifest) =
        resolve_manifest(client, &sources, reference, options.platform.as_ref()).await?;
    let mut selected = Vec::new();
    let mut selected_indices = Vec::new();
    let mut skipped = 0;
    for (i, layer) in manifest.layers().iter().enumerate() {
        if is_foreign(layer) {
            continue;
        }
        if options.filter.accepts(layer) {
            selected.push(layer.clone());
            selected_indices.push(i);
        } else {
            skipped += 1;
        }
    }
    if selected.is_empty() && !options.filter.is_empty() {
        return Err(ClientError::NotFound(Missing::Other(format!(
            "a layer of {} matching {}",
            reference.whole(),
            options.filter.describe()
        ))));
    }
    // Refuse what cannot be placed before a byte is downloaded.
    let mut file_paths = Vec::new();
    for layer in &selected {
        if let LayerPlacement::File(path) = placement(layer)? {
            file_paths.push(safe_components(&path)?);
        }
    }
    // Checked for every layer, as extract and mount do: an uncompressed
    // layer whose diffId is not its digest makes the artifact inconsistent.
    let diff_ids = crate::remote_diff_ids::remote_diff_ids(client, &sources, &manifest).await?;
    let selected_diff_ids: Vec<Option<Digest>> = selected_indices
        .iter()
        .map(|i| diff_ids.as_ref().and_then(|ids| ids.get(*i).cloned()))
        .collect();
    // Single-file layers at disjoint paths cannot overlap and go in
    // parallel; otherwise layers go in manifest order (a later one wins).
    let concurrency = if file_paths.len() == selected.len() && disjoint(&mut file_paths) {
        options.concurrency.max(1)
    } else {
        1
    };
    let staging = Staging::begin(
        dir,
        &ExtractOptions {
            force: options.force,
        },
    )?;
    // Shared with every layer's blocking writer: when one layer fails, the
    // others' writers may still run after this function returns, and the
    // staging directory must outlive them (else a writer recreates it).
    let staging = Arc::new(staging);
    let limits = ferry_store::decompress::Limits::from_env()?;
    let placed: Vec<Extracted> = stream::iter(selected.iter().zip(selected_diff_ids))
        .map(|(layer, diff_id)| {
            place_remote_layer(
                client,
                &sources,
                layer,
                diff_id,
                limits,
                staging.clone(),
                progress,
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    // Every writer has ended (each layer's future awaited its own).
    let staging = Arc::try_unwrap(staging).map_err(|_| {
        ClientError::Store(StoreError::Internal(
            "a layer writer still holds the staging directory",
        ))
    })?;
    tokio::task::spawn_blocking(move || staging.commit())
        .await
        .map_err(join_error("moving files into", dir.display()))??;
    Ok(RemoteExtracted {
        reference: reference.whole(),
        digest: fetched.digest,
        dir: dir.to_path_buf(),
        layers: selected
            .iter()
            .map(|l| layer_path(l).unwrap_or_else(|| l.digest().to_string()))
            .collect(),
        skipped_layers: skipped,
        entries: placed.iter().map(|p| p.entries).sum(),
        bytes: placed.iter().map(|p| p.bytes).sum(),
    })
}

/// True when no two of `paths` (normalized components) name the same file
/// or one lies inside the other (`a` and `a/b`): only then does the order
/// they are written in not matter. Sorts `paths`.
fn disjoint(paths: &mut [Vec<String>]) -> bool {
    paths.sort();
    // Sorted, a path is directly followed by any path below it.
    paths.windows(2).all(|pair| !pair[1].starts_with(&pair[0]))
}

async fn place_remote_layer(
    client: &Client,
    sources: &ReadSources,
    layer: &Descriptor,
    diff_id: Option<Digest>,
    limits: ferry_store::decompress::Limits,
    staging: Arc<Staging>,
    progress: &dyn TransferProgress,
) -> Result<Extracted> {
    let digest = layer.digest();
    let (position, stream) = sources
        .first(async |endpoint| blob_stream(client, endpoint.clone(), layer, progress).await)
        .await?;
    let registry = sources
        .endpoints()
        .nth(position)
        .map_or_else(|| sources.origin().registry.clone(), |e| e.registry.clone());
    progress.blob_started(digest, layer.size());
    let owned = layer.clone();
    let placed = consume_blocking(stream, digest, progress, move |reader| {
        place_layer_verified(&owned, reader, staging.root(), diff_id.as_ref(), &limits).map_err(
            |e| match e {
                StoreError::DigestMismatch { digest, actual } => ClientError::Integrity {
                    what: format!("blob {digest} from {registry}"),
                    reason: format!("downloaded content hashes to {actual}"),
                },
                StoreError::SizeMismatch { digest, actual, .. } => ClientError::Integrity {
                    what: format!("blob {digest} from {registry}"),
                    reason: format!("the download ended after {actual} bytes"),
                },
                StoreError::LongerThanDeclared { digest, expected } => ClientError::Integrity {
                    what: format!("blob {digest} from {registry}"),
                    reason: format!("the download ran past the {expected} bytes the manifest says"),
                },
                other => ClientError::Store(other),
            },
        )
    })
    .await?;
    progress.blob_done(digest);
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn paths_are_disjoint_only_when_no_file_or_directory_is_shared() {
        let paths = |list: &[&str]| -> Vec<Vec<String>> {
            list.iter().map(|p| safe_components(p).unwrap()).collect()
        };
        assert!(disjoint(&mut paths(&["a", "b", "c/d", "c/e"])));
        assert!(
            !disjoint(&mut paths(&["a", "./a"])),
            "one file, two spellings"
        );
        assert!(!disjoint(&mut paths(&["x/a//b", "x/a/./b"])));
        assert!(
            !disjoint(&mut paths(&["a", "b", "a/c"])),
            "a file and one below it"
        );
        assert!(disjoint(&mut paths(&["a", "a-b", "ab/c"])));
    }
}
