//! Media types: ModelPack's five file categories times four encodings, and
//! the OCI, Docker and Wasm types ferry reads or writes beside them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Manifest `artifactType` of a ModelPack artifact.
pub const ARTIFACT_TYPE_MODEL: &str = "application/vnd.cncf.model.manifest.v1+json";
/// Media type of the ModelPack config blob.
pub const MEDIA_TYPE_MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// The config media type modctl wrote before v0.2.0 (legacy `vnd.cnai`).
pub const MEDIA_TYPE_LEGACY_MODEL_CONFIG: &str = "application/vnd.cnai.model.config.v1+json";
/// The manifest `artifactType` modctl wrote before v0.2.0.
pub const ARTIFACT_TYPE_LEGACY_MODEL: &str = "application/vnd.cnai.model.manifest.v1+json";
/// The OCI image manifest media type.
pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI empty descriptor media type (content `{}`).
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker's schema 2 manifest, which registries and layouts still hold.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI's image config.
pub const MEDIA_TYPE_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker's image config, whose `rootfs.diff_ids` mean what OCI's do.
pub const MEDIA_TYPE_DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker's manifest list, the index of schema 2.
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Config of a Wasm artifact (CNCF TAG Runtime "Wasm OCI Artifact layout"):
/// this media type alone marks the artifact, the layout sets no `artifactType`.
pub const MEDIA_TYPE_WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer holding a Wasm module's or component's bytes in the Wasm OCI
/// Artifact layout (what wkg, oci-wasm and runwasi's shims read).
pub const MEDIA_TYPE_WASM_LAYER: &str = "application/wasm";
/// wasm-to-oci's layer type for the same bytes (Spin reads it too).
pub const MEDIA_TYPE_WASM_TO_OCI_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The `oci-layout` file of an OCI image layout.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// True for an image manifest, OCI or Docker schema 2.
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_IMAGE_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

/// True for an index of manifests, OCI or Docker's manifest list.
pub fn is_image_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_IMAGE_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// The content of the OCI empty descriptor: the config of artifacts without one.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Media type of a file layer when nothing more specific is known.
pub const DEFAULT_LAYER_MEDIA_TYPE: &str = "application/octet-stream";

const PREFIX: &str = "application/vnd.cncf.model.";
/// modctl before v0.2.0 wrote this prefix; readers accept it.
const LEGACY_PREFIX: &str = "application/vnd.cnai.model.";

/// The five ModelPack file categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Model weights (`.safetensors`, `.gguf`, ...).
    Weight,
    /// Configuration needed to use the weights: `config.json`, tokenizers.
    #[serde(rename = "config")]
    WeightConfig,
    /// Documentation: README, LICENSE, model card.
    Doc,
    /// Code: Python, scripts, notebooks.
    Code,
    /// Datasets.
    Dataset,
}

impl Category {
    /// Every category, in the order ferry places layers in a manifest.
    pub const ALL: [Category; 5] = [
        Category::WeightConfig,
        Category::Weight,
        Category::Code,
        Category::Doc,
        Category::Dataset,
    ];

    /// The media-type segment: `weight`, `weight.config`, `doc`, `code`, `dataset`.
    pub fn media_segment(self) -> &'static str {
        match self {
            Category::Weight => "weight",
            Category::WeightConfig => "weight.config",
            Category::Doc => "doc",
            Category::Code => "code",
            Category::Dataset => "dataset",
        }
    }

    /// The short name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Category::Weight => "weight",
            Category::WeightConfig => "config",
            Category::Doc => "doc",
            Category::Code => "code",
            Category::Dataset => "dataset",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "weight" | "weights" | "model" => Ok(Category::Weight),
            "config" | "weight.config" | "weight-config" => Ok(Category::WeightConfig),
            "doc" | "docs" => Ok(Category::Doc),
            "code" => Ok(Category::Code),
            "dataset" | "datasets" => Ok(Category::Dataset),
            other => Err(format!(
                "unknown category {other:?} (expected weight, config, doc, code or dataset)"
            )),
        }
    }
}

/// How a layer's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// The file's bytes, unarchived and uncompressed.
    Raw,
    /// An uncompressed tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGzip,
    /// A zstd-compressed tar archive.
    TarZstd,
}

