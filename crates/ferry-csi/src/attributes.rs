//! What a volume is: the `volumeAttributes` of an inline volume, the
//! `parameters` of a StorageClass or PVC, or the `volumeAttributes` of a
//! static PersistentVolume, read into one [`VolumeSpec`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use ferry_registry::platform::Platform;
use ferry_store::select::LayerFilter;

/// The artifact to mount (required).
pub const REFERENCE: &str = "reference";
/// model-csi-driver's name for [`REFERENCE`]: pod specs written for it
/// work unchanged.
pub const MODEL_CSI_REFERENCE: &str = "model.csi.modelpack.org/reference";
/// A directory or file of the volume to mount instead of all of it.
pub const SUB_PATH: &str = "subPath";
/// `"false"` for a writable volume (a private upper, discarded at
/// unpublish); read-only otherwise.
pub const READ_ONLY: &str = "readOnly";
/// Comma-separated references layered on top, a later one's file winning.
pub const STACK: &str = "stack";
/// `os/arch[/variant]` to choose from an index.
pub const PLATFORM: &str = "platform";
/// `IfNotPresent` (default), `Always` or `Never`.
pub const PULL_POLICY: &str = "pullPolicy";
/// Comma-separated globs: only the layers whose path matches one.
pub const INCLUDE: &str = "include";
/// Comma-separated globs: leave out the layers whose path matches one.
pub const EXCLUDE: &str = "exclude";
/// Set by kubelet on inline (ephemeral) volumes.
pub const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";

/// The attributes a volume is defined by, with their meaning.
const KNOWN: [&str; 9] = [
    REFERENCE,
    MODEL_CSI_REFERENCE,
    SUB_PATH,
    READ_ONLY,
    STACK,
    PLATFORM,
    PULL_POLICY,
    INCLUDE,
    EXCLUDE,
];

/// When to ask the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Pull only what the store does not have.
    IfNotPresent,
    /// Resolve the reference again at every publish.
    Always,
    /// Never pull: the store must have it.
    Never,
}

/// A volume, as attributes define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// The base artifact.
    pub reference: String,
    /// Artifacts layered on top, in order.
    pub stack: Vec<String>,
    /// Mount only this directory or file.
    pub sub_path: Option<String>,
    /// Read-only (the default) or a private writable upper.
    pub read_only: bool,
    /// The platform to choose from an index.
    pub platform: Option<String>,
    /// When to pull.
    pub pull_policy: PullPolicy,
    /// Layer globs to keep.
    pub include: Vec<String>,
    /// Layer globs to leave out.
    pub exclude: Vec<String>,
}

/// An attribute that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("volume attribute {key}: {reason}")]
pub struct AttributeError {
    /// The attribute.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn invalid(key: &str, reason: impl Into<String>) -> AttributeError {
    AttributeError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl VolumeSpec {
    /// Reads `attributes`; `request_read_only` is the request's own
    /// `readonly` flag (a pod's `readOnly: true`), which wins over the
    /// attribute. Kubernetes' own keys (`csi.storage.k8s.io/...`) are
    /// ignored; any other unknown key is refused, so a typo does not mount
    /// something else than meant.
    pub fn parse(
        attributes: &HashMap<String, String>,
        request_read_only: bool,
    ) -> Result<VolumeSpec, AttributeError> {
        for key in attributes.keys() {
            if !KNOWN.contains(&key.as_str()) && !key.starts_with("csi.storage.k8s.io/") {
                return Err(invalid(key, "unknown attribute"));
            }
        }
        let get = |key: &str| {
            attributes
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let reference = match (get(REFERENCE), get(MODEL_CSI_REFERENCE)) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(
                    REFERENCE,
                    format!("{a:?} differs from {MODEL_CSI_REFERENCE} {b:?}"),
                ));
            }
            (Some(reference), _) | (None, Some(reference)) => reference.to_string(),
            (None, None) => return Err(invalid(REFERENCE, "required")),
        };
        check_reference(REFERENCE, &reference)?;
        let stack = list(get(STACK));
        for item in &stack {
            check_reference(STACK, item)?;
        }
        let read_only = match get(READ_ONLY) {
            None => true,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(invalid(
                        READ_ONLY,
                        format!("{value:?} is not true or false"),
                    ));
                }
            },
        } || request_read_only;
        let platform = get(PLATFORM).map(str::to_string);
        if let Some(platform) = &platform {
            platform
                .parse::<Platform>()
                .map_err(|e| invalid(PLATFORM, e.to_string()))?;
        }
        let pull_policy = match get(PULL_POLICY) {
            None | Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some(other) => {
                return Err(invalid(
                    PULL_POLICY,
                    format!("{other:?} is not IfNotPresent, Always or Never"),
                ));
            }
        };
        let spec = VolumeSpec {
            reference,
            stack,
            sub_path: get(SUB_PATH).map(str::to_string),
            read_only,
            platform,
            pull_policy,
            include: list(get(INCLUDE)),
            exclude: list(get(EXCLUDE)),
        };
        spec.layer_filter()
            .map_err(|e| invalid(INCLUDE, e.to_string()))?;
        Ok(spec)
    }

    /// Every artifact of the volume: the base, then the stacked ones.
    pub fn artifacts(&self) -> Vec<String> {
        std::iter::once(self.reference.clone())
            .chain(self.stack.iter().cloned())
            .collect()
    }

    /// The platform, parsed (checked by [`VolumeSpec::parse`]).
    pub fn platform(&self) -> Option<Platform> {
        self.platform.as_deref().and_then(|p| p.parse().ok())
    }

    /// The include/exclude globs as a layer filter.
    pub fn layer_filter(&self) -> Result<LayerFilter, ferry_store::StoreError> {
        LayerFilter::new(&self.include, &[])?.excluding(&self.exclude)
    }

    /// The attributes that define this volume, normalized: what a
    /// controller hands to the node as the volume context.
    pub fn to_attributes(&self) -> BTreeMap<String, String> {
        let mut attributes = BTreeMap::from([
            (REFERENCE.to_string(), self.reference.clone()),
            (READ_ONLY.to_string(), self.read_only.to_string()),
            (PULL_POLICY.to_string(), format!("{:?}", self.pull_policy)),
        ]);
        let mut optional = |key: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                attributes.insert(key.to_string(), value);
            }
        };
        optional(STACK, Some(self.stack.join(",")));
        optional(SUB_PATH, self.sub_path.clone());
        optional(PLATFORM, self.platform.clone());
        optional(INCLUDE, Some(self.include.join(",")));
        optional(EXCLUDE, Some(self.exclude.join(",")));
        attributes
    }

    /// A fingerprint of the volume's definition: two publishes with the
    /// same one are the same volume.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(&self.to_attributes()).unwrap_or_default();
        hex::encode(Sha256::digest(canonical))
    }
}

