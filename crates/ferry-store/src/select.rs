//! Which layers of an artifact to use: `fetch --include/--category`, and
//! the include/exclude globs of a mounted volume. A layer is judged by the
//! path it is placed at (a raw layer's file, a tar layer's directory) and
//! by its ModelPack category.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use ferry_spec::annotations as ann;
use ferry_spec::media::{Category, parse_layer_media_type};
use ferry_spec::oci::Descriptor;

use crate::error::{Result, StoreError};
use crate::extract::safe_components;

/// Every layer when empty; else the layers that match an include glob or
/// are of a listed category (the selectors add up: `--include config.json
/// --category weight` brings both), minus those matching an exclude glob.
#[derive(Debug, Clone, Default)]
pub struct LayerFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    patterns: Vec<String>,
    excluded: Vec<String>,
    categories: Vec<Category>,
}

impl LayerFilter {
    /// Compiles the include globs (`**` crosses directories; a glob without
    /// `/` also matches a file name at any depth).
    pub fn new(include: &[String], categories: &[Category]) -> Result<LayerFilter> {
        Ok(LayerFilter {
            include: globs(include)?,
            exclude: None,
            patterns: include.to_vec(),
            excluded: Vec::new(),
            categories: categories.to_vec(),
        })
    }

    /// Also leaves out the layers matching one of `exclude`.
    pub fn excluding(mut self, exclude: &[String]) -> Result<LayerFilter> {
        self.exclude = globs(exclude)?;
        self.excluded = exclude.to_vec();
        Ok(self)
    }

    /// True when nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none() && self.categories.is_empty()
    }

    /// True when `layer` is wanted.
    pub fn accepts(&self, layer: &Descriptor) -> bool {
        let selected = (self.include.is_none() && self.categories.is_empty())
            || matches(self.include.as_ref(), layer)
            || self.category_matches(layer);
        selected && !matches(self.exclude.as_ref(), layer)
    }

    fn category_matches(&self, layer: &Descriptor) -> bool {
        let media_type = layer.media_type().to_string();
        parse_layer_media_type(&media_type)
            .map(|(category, _)| category)
            .or_else(|| {
                ferry_spec::kitfile::parse_layer_media_type(&media_type)
                    .map(|(kind, _)| kind.layer_category())
            })
            .is_some_and(|category| self.categories.contains(&category))
    }

    /// The selectors as flags, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.patterns.is_empty() {
            parts.push(format!("--include {}", self.patterns.join(" ")));
        }
        if !self.categories.is_empty() {
            let names: Vec<&str> = self.categories.iter().map(|c| c.name()).collect();
            parts.push(format!("--category {}", names.join(",")));
        }
        let selected = parts.join(" or ");
        if self.excluded.is_empty() {
            selected
        } else {
            format!("{selected} without --exclude {}", self.excluded.join(" "))
        }
    }
}

fn globs(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| StoreError::InvalidGlob {
                pattern: pattern.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|source| StoreError::InvalidGlob {
            pattern: patterns.join(" "),
            source,
        })
}

fn matches(globs: Option<&GlobSet>, layer: &Descriptor) -> bool {
    let (Some(globs), Some(path)) = (globs, layer_path(layer)) else {
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
        assert!(LayerFilter::default().excluding(&["[".into()]).is_err());
        let dotted = layer("./shards//model-00001.safetensors", Category::Weight);
        assert!(
            by_path.accepts(&dotted),
            "a path is matched as it is placed"
        );
    }

    #[test]
    fn modelkit_layers_are_selected_by_their_section() {
        let kit = |segment: &str| {
            Descriptor::new(
                MediaType::Other(format!(
                    "application/vnd.kitops.modelkit.{segment}.v1.tar+gzip"
                )),
                1,
                ferry_spec::digest::sha256_digest(segment.as_bytes()),
            )
        };
        let weights = LayerFilter::new(&[], &[Category::Weight]).unwrap();
        assert!(weights.accepts(&kit("model")));
        assert!(weights.accepts(&kit("modelpart")));
        assert!(!weights.accepts(&kit("code")));
        let docs = LayerFilter::new(&[], &[Category::Doc]).unwrap();
        assert!(docs.accepts(&kit("prompts")));
        assert!(docs.accepts(&kit("docs")));
        assert!(!docs.accepts(&kit("dataset")));
    }

    #[test]
    fn excluded_layers_are_left_out_of_any_selection() {
        let weights = layer("shards/model-00001.safetensors", Category::Weight);
        let config = layer("config.json", Category::WeightConfig);
        let no_weights = LayerFilter::default()
            .excluding(&["*.safetensors".into()])
            .unwrap();
        assert!(!no_weights.is_empty());
        assert!(!no_weights.accepts(&weights));
        assert!(no_weights.accepts(&config));
        let narrowed = LayerFilter::new(&[], &[Category::Weight, Category::WeightConfig])
            .unwrap()
            .excluding(&["config.json".into()])
            .unwrap();
        assert!(narrowed.accepts(&weights));
        assert!(!narrowed.accepts(&config));
        assert!(narrowed.describe().contains("--exclude config.json"));
    }
}
