//! Building a multi-platform image index from manifests already on a registry.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::{
    MEDIA_TYPE_DOCKER_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_WASM_CONFIG,
};
use ferry_spec::oci::{
    Arch, Descriptor, Digest, ImageIndexBuilder, ImageManifest, MediaType, Os, PlatformBuilder,
};

use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::platform::Platform;
use crate::transfer::reference_tail;

/// Config media types that carry `os` and `architecture`: image configs,
/// and the Wasm artifact config (`wasip1`/`wasip2` on `wasm`).
const IMAGE_CONFIG_TYPES: [&str; 3] = [
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_DOCKER_IMAGE_CONFIG,
    MEDIA_TYPE_WASM_CONFIG,
];

/// One manifest to list in an index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// Where the manifest is (the index's own repository).
    pub reference: Reference,
    /// Its platform; `None`: read it from an image config, else leave it out.
    pub platform: Option<Platform>,
}

/// What `create_index` pushed.
#[derive(Debug, Clone)]
pub struct CreatedIndex {
    /// The index's reference.
    pub reference: String,
    /// Its digest.
    pub digest: Digest,
    /// Its entries, in the order given.
    pub manifests: Vec<Descriptor>,
}

/// Builds an image index listing `entries` (manifests of `target`'s
/// repository) and pushes it under `target`'s tag. Every read goes to the
/// registry itself: a mirror could hold an older tag than the one indexed.
pub async fn create_index(
    client: &Client,
    target: &Reference,
    entries: &[IndexEntry],
) -> Result<CreatedIndex> {
    if target.digest().is_some() {
        return Err(ClientError::invalid_input(format!(
            "{}: an index is pushed under a tag, not a digest",
            target.whole()
        )));
    }
    if entries.is_empty() {
        return Err(ClientError::invalid_input(
            "an index needs at least one manifest",
        ));
    }
    let endpoint = Endpoint::of(target);
    let mut manifests = Vec::with_capacity(entries.len());
    let mut digests = HashSet::new();
    let mut platforms = HashSet::new();
    for entry in entries {
        let source = &entry.reference;
        if source.registry() != target.registry() || source.repository() != target.repository() {
            return Err(ClientError::invalid_input(format!(
                "{} is not in {}/{}: an index can only list manifests of its own repository (push it there first)",
                source.whole(),
                target.registry(),
                target.repository()
            )));
        }
        let descriptor = entry_descriptor(client, &endpoint, entry).await?;
        if !digests.insert(descriptor.digest().clone()) {
            return Err(ClientError::invalid_input(format!(
                "manifest {} is listed twice",
                descriptor.digest()
            )));
        }
        if let Some(platform) = descriptor.platform() {
            let key = platform_key(platform);
            if !platforms.insert(key.clone()) {
                return Err(ClientError::invalid_input(format!(
                    "two manifests are for platform {key}: pulls could not choose"
                )));
            }
        } else {
            tracing::warn!(
                "{}: no platform given and none in its config; listed without one",
                source.whole()
            );
        }
        manifests.push(descriptor);
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests.clone())
        .build()
        .map_err(|e| ClientError::encode("the index", e))?;
    let bytes = ferry_spec::json::canonical_json(&index)
        .map_err(|e| ClientError::encode("the index", e))?;
    let pushed = client
        .put_manifest(
            &endpoint,
            &reference_tail(target),
            MEDIA_TYPE_IMAGE_INDEX,
            Bytes::from(bytes),
        )
        .await?;
    Ok(CreatedIndex {
        reference: target.whole(),
        digest: pushed.digest,
        manifests,
    })
}

fn platform_key(platform: &ferry_spec::oci::Platform) -> String {
    let mut key = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        key.push('/');
        key.push_str(variant);
    }
    key
}

