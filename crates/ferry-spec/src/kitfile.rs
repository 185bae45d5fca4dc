//! KitOps: the Kitfile (a ModelKit's recipe: YAML on disk, JSON as the
//! ModelKit's config blob) and the media types of ModelKit layers.
//!
//! ```yaml
//! manifestVersion: "1.0"
//! package: { name: llama-tiny, version: 1.0.0, authors: [Ada], license: Apache-2.0 }
//! model:   { name: tiny, path: ./model, format: safetensors, framework: pytorch }
//! code:    [ { path: ./src } ]
//! datasets: [ { name: eval, path: ./data/eval.csv } ]
//! docs:    [ { path: README.md } ]
//! ```
//!
//! Every path (a file or a directory) becomes one layer in KitOps, a tar of
//! that path relative to the Kitfile's context directory. ferry maps a
//! Kitfile onto ModelPack: each section gives the category of the files
//! below its paths, the package and model fields give the config's
//! metadata, and the whole Kitfile is kept (as KitOps itself does in the
//! ModelPack manifests it writes) in the `ml.kitops.modelkit.kitfile`
//! annotation, so nothing without a ModelPack field is lost.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::media::{Category, Encoding};

/// Media type of a ModelKit's config blob (the Kitfile as JSON).
pub const MEDIA_TYPE_MODELKIT_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
const LAYER_PREFIX: &str = "application/vnd.kitops.modelkit.";
/// The largest Kitfile ferry reads (KitOps' own are a few KiB).
pub const MAX_KITFILE_SIZE: usize = 4 << 20;

/// The sections of a Kitfile, each a kind of ModelKit layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KitLayerKind {
    /// `model.path`.
    Model,
    /// `model.parts[].path`.
    ModelPart,
    /// `code[].path`.
    Code,
    /// `datasets[].path`.
    Dataset,
    /// `docs[].path`.
    Docs,
    /// `prompts[].path`.
    Prompts,
}

impl KitLayerKind {
    /// The media-type segment (`application/vnd.kitops.modelkit.<segment>.v1.tar`).
    pub fn segment(self) -> &'static str {
        match self {
            KitLayerKind::Model => "model",
            KitLayerKind::ModelPart => "modelpart",
            KitLayerKind::Code => "code",
            KitLayerKind::Dataset => "dataset",
            KitLayerKind::Docs => "docs",
            KitLayerKind::Prompts => "prompts",
        }
    }

    /// The ModelPack category of a file in this section. Model files are
    /// weights unless the classifier knows them as weight configuration
    /// (`config.json`, tokenizers): KitOps puts both under `model.path`.
    /// Prompts have no ModelPack category; they are documents to a loader.
    pub fn category_of(self, rel_path: &str) -> Category {
        match self {
            KitLayerKind::Model | KitLayerKind::ModelPart => {
                match crate::classify::classify(rel_path) {
                    Category::WeightConfig => Category::WeightConfig,
                    _ => Category::Weight,
                }
            }
            KitLayerKind::Code => Category::Code,
            KitLayerKind::Dataset => Category::Dataset,
            KitLayerKind::Docs | KitLayerKind::Prompts => Category::Doc,
        }
    }

    /// The category of a whole layer of this section (what `fetch` and
    /// `mount --category` select by): a model layer is weights.
    pub fn layer_category(self) -> Category {
        match self {
            KitLayerKind::Model | KitLayerKind::ModelPart => Category::Weight,
            KitLayerKind::Code => Category::Code,
            KitLayerKind::Dataset => Category::Dataset,
            KitLayerKind::Docs | KitLayerKind::Prompts => Category::Doc,
        }
    }

    /// The layer media type KitOps writes for this section and encoding.
    pub fn media_type(self, encoding: Encoding) -> String {
        format!("{LAYER_PREFIX}{}.v1.{}", self.segment(), encoding.suffix())
    }
}