impl Encoding {
    /// The media-type suffix: `raw`, `tar`, `tar+gzip`, `tar+zstd`.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Tar => "tar",
            Encoding::TarGzip => "tar+gzip",
            Encoding::TarZstd => "tar+zstd",
        }
    }

    /// True for the three tar encodings.
    pub fn is_tar(self) -> bool {
        !matches!(self, Encoding::Raw)
    }

    fn from_suffix(s: &str) -> Option<Self> {
        match s {
            "raw" => Some(Encoding::Raw),
            "tar" => Some(Encoding::Tar),
            "tar+gzip" => Some(Encoding::TarGzip),
            "tar+zstd" => Some(Encoding::TarZstd),
            _ => None,
        }
    }
}

/// True when `value` has the shape of a media type (`type/subtype`, RFC 6838
/// characters only).
pub fn is_valid_media_type(value: &str) -> bool {
    value.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty()
            && !s.is_empty()
            && !s.contains('/')
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+/".contains(&b))
    })
}

/// The media type of a ModelPack layer, e.g. `application/vnd.cncf.model.weight.v1.raw`.
pub fn layer_media_type(category: Category, encoding: Encoding) -> String {
    format!(
        "{PREFIX}{}.v1.{}",
        category.media_segment(),
        encoding.suffix()
    )
}

/// Parses a ModelPack layer media type (current or legacy `vnd.cnai` prefix).
pub fn parse_layer_media_type(media_type: &str) -> Option<(Category, Encoding)> {
    let rest = media_type
        .strip_prefix(PREFIX)
        .or_else(|| media_type.strip_prefix(LEGACY_PREFIX))?;
    let (segment, suffix) = rest.split_once(".v1.")?;
    let category = match segment {
        "weight" => Category::Weight,
        "weight.config" => Category::WeightConfig,
        "doc" => Category::Doc,
        "code" => Category::Code,
        "dataset" => Category::Dataset,
        _ => return None,
    };
    Some((category, Encoding::from_suffix(suffix)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_round_trip_for_every_category_and_encoding() {
        for category in Category::ALL {
            for encoding in [
                Encoding::Raw,
                Encoding::Tar,
                Encoding::TarGzip,
                Encoding::TarZstd,
            ] {
                let mt = layer_media_type(category, encoding);
                assert_eq!(parse_layer_media_type(&mt), Some((category, encoding)));
            }
        }
        assert_eq!(
            layer_media_type(Category::WeightConfig, Encoding::Raw),
            "application/vnd.cncf.model.weight.config.v1.raw"
        );
    }

    #[test]
    fn manifests_and_indexes_of_both_families() {
        assert!(is_image_manifest(MEDIA_TYPE_IMAGE_MANIFEST));
        assert!(is_image_manifest(MEDIA_TYPE_DOCKER_MANIFEST));
        assert!(!is_image_manifest(MEDIA_TYPE_IMAGE_INDEX));
        assert!(is_image_index(MEDIA_TYPE_DOCKER_MANIFEST_LIST));
        assert!(is_image_index(MEDIA_TYPE_IMAGE_INDEX));
        assert!(!is_image_index(MEDIA_TYPE_EMPTY));
    }

    #[test]
    fn media_type_shapes() {
        assert!(is_valid_media_type("application/vnd.oci.empty.v1+json"));
        assert!(!is_valid_media_type("application"));
        assert!(!is_valid_media_type("a/b/c"));
        assert!(!is_valid_media_type("a/ b"));
        assert!(!is_valid_media_type("/b"));
    }

    #[test]
    fn legacy_prefix_is_accepted_and_garbage_rejected() {
        assert_eq!(
            parse_layer_media_type("application/vnd.cnai.model.weight.v1.tar"),
            Some((Category::Weight, Encoding::Tar))
        );
        assert_eq!(
            parse_layer_media_type("application/vnd.cncf.model.weight.v2.raw"),
            None
        );
        assert_eq!(
            parse_layer_media_type("application/vnd.cncf.model.foo.v1.raw"),
            None
        );
        assert_eq!(parse_layer_media_type("application/octet-stream"), None);
    }
}