/// The index entry for one manifest: its descriptor, `artifactType` and platform.
async fn entry_descriptor(
    client: &Client,
    endpoint: &Endpoint,
    entry: &IndexEntry,
) -> Result<Descriptor> {
    let fetched = client
        .manifest(endpoint, &reference_tail(&entry.reference))
        .await?;
    let mut descriptor = Descriptor::new(
        MediaType::from(fetched.media_type.as_str()),
        fetched.bytes.len() as u64,
        fetched.digest.clone(),
    );
    let manifest = if ferry_spec::media::is_image_manifest(&fetched.media_type) {
        Some(
            serde_json::from_slice::<ImageManifest>(&fetched.bytes).map_err(|e| {
                ClientError::Invalid {
                    registry: endpoint.registry.clone(),
                    reason: format!("manifest {}: {e}", entry.reference.whole()),
                }
            })?,
        )
    } else {
        None
    };
    if let Some(manifest) = &manifest {
        descriptor.set_artifact_type(manifest.artifact_type().clone());
    }
    let platform = match (&entry.platform, &manifest) {
        (Some(platform), _) => Some(platform.clone()),
        (None, Some(manifest)) => config_platform(client, endpoint, manifest).await?,
        (None, None) => None,
    };
    if let Some(platform) = platform {
        descriptor.set_platform(Some(oci_platform(&platform)?));
    }
    Ok(descriptor)
}

/// The platform an image config declares, when the config is one.
async fn config_platform(
    client: &Client,
    endpoint: &Endpoint,
    manifest: &ImageManifest,
) -> Result<Option<Platform>> {
    let config = manifest.config();
    if !IMAGE_CONFIG_TYPES.contains(&config.media_type().to_string().as_str()) {
        return Ok(None);
    }
    let bytes = client.blob_document(endpoint, config).await?;
    let document: Value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid {
        registry: endpoint.registry.clone(),
        reason: format!("image config {}: {e}", config.digest()),
    })?;
    Ok(platform_of_config(&document))
}

/// `os`, `architecture` and `variant` of an image config.
fn platform_of_config(document: &Value) -> Option<Platform> {
    let field = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Some(Platform {
        os: field("os")?,
        architecture: field("architecture")?,
        variant: field("variant"),
    })
}

fn oci_platform(platform: &Platform) -> Result<ferry_spec::oci::Platform> {
    let mut builder = PlatformBuilder::default()
        .os(Os::from(platform.os.as_str()))
        .architecture(Arch::from(platform.architecture.as_str()));
    if let Some(variant) = &platform.variant {
        builder = builder.variant(variant.clone());
    }
    builder
        .build()
        .map_err(|e| ClientError::invalid_input_because(format!("platform {platform}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_comes_from_image_config_fields() {
        let config = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        let platform = platform_of_config(&config).unwrap();
        assert_eq!(platform.to_string(), "linux/arm64/v8");
        assert!(platform_of_config(&serde_json::json!({"os": "linux"})).is_none());
        assert!(platform_of_config(&serde_json::json!({"os": "", "architecture": "x"})).is_none());
    }

    #[test]
    fn wasm_configs_carry_a_platform() {
        assert!(IMAGE_CONFIG_TYPES.contains(&"application/vnd.wasm.config.v0+json"));
        let config = serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [],
            "component": {"exports": [], "imports": ["wasi:cli/environment@0.2.0"]},
        });
        assert_eq!(
            platform_of_config(&config).unwrap().to_string(),
            "wasip2/wasm"
        );
    }

    #[test]
    fn oci_platform_keeps_wasm_and_variants() {
        let wasm: Platform = "wasip1/wasm".parse().unwrap();
        let p = oci_platform(&wasm).unwrap();
        assert_eq!(platform_key(&p), "wasip1/wasm");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["os"], "wasip1");
        assert_eq!(json["architecture"], "wasm");
        let component: Platform = "wasip2/wasm".parse().unwrap();
        let json = serde_json::to_value(oci_platform(&component).unwrap()).unwrap();
        assert_eq!(json["os"], "wasip2");
        assert_eq!(json["architecture"], "wasm");
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(platform_key(&oci_platform(&arm).unwrap()), "linux/arm/v7");
    }
}
