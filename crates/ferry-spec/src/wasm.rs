//! The config document of a Wasm OCI artifact (CNCF TAG Runtime, "Wasm OCI
//! Artifact layout", media type `application/vnd.wasm.config.v0+json`).
//!
//! Field names follow the layout's JSON: `created` (RFC 3339, required),
//! `author` (optional), `architecture` (always `wasm`), `os` (`wasip1` for
//! core modules, plain Wasm included, since the field must hold a GOOS-like
//! value; `wasip2` for components), `layerDigests` (every layer's digest in
//! manifest order, so that two artifacts never share a config digest) and
//! `component` (required when `os` is `wasip2`).

use serde::{Deserialize, Serialize};

/// The `architecture` of every Wasm artifact.
pub const ARCHITECTURE: &str = "wasm";
/// The `os` of a core module (WASI preview 1, or no WASI at all).
pub const OS_MODULE: &str = "wasip1";
/// The `os` of a component (WASI preview 2, the component model).
pub const OS_COMPONENT: &str = "wasip2";

/// `application/vnd.wasm.config.v0+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// When the artifact was made (RFC 3339).
    pub created: String,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always [`ARCHITECTURE`].
    pub architecture: String,
    /// [`OS_MODULE`] or [`OS_COMPONENT`].
    pub os: String,
    /// The layers' digests, in manifest order.
    pub layer_digests: Vec<String>,
    /// What a component imports and exports; absent for core modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
}

/// The `component` object: a component's top-level import and export names
/// (interfaces as `namespace:package/interface@version`, plain names as
/// they are).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Names the component exports.
    pub exports: Vec<String>,
    /// Names the component imports.
    pub imports: Vec<String>,
    /// The WIT world it targets, when known (indexing metadata only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_use_the_layout_names_and_optional_ones_are_left_out() {
        let config = WasmConfig {
            created: "1970-01-01T00:00:00Z".into(),
            author: None,
            architecture: ARCHITECTURE.into(),
            os: OS_COMPONENT.into(),
            layer_digests: vec!["sha256:ab".into()],
            component: Some(Component {
                exports: vec!["wasi:cli/run@0.2.0".into()],
                imports: vec!["wasi:cli/environment@0.2.0".into()],
                target: None,
            }),
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["layerDigests"][0], "sha256:ab");
        assert_eq!(
            json["component"]["imports"][0],
            "wasi:cli/environment@0.2.0"
        );
        assert!(json.get("author").is_none());
        assert!(json["component"].get("target").is_none());
        let back: WasmConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
    }
}