/// Parses a ModelKit layer media type: its section and its (tar) encoding.
pub fn parse_layer_media_type(media_type: &str) -> Option<(KitLayerKind, Encoding)> {
    let rest = media_type.strip_prefix(LAYER_PREFIX)?;
    let (segment, suffix) = rest.split_once(".v1.")?;
    let kind = match segment {
        "model" => KitLayerKind::Model,
        "modelpart" => KitLayerKind::ModelPart,
        "code" => KitLayerKind::Code,
        "dataset" => KitLayerKind::Dataset,
        "docs" => KitLayerKind::Docs,
        "prompts" => KitLayerKind::Prompts,
        _ => return None,
    };
    let encoding = match suffix {
        "tar" => Encoding::Tar,
        "tar+gzip" => Encoding::TarGzip,
        "tar+zstd" => Encoding::TarZstd,
        _ => return None,
    };
    Some((kind, encoding))
}

/// Why a Kitfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KitfileError {
    /// Not YAML (or, for a config blob, not JSON).
    #[error("not a valid Kitfile: {0}")]
    Syntax(String),
    /// Valid YAML, but not a Kitfile's shape.
    #[error("not a valid Kitfile: {0}")]
    Shape(String),
    /// A path ferry cannot pack or place.
    #[error("{field}: path {path:?} {reason}")]
    Path {
        /// Where in the Kitfile (`model.path`, `code[1].path`).
        field: String,
        /// The path as written.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Larger than [`MAX_KITFILE_SIZE`].
    #[error("Kitfile is {0} bytes, more than the {MAX_KITFILE_SIZE} a Kitfile may have")]
    TooLarge(usize),
}

/// `package`: who made the ModelKit.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Package {
    /// Name.
    #[serde(default, deserialize_with = "scalar")]
    pub name: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "scalar")]
    pub version: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "scalar")]
    pub description: Option<String>,
    /// License (SPDX).
    #[serde(default, deserialize_with = "scalar")]
    pub license: Option<String>,
    /// Authors.
    #[serde(default)]
    pub authors: Vec<String>,
}

/// `model`: the model and its parts.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Model {
    /// Name.
    #[serde(default, deserialize_with = "scalar")]
    pub name: Option<String>,
    /// The model's file or directory.
    #[serde(default, deserialize_with = "scalar")]
    pub path: Option<String>,
    /// License (SPDX).
    #[serde(default, deserialize_with = "scalar")]
    pub license: Option<String>,
    /// Framework (`pytorch`, `transformers`, ...): no ModelPack field.
    #[serde(default, deserialize_with = "scalar")]
    pub framework: Option<String>,
    /// Weight format (`safetensors`, `gguf`, ...).
    #[serde(default, deserialize_with = "scalar")]
    pub format: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "scalar")]
    pub version: Option<String>,
    /// Description.
    #[serde(default, deserialize_with = "scalar")]
    pub description: Option<String>,
    /// Further files of the model (adapters, projectors, ...).
    #[serde(default)]
    pub parts: Vec<Entry>,
    /// The layer KitOps packed `path` into (in a ModelKit's config).
    #[serde(default, deserialize_with = "scalar")]
    pub digest: Option<String>,
}

/// One entry of `model.parts`, `code`, `datasets`, `docs` or `prompts`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Entry {
    /// The file or directory.
    #[serde(default, deserialize_with = "scalar")]
    pub path: Option<String>,
    /// License (SPDX).
    #[serde(default, deserialize_with = "scalar")]
    pub license: Option<String>,
    /// The layer KitOps packed `path` into (in a ModelKit's config).
    #[serde(default, deserialize_with = "scalar")]
    pub digest: Option<String>,
}

/// A parsed Kitfile: the fields ferry maps, and the whole document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kitfile {
    /// `manifestVersion` (KitOps writes `1.0.0`).
    #[serde(default, deserialize_with = "scalar")]
    pub manifest_version: Option<String>,
    /// `package`.
    #[serde(default)]
    pub package: Package,
    /// `model`.
    #[serde(default)]
    pub model: Option<Model>,
    /// `code`.
    #[serde(default)]
    pub code: Vec<Entry>,
    /// `datasets`.
    #[serde(default)]
    pub datasets: Vec<Entry>,
    /// `docs`.
    #[serde(default)]
    pub docs: Vec<Entry>,
    /// `prompts`.
    #[serde(default)]
    pub prompts: Vec<Entry>,
    /// The document as read, every field kept (what the annotation holds).
    #[serde(skip)]
    pub document: Value,
}

