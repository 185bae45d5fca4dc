//! What a pushed manifest must be before it is stored: one of the four
//! manifest media types, shaped as that type requires, and naming only
//! content the repository holds.

use axum::http::{HeaderMap, header};
use ferry_spec::media::{
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
};
use ferry_spec::oci::Digest;
use serde_json::Value;

use super::blobs::storage_error;
use crate::error::{RegistryError, RegistryResult};
use crate::names::parse_digest;
use crate::storage::Storage;

/// The manifest media types the registry stores and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`.
    OciIndex,
    /// Docker schema 2 manifest.
    DockerManifest,
    /// Docker schema 2 manifest list.
    DockerManifestList,
}

impl ManifestKind {
    /// The kind of a media type (parameters such as `; charset=` ignored).
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        let essence = media_type.split(';').next().unwrap_or(media_type).trim();
        match essence {
            MEDIA_TYPE_IMAGE_MANIFEST => Some(ManifestKind::OciManifest),
            MEDIA_TYPE_IMAGE_INDEX => Some(ManifestKind::OciIndex),
            MEDIA_TYPE_DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            MEDIA_TYPE_DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// The canonical media type, the only Content-Type a manifest is served with.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => MEDIA_TYPE_IMAGE_MANIFEST,
            ManifestKind::OciIndex => MEDIA_TYPE_IMAGE_INDEX,
            ManifestKind::DockerManifest => MEDIA_TYPE_DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => MEDIA_TYPE_DOCKER_MANIFEST_LIST,
        }
    }

    fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::OciIndex | ManifestKind::DockerManifestList
        )
    }
}

/// The kind a PUT declares: the Content-Type and the body's `mediaType`
/// must agree when both are given, and name a manifest type.
pub fn declared_kind(headers: &HeaderMap, document: &Value) -> RegistryResult<ManifestKind> {
    let header_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(|v| v.split(';').next().unwrap_or(v).trim())
                .map_err(|_| RegistryError::manifest_invalid("Content-Type is not text"))
        })
        .transpose()?
        .filter(|v| !v.is_empty());
    let body_type = match document.get("mediaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(media_type)) => Some(media_type.as_str()),
        Some(_) => return Err(RegistryError::manifest_invalid("mediaType is not a string")),
    };
    let media_type = match (header_type, body_type) {
        (Some(h), Some(b)) if h != b => {
            return Err(RegistryError::manifest_invalid(format!(
                "Content-Type {h:?} does not match the manifest's mediaType {b:?}"
            )));
        }
        (Some(media_type), _) | (None, Some(media_type)) => media_type,
        (None, None) => {
            return Err(RegistryError::manifest_invalid(
                "manifest media type is unknown: send a Content-Type",
            ));
        }
    };
    ManifestKind::from_media_type(media_type).ok_or_else(|| {
        RegistryError::manifest_invalid(format!(
            "{media_type:?} is not a manifest media type this registry accepts"
        ))
    })
}

/// Content a manifest names that must be in the repository.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Config and distributable layers.
    pub blobs: Vec<Digest>,
    /// Index entries.
    pub manifests: Vec<Digest>,
}

/// Checks the shape `kind` requires and returns what must exist.
pub fn validate(kind: ManifestKind, document: &Value) -> RegistryResult<References> {
    let mut references = References::default();
    if kind.is_index() {
        let manifests = document
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| RegistryError::manifest_invalid("an index needs a manifests array"))?;
        for entry in manifests {
            references
                .manifests
                .push(descriptor(entry, "manifests entry")?.digest);
        }
    } else {
        let config = document
            .get("config")
            .ok_or_else(|| RegistryError::manifest_invalid("an image manifest needs a config"))?;
        let config = descriptor(config, "config")?;
        if config.has_urls {
            return Err(RegistryError::manifest_invalid(
                "the config descriptor may not have urls",
            ));
        }
        references.blobs.push(config.digest);
        let layers = document
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                RegistryError::manifest_invalid("an image manifest needs a layers array")
            })?;
        for layer in layers {
            let layer = descriptor(layer, "layer")?;
            let non_distributable = is_non_distributable(&layer.media_type);
            if layer.has_urls && !non_distributable {
                return Err(RegistryError::manifest_invalid(format!(
                    "layer {} has urls but is not non-distributable",
                    layer.digest
                )));
            }
            // Non-distributable content is never pushed to a registry.
            if !non_distributable {
                references.blobs.push(layer.digest);
            }
        }
    }
    // The subject may be absent from the registry (distribution spec), but
    // must be a well-formed descriptor.
    if let Some(subject) = document.get("subject").filter(|s| !s.is_null()) {
        descriptor(subject, "subject")?;
    }
    Ok(references)
}

/// Checks that everything the manifest names is in `repo`.
pub async fn check_exist(
    storage: &dyn Storage,
    repo: &str,
    references: &References,
) -> RegistryResult<()> {
    for digest in &references.blobs {
        if !storage
            .blob_linked(repo, digest)
            .await
            .map_err(storage_error)?
        {
            return Err(RegistryError::manifest_blob_unknown(digest));
        }
    }
    for digest in &references.manifests {
        if storage
            .manifest_get(repo, digest)
            .await
            .map_err(storage_error)?
            .is_none()
        {
            return Err(RegistryError::manifest_blob_unknown(digest));
        }
    }
    Ok(())
}