/// True when `attributes` mark an inline (ephemeral) volume.
pub fn is_ephemeral(attributes: &HashMap<String, String>) -> bool {
    attributes.get(EPHEMERAL).map(String::as_str) == Some("true")
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn check_reference(key: &str, value: &str) -> Result<(), AttributeError> {
    ferry_store::index::normalize_reference(value)
        .map(|_| ())
        .map_err(|e| invalid(key, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_read_only_and_if_not_present() {
        let spec = VolumeSpec::parse(&attrs(&[(REFERENCE, "r.example/m:v1")]), false).unwrap();
        assert!(spec.read_only);
        assert_eq!(spec.pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(spec.artifacts(), ["r.example/m:v1"]);
    }

    #[test]
    fn model_csi_driver_names_are_accepted() {
        let spec = VolumeSpec::parse(
            &attrs(&[
                (MODEL_CSI_REFERENCE, "r.example/m:v1"),
                (EPHEMERAL, "true"),
                ("csi.storage.k8s.io/pod.name", "p"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(spec.reference, "r.example/m:v1");
        let conflict = VolumeSpec::parse(
            &attrs(&[
                (MODEL_CSI_REFERENCE, "r.example/a:1"),
                (REFERENCE, "r.example/b:1"),
            ]),
            false,
        )
        .unwrap_err();
        assert_eq!(conflict.key, REFERENCE);
    }

    #[test]
    fn the_request_read_only_flag_wins() {
        let writable = attrs(&[(REFERENCE, "r.example/m:v1"), (READ_ONLY, "false")]);
        assert!(!VolumeSpec::parse(&writable, false).unwrap().read_only);
        assert!(VolumeSpec::parse(&writable, true).unwrap().read_only);
    }

    #[test]
    fn bad_attributes_name_themselves() {
        for (pairs, key) in [
            (vec![], REFERENCE),
            (vec![(REFERENCE, "UPPER/Case:tag")], REFERENCE),
            (
                vec![(REFERENCE, "r.example/m:v1"), (READ_ONLY, "yes")],
                READ_ONLY,
            ),
            (
                vec![(REFERENCE, "r.example/m:v1"), (PULL_POLICY, "always")],
                PULL_POLICY,
            ),
            (
                vec![(REFERENCE, "r.example/m:v1"), (PLATFORM, "linux")],
                PLATFORM,
            ),
            (
                vec![(REFERENCE, "r.example/m:v1"), (STACK, "r.example/ok:1,BAD")],
                STACK,
            ),
            (
                vec![(REFERENCE, "r.example/m:v1"), (INCLUDE, "a[")],
                INCLUDE,
            ),
            (
                vec![(REFERENCE, "r.example/m:v1"), ("refrence", "x")],
                "refrence",
            ),
        ] {
            let error = VolumeSpec::parse(&attrs(&pairs), false).unwrap_err();
            assert_eq!(error.key, key, "{error}");
        }
    }

    #[test]
    fn the_fingerprint_follows_the_definition_not_the_spelling() {
        let a = VolumeSpec::parse(
            &attrs(&[(REFERENCE, "r.example/m:v1"), (STACK, " r.example/x:1 ,")]),
            false,
        )
        .unwrap();
        let b = VolumeSpec::parse(
            &attrs(&[
                (MODEL_CSI_REFERENCE, "r.example/m:v1"),
                (STACK, "r.example/x:1"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = VolumeSpec::parse(&attrs(&[(REFERENCE, "r.example/m:v2")]), false).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        // What a controller hands over reads back as the same volume.
        let context: HashMap<String, String> = a.to_attributes().into_iter().collect();
        assert_eq!(VolumeSpec::parse(&context, false).unwrap(), a);
    }
}
