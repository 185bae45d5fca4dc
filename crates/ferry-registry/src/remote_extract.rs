//! `ferry pull --extract` and `ferry fetch`: files from a registry straight
//! into a directory, nothing kept in the store.
//!
//! Each layer streams from the registry into the store's safe extraction
//! ([`ferry_store::extract::place_layer_from_reader`], on a blocking thread
//! fed through tokio's `SyncIoBridge`) inside a staging directory; the
//! staging directory is moved into place only when every layer is written
//! and verified, so a digest mismatch leaves nothing in the target.

use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt, stream};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use ferry_spec::Reference;
use ferry_spec::annotations as ann;
use ferry_spec::media::{Category, Encoding, parse_layer_media_type};
use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::StoreError;
use ferry_store::extract::{
    ExtractOptions, Extracted, LayerPlacement, Staging, place_layer_verified, placement,
};

use crate::bridge::consume_blocking;
use crate::client::{Client, Endpoint};
use crate::copy::registry_blob_stream;
use crate::error::{ClientError, Result};
use crate::platform::Platform;
use crate::progress::TransferProgress;
use crate::transfer::{is_foreign, resolve_manifest};

/// Which layers to fetch: every layer when empty; else a layer must match
/// an `--include` glob (when any is given) and be of a listed category
/// (when any is given).
#[derive(Debug, Clone, Default)]
pub struct LayerFilter {
    globs: Option<GlobSet>,
    patterns: Vec<String>,
    categories: Vec<Category>,
}

impl LayerFilter {
    /// Compiles the globs (`**` crosses directories; a glob without `/`
    /// also matches a file name at any depth).
    pub fn new(include: &[String], categories: &[Category]) -> Result<LayerFilter> {
        let globs = if include.is_empty() {
            None
        } else {
            let mut builder = GlobSetBuilder::new();
            for pattern in include {
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| ClientError::Config(format!("invalid glob {pattern:?}: {e}")))?;
                builder.add(glob);
            }
            Some(
                builder
                    .build()
                    .map_err(|e| ClientError::Config(format!("invalid glob set: {e}")))?,
            )
        };
        Ok(LayerFilter {
            globs,
            patterns: include.to_vec(),
            categories: categories.to_vec(),
        })
    }

    /// True when nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.globs.is_none() && self.categories.is_empty()
    }

    /// True when `layer` is wanted.
    pub fn accepts(&self, layer: &Descriptor) -> bool {
        if let Some(globs) = &self.globs {
            let Some(path) = layer_path(layer) else {
                return false;
            };
            let path = path.trim_start_matches("./");
            let name = path.rsplit('/').next().unwrap_or(path);
            if !(globs.is_match(path) || globs.is_match(name)) {
                return false;
            }
        }
        if !self.categories.is_empty() {
            let category = parse_layer_media_type(layer.media_type().as_ref()).map(|(c, _)| c);
            if !category.is_some_and(|c| self.categories.contains(&c)) {
                return false;
            }
        }
        true
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.patterns.is_empty() {
            parts.push(format!("--include {}", self.patterns.join(" ")));
        }
        if !self.categories.is_empty() {
            let names: Vec<&str> = self.categories.iter().map(|c| c.name()).collect();
            parts.push(format!("--category {}", names.join(",")));
        }
        parts.join(" and ")
    }
}