/// The parts of a descriptor the registry relies on.
struct Descriptor {
    media_type: String,
    digest: Digest,
    has_urls: bool,
}

fn descriptor(value: &Value, what: &str) -> RegistryResult<Descriptor> {
    let invalid = |why: &str| RegistryError::manifest_invalid(format!("{what}: {why}"));
    if !value.is_object() {
        return Err(invalid("not an object"));
    }
    let media_type = value
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("mediaType is required"))?;
    let digest = value
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("digest is required"))?;
    let digest = parse_digest(digest).map_err(|_| invalid("invalid digest"))?;
    if value.get("size").and_then(Value::as_u64).is_none() {
        return Err(invalid("size must be a non-negative integer"));
    }
    let has_urls = match value.get("urls") {
        None | Some(Value::Null) => false,
        Some(Value::Array(urls)) => !urls.is_empty(),
        Some(_) => return Err(invalid("urls is not an array")),
    };
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest,
        has_urls,
    })
}

/// OCI non-distributable layers and Docker foreign layers.
fn is_non_distributable(media_type: &str) -> bool {
    media_type.contains(".nondistributable.") || media_type.contains(".foreign.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn kind_of(content_type: Option<&str>, document: Value) -> RegistryResult<ManifestKind> {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        declared_kind(&headers, &document)
    }

    #[test]
    fn the_declared_media_type_must_be_a_manifest_type() {
        let index = json!({"mediaType": MEDIA_TYPE_IMAGE_INDEX});
        assert_eq!(
            kind_of(Some(MEDIA_TYPE_IMAGE_INDEX), index.clone()).unwrap(),
            ManifestKind::OciIndex
        );
        assert_eq!(
            kind_of(None, index.clone()).unwrap(),
            ManifestKind::OciIndex
        );
        assert_eq!(
            kind_of(Some(MEDIA_TYPE_DOCKER_MANIFEST), json!({})).unwrap(),
            ManifestKind::DockerManifest
        );
        assert!(kind_of(Some(MEDIA_TYPE_IMAGE_MANIFEST), index).is_err());
        assert!(kind_of(Some("text/html"), json!({})).is_err());
        assert!(kind_of(None, json!({"mediaType": "text/html"})).is_err());
        assert!(kind_of(None, json!({})).is_err());
        assert!(kind_of(None, json!({"mediaType": 1})).is_err());
    }

    #[test]
    fn an_image_manifest_needs_config_and_layers() {
        let config = json!({"mediaType": "a/b", "digest": digest('a'), "size": 2});
        for document in [
            json!({"layers": []}),
            json!({"config": config}),
            json!({"config": config, "layers": {}}),
            json!({"config": {"digest": digest('a'), "size": 2}, "layers": []}),
            json!({"config": {"mediaType": "a/b", "digest": digest('a'), "size": -1}, "layers": []}),
            json!({"manifests": [], "config": config}),
        ] {
            assert!(
                validate(ManifestKind::OciManifest, &document).is_err(),
                "{document}"
            );
        }
        let ok = validate(
            ManifestKind::OciManifest,
            &json!({"config": config, "layers": []}),
        )
        .unwrap();
        assert_eq!(ok.blobs.len(), 1);
    }

    #[test]
    fn urls_only_on_non_distributable_layers() {
        let urls = json!(["https://example.com/x"]);
        let config = json!({"mediaType": "a/b", "digest": digest('a'), "size": 2});
        let with_urls = |media_type: &str| json!({"mediaType": media_type, "digest": digest('b'), "size": 2, "urls": urls});
        let bad_config = json!({"config": with_urls("a/b"), "layers": []});
        assert!(validate(ManifestKind::OciManifest, &bad_config).is_err());
        let bad_layer = json!({"config": config, "layers": [with_urls("application/vnd.oci.image.layer.v1.tar")]});
        assert!(validate(ManifestKind::OciManifest, &bad_layer).is_err());
        let foreign = json!({"config": config, "layers": [
            with_urls("application/vnd.oci.image.layer.nondistributable.v1.tar"),
            with_urls("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
        ]});
        let references = validate(ManifestKind::OciManifest, &foreign).unwrap();
        // Only the config must be present.
        assert_eq!(references.blobs, vec![parse_digest(&digest('a')).unwrap()]);
    }

    #[test]
    fn an_index_needs_manifests_and_names_them() {
        assert!(validate(ManifestKind::OciIndex, &json!({"layers": []})).is_err());
        assert!(validate(ManifestKind::DockerManifestList, &json!({"manifests": {}})).is_err());
        let index = json!({"manifests": [{"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": digest('c'), "size": 5}]});
        let references = validate(ManifestKind::OciIndex, &index).unwrap();
        assert_eq!(
            references.manifests,
            vec![parse_digest(&digest('c')).unwrap()]
        );
        assert!(references.blobs.is_empty());
    }
}
