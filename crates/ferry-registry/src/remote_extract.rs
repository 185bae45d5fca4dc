//! `ferry pull --extract` and `ferry fetch`: files from a registry (its
//! mirrors first) straight into a directory, nothing kept in the store.
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
use ferry_spec::media::{Category, parse_layer_media_type};
use ferry_spec::oci::{Descriptor, Digest};
use ferry_store::StoreError;
use ferry_store::extract::{
    ExtractOptions, Extracted, LayerPlacement, Staging, place_layer_verified, placement,
    safe_components,
};

use crate::bridge::consume_blocking;
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Missing, Result, join_error};
use crate::platform::Platform;
use crate::progress::TransferProgress;
use crate::sources::ReadSources;
use crate::transfer::{is_foreign, resolve_manifest};

/// Which layers to fetch: every layer when empty; else the layers that
/// match an `--include` glob or are of a listed category (the selectors add
/// up: `--include config.json --category weight` brings both).
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
                    .map_err(|e| {
                        ClientError::invalid_input_because(format!("invalid glob {pattern:?}"), e)
                    })?;
                builder.add(glob);
            }
            Some(
                builder.build().map_err(|e| {
                    ClientError::invalid_input_because("invalid --include globs", e)
                })?,
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

    /// True when `layer` is wanted: no filter, or a glob matches its
    /// path, or its category is listed.
    pub fn accepts(&self, layer: &Descriptor) -> bool {
        self.is_empty() || self.glob_matches(layer) || self.category_matches(layer)
    }

    fn glob_matches(&self, layer: &Descriptor) -> bool {
        let (Some(globs), Some(path)) = (&self.globs, layer_path(layer)) else {
            return false;
        };
        // Matched as placed: `./a//b` is `a/b`.
        let Ok(parts) = safe_components(&path) else {
            return false;
        };
        let path = parts.join("/");
        let name = parts.last().map_or("", String::as_str);
        globs.is_match(&path) || globs.is_match(name)
    }

    fn category_matches(&self, layer: &Descriptor) -> bool {
        parse_layer_media_type(layer.media_type().as_ref())
            .is_some_and(|(category, _)| self.categories.contains(&category))
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
        parts.join(" or ")
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
    let root = staging.root().to_path_buf();
    let limits = ferry_store::decompress::Limits::from_env()?;
    let placed: Vec<Extracted> = stream::iter(selected.iter().zip(selected_diff_ids))
        .map(|(layer, diff_id)| {
            place_remote_layer(
                client,
                &sources,
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
    root: PathBuf,
    progress: &dyn TransferProgress,
) -> Result<Extracted> {
    let digest = layer.digest();
    let (position, body) = sources
        .first(async |endpoint| {
            let body = client.get_blob(endpoint, digest, 0).await?;
            body.check_length(endpoint, layer)?;
            Ok(body)
        })
        .await?;
    let registry = sources
        .endpoints()
        .nth(position)
        .map_or_else(|| sources.origin().registry.clone(), |e| e.registry.clone());
    progress.blob_started(digest, layer.size());
    let owned = layer.clone();
    let placed = consume_blocking(body.stream, digest, progress, move |reader| {
        place_layer_verified(&owned, reader, &root, diff_id.as_ref(), &limits).map_err(
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

        let either = LayerFilter::new(&["config.json".into()], &[Category::Weight]).unwrap();
        assert!(either.accepts(&config), "a file the glob names");
        assert!(either.accepts(&weights), "a file of the category");
        assert!(!either.accepts(&layer("README.md", Category::Doc)));
        assert!(either.describe().contains(" or "), "{}", either.describe());
        assert!(LayerFilter::default().accepts(&config));
        assert!(LayerFilter::new(&["[".into()], &[]).is_err());
        let dotted = layer("./shards//model-00001.safetensors", Category::Weight);
        assert!(
            by_path.accepts(&dotted),
            "a path is matched as it is placed"
        );
    }

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