/// One path of a Kitfile: a layer of the ModelKit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitPath {
    /// The section it is listed in.
    pub kind: KitLayerKind,
    /// Relative to the context directory, without `./` or a trailing `/`.
    pub path: String,
    /// Where in the Kitfile (`code[1].path`), for messages.
    pub field: String,
    /// Its layer's digest, when the Kitfile is a ModelKit's config.
    pub digest: Option<String>,
}

/// What a Kitfile says about the model, in ModelPack's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KitMetadata {
    /// `package.name`, else `model.name`.
    pub name: Option<String>,
    /// `model.name` (the model's own name is its title).
    pub title: Option<String>,
    /// `package.version`, else `model.version`.
    pub version: Option<String>,
    /// `package.description`, else `model.description`.
    pub description: Option<String>,
    /// `package.authors`.
    pub authors: Vec<String>,
    /// Every license named anywhere, sorted and deduplicated.
    pub licenses: Vec<String>,
    /// `model.format`.
    pub format: Option<String>,
}

impl Kitfile {
    /// Reads a Kitfile from YAML (what `kit pack` reads; JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Kitfile, KitfileError> {
        if text.len() > MAX_KITFILE_SIZE {
            return Err(KitfileError::TooLarge(text.len()));
        }
        // serde-saphyr bounds aliases and nesting, so a hostile file cannot
        // expand into gigabytes.
        let document: Value =
            serde_saphyr::from_str(text).map_err(|e| KitfileError::Syntax(e.to_string()))?;
        Self::from_document(document)
    }

    /// Reads a ModelKit's config blob (the Kitfile as JSON).
    pub fn from_json(bytes: &[u8]) -> Result<Kitfile, KitfileError> {
        if bytes.len() > MAX_KITFILE_SIZE {
            return Err(KitfileError::TooLarge(bytes.len()));
        }
        let document: Value =
            serde_json::from_slice(bytes).map_err(|e| KitfileError::Syntax(e.to_string()))?;
        Self::from_document(document)
    }

    fn from_document(document: Value) -> Result<Kitfile, KitfileError> {
        if !document.is_object() {
            return Err(KitfileError::Shape("the top level is not a mapping".into()));
        }
        let mut kitfile: Kitfile = serde_json::from_value(document.clone())
            .map_err(|e| KitfileError::Shape(e.to_string()))?;
        kitfile.document = document;
        Ok(kitfile)
    }

    /// True when `text` reads as a Kitfile (a mapping with
    /// `manifestVersion`), not as a Modelfile.
    pub fn recognises(text: &str) -> bool {
        Kitfile::from_yaml(text).is_ok_and(|k| k.manifest_version.is_some())
    }

    /// Every path, in the order KitOps lays out its layers, each checked:
    /// relative, inside the context directory, not a URL or a reference
    /// to another ModelKit.
    pub fn paths(&self) -> Result<Vec<KitPath>, KitfileError> {
        let mut out = Vec::new();
        let mut add = |kind, field: String, path: &Option<String>, digest: &Option<String>| {
            if let Some(path) = path {
                out.push(KitPath {
                    kind,
                    path: clean_path(&field, path)?,
                    field,
                    digest: digest.clone(),
                });
            }
            Ok::<(), KitfileError>(())
        };
        if let Some(model) = &self.model {
            add(
                KitLayerKind::Model,
                "model.path".into(),
                &model.path,
                &model.digest,
            )?;
            for (i, part) in model.parts.iter().enumerate() {
                add(
                    KitLayerKind::ModelPart,
                    format!("model.parts[{i}].path"),
                    &part.path,
                    &part.digest,
                )?;
            }
        }
        for (kind, section, entries) in [
            (KitLayerKind::Code, "code", &self.code),
            (KitLayerKind::Dataset, "datasets", &self.datasets),
            (KitLayerKind::Docs, "docs", &self.docs),
            (KitLayerKind::Prompts, "prompts", &self.prompts),
        ] {
            for (i, entry) in entries.iter().enumerate() {
                add(
                    kind,
                    format!("{section}[{i}].path"),
                    &entry.path,
                    &entry.digest,
                )?;
            }
        }
        Ok(out)
    }

    /// The Kitfile path each of a ModelKit's layers holds, given the
    /// layers' media types and digests: by the digest KitOps records in
    /// its config, else the n-th layer of a kind is the n-th path of it.
    pub fn layer_paths<'a>(
        &self,
        layers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<Option<KitPath>> {
        let paths = self.paths().unwrap_or_default();
        let mut seen: std::collections::HashMap<KitLayerKind, usize> = Default::default();
        layers
            .into_iter()
            .map(|(media_type, digest)| {
                if let Some(path) = paths.iter().find(|p| p.digest.as_deref() == Some(digest)) {
                    return Some(path.clone());
                }
                let (kind, _) = parse_layer_media_type(media_type)?;
                let nth = seen.entry(kind).or_default();
                let found = paths.iter().filter(|p| p.kind == kind).nth(*nth).cloned();
                *nth += 1;
                found
            })
            .collect()
    }

    /// [`Kitfile::layer_paths`] of a ModelKit manifest's layers, in order.
    pub fn manifest_layer_paths(
        &self,
        manifest: &crate::oci::ImageManifest,
    ) -> Vec<Option<KitPath>> {
        let layers: Vec<(String, String)> = manifest
            .layers()
            .iter()
            .map(|l| (l.media_type().to_string(), l.digest().to_string()))
            .collect();
        self.layer_paths(layers.iter().map(|(m, d)| (m.as_str(), d.as_str())))
    }

    /// The metadata ModelPack has fields for.
    pub fn metadata(&self) -> KitMetadata {
        let model = self.model.clone().unwrap_or_default();
        let package = &self.package;
        let mut licenses = BTreeSet::new();
        let entries = model
            .parts
            .iter()
            .chain(&self.code)
            .chain(&self.datasets)
            .chain(&self.docs)
            .chain(&self.prompts);
        for license in [&package.license, &model.license]
            .into_iter()
            .chain(entries.map(|e| &e.license))
            .flatten()
        {
            licenses.insert(license.clone());
        }
        KitMetadata {
            name: package.name.clone().or(model.name.clone()),
            title: model.name.clone(),
            version: package.version.clone().or(model.version.clone()),
            description: package.description.clone().or(model.description.clone()),
            authors: package.authors.clone(),
            licenses: licenses.into_iter().collect(),
            format: model.format.clone(),
        }
    }

    /// The fields with no ModelPack home (kept only in the Kitfile
    /// annotation), as dotted paths: `model.framework`,
    /// `datasets[0].description`, sections ferry does not know.
    pub fn unmapped_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_leaves(&self.document, String::new(), &mut out);
        let package_version = self.package.version.is_some();
        let package_description = self.package.description.is_some();
        out.retain(|field| !is_mapped(field, package_version, package_description));
        out
    }

    /// The whole Kitfile as compact JSON with sorted keys: the value of the
    /// `ml.kitops.modelkit.kitfile` annotation.
    pub fn annotation_json(&self) -> String {
        crate::json::canonical_json(&self.document)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default()
    }
}

