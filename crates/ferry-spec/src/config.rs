//! The ModelPack config (`application/vnd.cncf.model.config.v1+json`).
//!
//! The types mirror the spec's JSON schema: every object rejects unknown keys
//! (`additionalProperties: false`), and [`ModelPackConfig::from_json`] adds the
//! checks serde cannot express (RFC 3339 times, `name` non-empty, two-letter
//! language codes, at least one diffId).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use oci_spec::image::Digest;

/// Why a config is not a valid ModelPack config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON does not have the schema's shape.
    #[error("invalid modelpack config: {0}")]
    Shape(#[from] serde_json::Error),
    /// A field has the right type but an invalid value.
    #[error("invalid modelpack config: {field}: {reason}")]
    Value {
        /// JSON path of the field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole config document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPackConfig {
    /// REQUIRED: who made the model, what it is called.
    pub descriptor: ModelDescriptor,
    /// REQUIRED: the model's technical properties.
    pub config: ModelProperties,
    /// REQUIRED: the layers that make up the model.
    pub modelfs: ModelFs,
}

/// The `descriptor` object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelDescriptor {
    /// Creation time, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Authors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authors: Option<Vec<String>>,
    /// Vendor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model family (e.g. `llama`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Model name (at least one character).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Human-readable title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Documentation URL.
    #[serde(rename = "docURL", skip_serializing_if = "Option::is_none")]
    pub doc_url: Option<String>,
    /// Source URL.
    #[serde(rename = "sourceURL", skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Dataset URLs.
    #[serde(rename = "datasetsURL", skip_serializing_if = "Option::is_none")]
    pub datasets_url: Option<Vec<String>>,
    /// Source revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// SPDX license identifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Vec<String>>,
}

/// The `config` object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelProperties {
    /// Architecture (e.g. `transformer`, `LlamaForCausalLM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Weight format (e.g. `safetensors`, `gguf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Parameter count, e.g. `8b`, `6.7B`, `100m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param_size: Option<String>,
    /// Precision, e.g. `bfloat16`; comma separated when mixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Quantization method, e.g. `gptq`, `awq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// What the model takes and produces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// The `capabilities` object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Capabilities {
    /// Input modalities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_types: Option<Vec<Modality>>,
    /// Output modalities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_types: Option<Vec<Modality>>,
    /// Knowledge cutoff, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knowledge_cutoff: Option<String>,
    /// Whether the model reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// Whether the model can call tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_usage: Option<bool>,
    /// Whether this is a reward model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward: Option<bool>,
    /// Two-letter ISO 639 language codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
}

/// An input or output modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Text.
    Text,
    /// Images.
    Image,
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// Embedding vectors.
    Embedding,
    /// Anything else.
    Other,
}

/// The `modelfs` object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelFs {
    /// Always [`ModelFsType::Layers`].
    #[serde(rename = "type")]
    pub fs_type: ModelFsType,
    /// Digests of the uncompressed layers, in layer order.
    pub diff_ids: Vec<Digest>,
}

/// The only `modelfs.type` the spec defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFsType {
    /// `layers`.
    #[default]
    Layers,
}

impl ModelPackConfig {
    /// Parses and validates a config blob.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: ModelPackConfig = serde_json::from_slice(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the constraints that the types alone do not enforce.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.descriptor;
        if let Some(created) = &d.created_at {
            check_rfc3339("descriptor.createdAt", created)?;
        }
        if d.name.as_deref() == Some("") {
            return Err(value_error("descriptor.name", "must not be empty"));
        }
        if let Some(caps) = &self.config.capabilities {
            if let Some(cutoff) = &caps.knowledge_cutoff {
                check_rfc3339("config.capabilities.knowledgeCutoff", cutoff)?;
            }
            for lang in caps.languages.iter().flatten() {
                let two_lower = lang.len() == 2 && lang.bytes().all(|b| b.is_ascii_lowercase());
                if !two_lower {
                    return Err(value_error(
                        "config.capabilities.languages",
                        format!("{lang:?} is not a two-letter ISO 639 code"),
                    ));
                }
            }
        }
        if self.modelfs.diff_ids.is_empty() {
            return Err(value_error(
                "modelfs.diffIds",
                "must list at least one layer",
            ));
        }
        Ok(())
    }
}

fn value_error(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        field,
        reason: reason.into(),
    }
}

fn check_rfc3339(field: &'static str, value: &str) -> Result<(), ConfigError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|_| ())
        .map_err(|_| value_error(field, format!("{value:?} is not an RFC 3339 date-time")))
}

/// Formats a Unix timestamp as RFC 3339 in UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339_from_unix(seconds: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    t.format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_formats_as_rfc3339() {
        assert_eq!(rfc3339_from_unix(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_from_unix(1_700_000_000).unwrap(),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn minimal_config_serializes_without_empty_fields() {
        let config = ModelPackConfig {
            descriptor: ModelDescriptor {
                name: Some("m".into()),
                ..Default::default()
            },
            config: ModelProperties::default(),
            modelfs: ModelFs {
                fs_type: ModelFsType::Layers,
                diff_ids: vec![crate::digest::sha256_digest(b"x")],
            },
        };
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.starts_with(r#"{"descriptor":{"name":"m"},"config":{},"modelfs":{"type":"layers","diffIds":["sha256:"#));
        assert_eq!(ModelPackConfig::from_json(json.as_bytes()).unwrap(), config);
    }

    #[test]
    fn empty_name_and_bad_language_are_rejected() {
        let bad_name = br#"{"descriptor":{"name":""},"config":{},"modelfs":{"type":"layers","diffIds":["sha256:1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"]}}"#;
        assert!(ModelPackConfig::from_json(bad_name).is_err());
        let bad_lang = br#"{"descriptor":{},"config":{"capabilities":{"languages":["EN"]}},"modelfs":{"type":"layers","diffIds":["sha256:1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"]}}"#;
        assert!(ModelPackConfig::from_json(bad_lang).is_err());
    }
}