/// The path a layer is placed at (`org.cncf.model.filepath`, its legacy
/// spelling, or the title).
pub fn layer_path(layer: &Descriptor) -> Option<String> {
    let annotations = layer.annotations().as_ref()?;
    annotations
        .get(ann::FILEPATH)
        .or_else(|| annotations.get(ann::FILEPATH_LEGACY))
        .or_else(|| annotations.get(ann::TITLE))
        .cloned()
}

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
    let endpoint = Endpoint::of(reference);
    let (fetched, manifest) =
        resolve_manifest(client, &endpoint, reference, options.platform.as_ref()).await?;
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
        return Err(ClientError::NotFound {
            what: format!(
                "a layer of {} matching {}",
                reference.whole(),
                options.filter.describe()
            ),
        });
    }
    // Refuse what cannot be placed before a byte is downloaded.
    let mut file_paths = Vec::new();
    let mut compressed = false;
    for layer in &selected {
        match placement(layer)? {
            LayerPlacement::File(path) => file_paths.push(path),
            LayerPlacement::Tar(encoding) => {
                compressed |= !matches!(encoding, Encoding::Tar | Encoding::Raw)
            }
        }
    }
    // An uncompressed layer's diffId is its blob digest, verified anyway:
    // the config is fetched only when a compressed layer needs it.
    let diff_ids = if compressed {
        crate::remote_diff_ids::remote_diff_ids(client, &endpoint, &manifest).await?
    } else {
        None
    };
    let selected_diff_ids: Vec<Option<Digest>> = selected_indices
        .iter()
        .map(|i| diff_ids.as_ref().and_then(|ids| ids.get(*i).cloned()))
        .collect();
    // Single-file layers at distinct paths cannot overlap and go in
    // parallel; otherwise layers go in manifest order (a later one wins).
    let mut distinct = file_paths.clone();
    distinct.sort();
    distinct.dedup();
    let concurrency = if file_paths.len() == selected.len() && distinct.len() == file_paths.len() {
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
    let root = staging.root().to_path_buf();
    let limits = ferry_store::decompress::Limits::from_env()?;
    let placed: Vec<Extracted> = stream::iter(selected.iter().zip(selected_diff_ids))
        .map(|(layer, diff_id)| {
            place_remote_layer(
                client,
                &endpoint,
                layer,
                diff_id,
                limits,
                root.clone(),
                progress,
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    tokio::task::spawn_blocking(move || staging.commit())
        .await
        .map_err(|e| ClientError::Io {
            action: "moving files into",
            path: dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })??;
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

async fn place_remote_layer(
    client: &Client,
    endpoint: &Endpoint,
    layer: &Descriptor,
    diff_id: Option<Digest>,
    limits: ferry_store::decompress::Limits,
    root: PathBuf,
    progress: &dyn TransferProgress,
) -> Result<Extracted> {
    let digest = layer.digest();
    let stream = registry_blob_stream(client, endpoint, layer).await?;
    progress.blob_started(digest, layer.size());
    let owned = layer.clone();
    let registry = endpoint.registry.clone();
    let placed = consume_blocking(stream, digest, progress, move |reader| {
        place_layer_verified(&owned, reader, &root, diff_id.as_ref(), &limits).map_err(
            |e| match e {
                StoreError::DigestMismatch { digest, actual } => ClientError::Integrity {
                    what: format!("blob {digest} from {registry}"),
                    reason: format!("downloaded content hashes to {actual}"),
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
    use ferry_spec::media::{Encoding, layer_media_type};
    use ferry_spec::oci::MediaType;
    use std::collections::HashMap;

    fn layer(path: &str, category: Category) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::Other(layer_media_type(category, Encoding::Raw)),
            1,
            ferry_spec::digest::sha256_digest(path.as_bytes()),
        );
        d.set_annotations(Some(HashMap::from([(
            ann::FILEPATH.to_string(),
            path.to_string(),
        )])));
        d
    }

    #[test]
    fn globs_match_paths_and_names_and_categories_narrow() {
        let weights = layer("shards/model-00001.safetensors", Category::Weight);
        let config = layer("config.json", Category::WeightConfig);
        let nested = layer("1_Pooling/config.json", Category::WeightConfig);

        let by_name = LayerFilter::new(&["config.json".into()], &[]).unwrap();
        assert!(by_name.accepts(&config));
        assert!(by_name.accepts(&nested));
        assert!(!by_name.accepts(&weights));

        let by_path = LayerFilter::new(&["shards/**".into()], &[]).unwrap();
        assert!(by_path.accepts(&weights));
        assert!(!by_path.accepts(&config));

        let top_only = LayerFilter::new(&["1_Pooling/*.json".into()], &[]).unwrap();
        assert!(top_only.accepts(&nested));
        assert!(!top_only.accepts(&config));

        let weights_only = LayerFilter::new(&[], &[Category::Weight]).unwrap();
        assert!(weights_only.accepts(&weights));
        assert!(!weights_only.accepts(&config));

        let both = LayerFilter::new(&["*.json".into()], &[Category::Weight]).unwrap();
        assert!(!both.accepts(&config), "both conditions must hold");
        assert!(LayerFilter::default().accepts(&config));
        assert!(LayerFilter::new(&["[".into()], &[]).is_err());
    }
}