/// Accepts any YAML scalar as a string: `version: 1.0` is a number to YAML
/// but a version to the person who wrote it.
fn scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a single value, found {other}"
        ))),
    }
}

/// A Kitfile path made relative and plain, or why it cannot be packed.
fn clean_path(field: &str, path: &str) -> Result<String, KitfileError> {
    let error = |reason| KitfileError::Path {
        field: field.to_string(),
        path: path.to_string(),
        reason,
    };
    if path.contains("://") {
        return Err(error("is a URL: ferry packs local files only"));
    }
    if path.starts_with('/') {
        return Err(error(
            "is absolute: Kitfile paths are relative to the context directory",
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(error("leaves the context directory")),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        // KitOps reads "." as the whole context.
        return Ok(String::new());
    }
    Ok(parts.join("/"))
}

fn collect_leaves(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                // Parameters are free-form: one field, whatever is inside.
                if key == "parameters" {
                    out.push(path);
                } else {
                    collect_leaves(child, path, out);
                }
            }
        }
        // Lists of strings (authors) are one field; lists of entries are walked.
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (i, child) in items.iter().enumerate() {
                collect_leaves(child, format!("{prefix}[{i}]"), out);
            }
        }
        // Nothing in it, nothing to keep.
        Value::Null => {}
        Value::Object(map) if map.is_empty() => {}
        Value::Array(items) if items.is_empty() => {}
        _ => out.push(prefix),
    }
}

/// True for the fields [`Kitfile::metadata`] and [`Kitfile::paths`] carry
/// over, and the layer digests KitOps adds to its config (they name the
/// source's layers, which the conversion replaces).
fn is_mapped(field: &str, package_version: bool, package_description: bool) -> bool {
    let generic = strip_indexes(field);
    match generic.as_str() {
        "manifestVersion"
        | "package.name"
        | "package.version"
        | "package.description"
        | "package.license"
        | "package.authors"
        | "model.name"
        | "model.path"
        | "model.license"
        | "model.format"
        | "model.parts.path"
        | "model.parts.license" => true,
        "model.version" => !package_version,
        "model.description" => !package_description,
        _ => {
            let (section, key) = generic.rsplit_once('.').unwrap_or(("", generic.as_str()));
            let listed = matches!(
                section,
                "code" | "datasets" | "docs" | "prompts" | "model" | "model.parts"
            );
            listed && matches!(key, "path" | "license" | "digest" | "diffId")
        }
    }
}

/// `datasets[0].path` → `datasets.path`.
fn strip_indexes(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut skipping = false;
    for c in field.chars() {
        match c {
            '[' => skipping = true,
            ']' => skipping = false,
            c if !skipping => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KITFILE: &str = r#"
manifestVersion: 1.0.0
package:
  name: llama-tiny
  version: 1.0
  description: A tiny llama
  authors: [Ada, Grace]
  license: Apache-2.0
model:
  name: tiny
  path: ./model/
  framework: pytorch
  format: safetensors
  parameters:
    temperature: 0.7
  parts:
    - path: adapters/lora.safetensors
      type: lora
      license: MIT
code:
  - path: src
    description: training scripts
datasets:
  - name: eval
    path: ./data/eval.csv
    license: CC-BY-4.0
docs:
  - path: README.md
prompts:
  - path: prompts/system.txt
"#;

    #[test]
    fn paths_come_in_layer_order_and_plain() {
        let kitfile = Kitfile::from_yaml(KITFILE).unwrap();
        let paths: Vec<_> = kitfile
            .paths()
            .unwrap()
            .into_iter()
            .map(|p| (p.kind, p.path))
            .collect();
        assert_eq!(
            paths,
            vec![
                (KitLayerKind::Model, "model".to_string()),
                (
                    KitLayerKind::ModelPart,
                    "adapters/lora.safetensors".to_string()
                ),
                (KitLayerKind::Code, "src".to_string()),
                (KitLayerKind::Dataset, "data/eval.csv".to_string()),
                (KitLayerKind::Docs, "README.md".to_string()),
                (KitLayerKind::Prompts, "prompts/system.txt".to_string()),
            ]
        );
    }

    #[test]
    fn layers_find_their_paths_by_digest_else_by_order() {
        let mut kitfile = Kitfile::from_yaml(KITFILE).unwrap();
        kitfile.code[0].digest = Some("sha256:c0de".into());
        let code = KitLayerKind::Code.media_type(Encoding::Tar);
        let docs = KitLayerKind::Docs.media_type(Encoding::TarGzip);
        let found = kitfile.layer_paths([
            (docs.as_str(), "sha256:d0c5"),
            ("application/vnd.other", "sha256:c0de"),
            ("application/vnd.other", "sha256:0"),
        ]);
        let paths: Vec<_> = found
            .iter()
            .map(|p| p.as_ref().map(|p| p.path.as_str()))
            .collect();
        assert_eq!(paths, vec![Some("README.md"), Some("src"), None]);
        assert!(kitfile.layer_paths([(code.as_str(), "sha256:1")])[0].is_some());
    }

    #[test]
    fn metadata_maps_package_and_model() {
        let metadata = Kitfile::from_yaml(KITFILE).unwrap().metadata();
        assert_eq!(metadata.name.as_deref(), Some("llama-tiny"));
        assert_eq!(metadata.title.as_deref(), Some("tiny"));
        assert_eq!(metadata.version.as_deref(), Some("1.0"));
        assert_eq!(metadata.format.as_deref(), Some("safetensors"));
        assert_eq!(metadata.authors, vec!["Ada", "Grace"]);
        assert_eq!(metadata.licenses, vec!["Apache-2.0", "CC-BY-4.0", "MIT"]);
    }

    #[test]
    fn fields_without_a_modelpack_home_are_named() {
        let unmapped = Kitfile::from_yaml(KITFILE).unwrap().unmapped_fields();
        assert_eq!(
            unmapped,
            vec![
                "code[0].description",
                "datasets[0].name",
                "model.framework",
                "model.parameters",
                "model.parts[0].type",
            ]
        );
    }

    #[test]
    fn empty_mappings_and_lists_are_no_fields() {
        let kitfile = Kitfile::from_json(b"{\"package\": {}, \"code\": [], \"x\": {}}").unwrap();
        assert_eq!(kitfile.unmapped_fields(), Vec::<String>::new());
        assert_eq!(
            Kitfile::from_json(b"{}").unwrap().unmapped_fields(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_annotation_keeps_every_field() {
        let kitfile = Kitfile::from_yaml(KITFILE).unwrap();
        let json = kitfile.annotation_json();
        let back = Kitfile::from_json(json.as_bytes()).unwrap();
        assert_eq!(back.document, kitfile.document);
        assert!(json.contains(r#""framework":"pytorch""#), "{json}");
        assert!(json.contains(r#""temperature":0.7"#), "{json}");
    }

    #[test]
    fn bad_paths_are_refused() {
        for (path, reason) in [
            ("/etc/passwd", "absolute"),
            ("../outside", "leaves"),
            ("model/../../x", "leaves"),
            ("s3://bucket/model", "URL"),
        ] {
            let text = format!("manifestVersion: 1.0.0\nmodel:\n  path: {path}\n");
            let err = Kitfile::from_yaml(&text).unwrap().paths().unwrap_err();
            assert!(err.to_string().contains(reason), "{path}: {err}");
        }
    }

    #[test]
    fn modelfiles_and_garbage_are_not_kitfiles() {
        assert!(Kitfile::recognises(KITFILE));
        assert!(!Kitfile::recognises("NAME foo\nMODEL *.safetensors\n"));
        assert!(!Kitfile::recognises("package:\n  name: x\n"));
        assert!(Kitfile::from_yaml("- a\n- b\n").is_err());
        assert!(Kitfile::from_yaml("model: [unclosed").is_err());
        let err = Kitfile::from_yaml("manifestVersion: 1\nmodel:\n  path: [a, b]\n").unwrap_err();
        assert!(err.to_string().contains("single value"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut previous = 'a';
        for name in 'b'..='p' {
            text.push_str(&format!(
                "{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
            ));
            previous = name;
        }
        assert!(Kitfile::from_yaml(&text).is_err());
    }

    #[test]
    fn layer_media_types_round_trip() {
        for kind in [
            KitLayerKind::Model,
            KitLayerKind::ModelPart,
            KitLayerKind::Code,
            KitLayerKind::Dataset,
            KitLayerKind::Docs,
            KitLayerKind::Prompts,
        ] {
            for encoding in [Encoding::Tar, Encoding::TarGzip, Encoding::TarZstd] {
                let media_type = kind.media_type(encoding);
                assert_eq!(parse_layer_media_type(&media_type), Some((kind, encoding)));
            }
        }
        assert_eq!(
            parse_layer_media_type("application/vnd.kitops.modelkit.model.v1.raw"),
            None
        );
        assert_eq!(
            KitLayerKind::Model.category_of("model/config.json"),
            Category::WeightConfig
        );
        assert_eq!(
            KitLayerKind::Model.category_of("model/model.safetensors"),
            Category::Weight
        );
        assert_eq!(
            KitLayerKind::Prompts.category_of("p/system.txt"),
            Category::Doc
        );
    }
}
