//! The JSON of containers-policy.json, parsed strictly: serde refuses
//! unknown keys, types and duplicated fields; the checks serde cannot
//! express follow, each error with its location in the document.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::identity::Identity;
use super::keys::MAX_KEY_SIZE;
use super::scope::{docker_scope_problem, namespace_problem};
use super::{DOCKER, PolicyError, PolicySource, SignedIdentity};

/// One policy requirement; every one in a list must be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `insecureAcceptAnything`: accepts.
    InsecureAcceptAnything,
    /// `reject`: rejects.
    Reject,
    /// `sigstoreSigned`: a signature by one of these keys, for this
    /// identity, over the manifest being admitted.
    SigstoreSigned {
        /// The keys (or keyless roots, which ferry cannot verify).
        trust_root: TrustRoot,
        /// What the signature must claim; `matchRepoDigestOrExact` by default.
        signed_identity: SignedIdentity,
    },
    /// `signedBy`: GPG simple signing, which ferry does not verify, so it
    /// rejects every image it applies to.
    SignedBy,
    /// `modelSigned` (ferry's own): an OpenSSF model signature by one of
    /// these keys, attached to the artifact, whose files are exactly the
    /// files the artifact's layers hold.
    ModelSigned {
        /// The keys (`keyPath`, `keyPaths` or `keyData`).
        trust_root: TrustRoot,
    },
    /// `scanned` (ferry's own): a scan report (`ferry scan --attach`)
    /// signed by one of these keys, about this manifest, that found
    /// nothing dangerous or malformed (nor suspicious, unless allowed).
    Scanned {
        /// The keys (`keyPath`, `keyPaths` or `keyData`).
        trust_root: TrustRoot,
        /// `allowSuspicious`: a report of suspicious files passes too.
        allow_suspicious: bool,
    },
}

impl Requirement {
    /// The `type` of this requirement in the JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::InsecureAcceptAnything => "insecureAcceptAnything",
            Self::Reject => "reject",
            Self::SigstoreSigned { .. } => "sigstoreSigned",
            Self::SignedBy => "signedBy",
            Self::ModelSigned { .. } => "modelSigned",
            Self::Scanned { .. } => "scanned",
        }
    }
}

/// What a `sigstoreSigned` requirement trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustRoot {
    /// `keyPath` or `keyPaths`: absolute paths of PEM public keys.
    KeyPaths(Vec<PathBuf>),
    /// `keyData`: a PEM public key, decoded from base64.
    KeyData(Vec<u8>),
    /// Fulcio certificates, X.509 PKI or Rekor: not supported by ferry.
    Keyless {
        /// The field that asked for it (`fulcio`, `pki`, ...).
        field: &'static str,
    },
}

/// The document's requirements: `default`, and the transports' scopes.
pub(super) type Parsed = (
    Vec<Requirement>,
    BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
);

/// A schema error before it knows which file it came from.
pub(super) enum SchemaError {
    Syntax(String),
    Invalid { location: String, message: String },
}

impl SchemaError {
    pub(super) fn with_origin(self, source: &PolicySource) -> PolicyError {
        let origin = source.to_string();
        match self {
            Self::Syntax(message) => PolicyError::Syntax { origin, message },
            Self::Invalid { location, message } => PolicyError::Invalid {
                origin,
                location,
                message,
            },
        }
    }
}

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, SchemaError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let raw: RawPolicy = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let segments: Vec<_> = error.path().iter().cloned().collect();
        let inner = error.into_inner();
        // serde names an unknown field and also puts it in the path: the
        // location is the object that holds it.
        let message = inner.to_string();
        let shown = match segments.split_last() {
            Some((serde_path_to_error::Segment::Map { key }, parent))
                if message.starts_with(&format!("unknown field `{key}`")) =>
            {
                parent
            }
            _ => &segments[..],
        };
        let location = render_path(shown);
        if inner.is_syntax() || inner.is_eof() {
            SchemaError::Syntax(inner.to_string())
        } else {
            SchemaError::Invalid { location, message }
        }
    })?;
    json.end()
        .map_err(|error| SchemaError::Syntax(error.to_string()))?;

    let default = requirements(raw.default, "default")?;
    let mut transports = BTreeMap::new();
    for (transport, raw_scopes) in raw.transports.0 {
        let mut scopes = BTreeMap::new();
        for (scope, raw_list) in raw_scopes.0 {
            let location = format!("transports.{transport}[{scope:?}]");
            if transport == DOCKER
                && let Some(problem) = docker_scope_problem(&scope)
            {
                return Err(invalid(&location, format!("invalid scope: {problem}")));
            }
            scopes.insert(scope, requirements(raw_list, &location)?);
        }
        transports.insert(transport, scopes);
    }
    Ok((default, transports))
}

fn invalid(location: &str, message: String) -> SchemaError {
    SchemaError::Invalid {
        location: location.to_string(),
        message,
    }
}

/// `transports.docker["scope"][0].signedIdentity`: scopes are quoted,
/// since they hold dots and slashes.
fn render_path(path: &[serde_path_to_error::Segment]) -> String {
    let mut out = String::new();
    for (depth, segment) in path.iter().enumerate() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key }
                if depth == 2 && out.starts_with("transports.") =>
            {
                out.push_str(&format!("[{key:?}]"));
            }
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { .. } => {}
            serde_path_to_error::Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() {
        "top level".to_string()
    } else {
        out
    }
}

fn requirements(raw: Vec<RawRequirement>, location: &str) -> Result<Vec<Requirement>, SchemaError> {
    if raw.is_empty() {
        // containers/image refuses an empty list: it would accept silently.
        return Err(invalid(
            location,
            "an empty requirement list is not allowed (write [{\"type\":\"insecureAcceptAnything\"}] to accept)".into(),
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, requirement)| requirement.validate(&format!("{location}[{index}]")))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Vec<RawRequirement>,
    #[serde(default)]
    transports: UniqueMap<UniqueMap<Vec<RawRequirement>>>,
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum RawRequirement {
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything {},
    #[serde(rename = "reject")]
    Reject {},
    #[serde(rename = "signedBy", rename_all = "camelCase")]
    SignedBy {
        #[serde(rename = "keyType")]
        _key_type: Option<String>,
        #[serde(rename = "keyPath")]
        _key_path: Option<String>,
        #[serde(rename = "keyPaths")]
        _key_paths: Option<Vec<String>>,
        #[serde(rename = "keyData")]
        _key_data: Option<String>,
        signed_identity: Option<RawIdentity>,
    },
    #[serde(rename = "sigstoreSigned", rename_all = "camelCase")]
    SigstoreSigned {
        key_path: Option<String>,
        key_paths: Option<Vec<String>>,
        key_data: Option<String>,
        fulcio: Option<serde_json::Value>,
        pki: Option<serde_json::Value>,
        rekor_public_key_path: Option<String>,
        rekor_public_key_paths: Option<Vec<String>>,
        rekor_public_key_data: Option<String>,
        signed_identity: Option<RawIdentity>,
    },
    #[serde(rename = "modelSigned", rename_all = "camelCase")]
    ModelSigned {
        key_path: Option<String>,
        key_paths: Option<Vec<String>>,
        key_data: Option<String>,
    },
    #[serde(rename = "scanned", rename_all = "camelCase")]
    Scanned {
        key_path: Option<String>,
        key_paths: Option<Vec<String>>,
        key_data: Option<String>,
        #[serde(default)]
        allow_suspicious: bool,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum RawIdentity {
    #[serde(rename = "matchExact")]
    MatchExact {},
    #[serde(rename = "matchRepoDigestOrExact")]
    MatchRepoDigestOrExact {},
    #[serde(rename = "matchRepository")]
    MatchRepository {},
    #[serde(rename = "exactReference", rename_all = "camelCase")]
    ExactReference { docker_reference: String },
    #[serde(rename = "exactRepository", rename_all = "camelCase")]
    ExactRepository { docker_repository: String },
    #[serde(rename = "remapIdentity", rename_all = "camelCase")]
    RemapIdentity {
        prefix: String,
        signed_prefix: String,
    },
}

impl RawRequirement {
    fn validate(self, location: &str) -> Result<Requirement, SchemaError> {
        match self {
            Self::InsecureAcceptAnything {} => Ok(Requirement::InsecureAcceptAnything),
            Self::Reject {} => Ok(Requirement::Reject),
            Self::SignedBy {
                signed_identity, ..
            } => {
                // Checked so a typo fails here too, though GPG never accepts.
                signed_identity
                    .map(|raw| raw.validate(&format!("{location}.signedIdentity")))
                    .transpose()?;
                Ok(Requirement::SignedBy)
            }
            Self::SigstoreSigned {
                key_path,
                key_paths,
                key_data,
                fulcio,
                pki,
                rekor_public_key_path,
                rekor_public_key_paths,
                rekor_public_key_data,
                signed_identity,
            } => {
                let keyless = [
                    ("fulcio", fulcio.is_some()),
                    ("pki", pki.is_some()),
                    ("rekorPublicKeyPath", rekor_public_key_path.is_some()),
                    ("rekorPublicKeyPaths", rekor_public_key_paths.is_some()),
                    ("rekorPublicKeyData", rekor_public_key_data.is_some()),
                ]
                .into_iter()
                .find_map(|(field, present)| present.then_some(field));
                let trust_root = match keyless {
                    Some(field) => TrustRoot::Keyless { field },
                    None => key_trust_root(key_path, key_paths, key_data, location)?,
                };
                let signed_identity = match signed_identity {
                    Some(raw) => raw.validate(&format!("{location}.signedIdentity"))?,
                    None => SignedIdentity::MatchRepoDigestOrExact,
                };
                Ok(Requirement::SigstoreSigned {
                    trust_root,
                    signed_identity,
                })
            }
            Self::ModelSigned {
                key_path,
                key_paths,
                key_data,
            } => Ok(Requirement::ModelSigned {
                trust_root: key_trust_root(key_path, key_paths, key_data, location)?,
            }),
            Self::Scanned {
                key_path,
                key_paths,
                key_data,
                allow_suspicious,
            } => Ok(Requirement::Scanned {
                trust_root: key_trust_root(key_path, key_paths, key_data, location)?,
                allow_suspicious,
            }),
        }
    }
}

fn key_trust_root(
    key_path: Option<String>,
    key_paths: Option<Vec<String>>,
    key_data: Option<String>,
    location: &str,
) -> Result<TrustRoot, SchemaError> {
    let set: Vec<&str> = [
        ("keyPath", key_path.is_some()),
        ("keyPaths", key_paths.is_some()),
        ("keyData", key_data.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, present)| present.then_some(field))
    .collect();
    if set.len() != 1 {
        let found = if set.is_empty() {
            "none is set".to_string()
        } else {
            format!("{} are set", set.join(" and "))
        };
        return Err(invalid(
            location,
            format!("sigstoreSigned needs exactly one of keyPath, keyPaths, keyData: {found}"),
        ));
    }
    let absolute = |path: String, field: &str| {
        let path_buf = PathBuf::from(&path);
        if path_buf.is_absolute() {
            Ok(path_buf)
        } else {
            Err(invalid(
                location,
                format!("{field} {path:?} is not an absolute path"),
            ))
        }
    };
    if let Some(path) = key_path {
        return Ok(TrustRoot::KeyPaths(vec![absolute(path, "keyPath")?]));
    }
    if let Some(paths) = key_paths {
        if paths.is_empty() {
            return Err(invalid(location, "keyPaths is empty".into()));
        }
        let paths = paths
            .into_iter()
            .map(|path| absolute(path, "keyPaths entry"))
            .collect::<Result<_, _>>()?;
        return Ok(TrustRoot::KeyPaths(paths));
    }
    let data = key_data.unwrap_or_default();
    let pem = BASE64
        .decode(data.as_bytes())
        .map_err(|error| invalid(location, format!("keyData is not base64: {error}")))?;
    if pem.is_empty() {
        return Err(invalid(location, "keyData is empty".into()));
    }
    if pem.len() as u64 > MAX_KEY_SIZE {
        return Err(invalid(
            location,
            format!("keyData decodes to more than {MAX_KEY_SIZE} bytes"),
        ));
    }
    Ok(TrustRoot::KeyData(pem))
}

impl RawIdentity {
    fn validate(self, location: &str) -> Result<SignedIdentity, SchemaError> {
        let reference = |value: &str, field: &str| {
            Identity::parse(value).map_err(|reason| {
                invalid(
                    location,
                    format!("{field} {value:?} is not a reference: {reason}"),
                )
            })
        };
        let prefix = |value: String, field: &str| match namespace_problem(&value) {
            Some(problem) => Err(invalid(location, format!("{field}: {problem}"))),
            None => Ok(value),
        };
        Ok(match self {
            Self::MatchExact {} => SignedIdentity::MatchExact,
            Self::MatchRepoDigestOrExact {} => SignedIdentity::MatchRepoDigestOrExact,
            Self::MatchRepository {} => SignedIdentity::MatchRepository,
            Self::ExactReference { docker_reference } => {
                let parsed = reference(&docker_reference, "dockerReference")?;
                if parsed.is_name_only() {
                    return Err(invalid(
                        location,
                        format!("dockerReference {docker_reference:?} needs a tag or digest"),
                    ));
                }
                SignedIdentity::ExactReference {
                    docker_reference: parsed.to_string(),
                }
            }
            Self::ExactRepository { docker_repository } => {
                let parsed = reference(&docker_repository, "dockerRepository")?;
                if !parsed.is_name_only() {
                    return Err(invalid(
                        location,
                        format!(
                            "dockerRepository {docker_repository:?} names a repository, without tag or digest"
                        ),
                    ));
                }
                SignedIdentity::ExactRepository {
                    docker_repository: parsed.name,
                }
            }
            Self::RemapIdentity {
                prefix: raw_prefix,
                signed_prefix,
            } => SignedIdentity::RemapIdentity {
                prefix: prefix(raw_prefix, "prefix")?,
                signed_prefix: prefix(signed_prefix, "signedPrefix")?,
            },
        })
    }
}

/// A JSON object kept in order that refuses a key given twice: serde's
/// maps keep the last, which would let one scope silently override another.
struct UniqueMap<V>(Vec<(String, V)>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UniqueMapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMapVisitor<V> {
            type Value = UniqueMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some((key, value)) = map.next_entry::<String, V>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("{key:?} is given twice")));
                    }
                    entries.push((key, value));
                }
                Ok(UniqueMap(entries))
            }
        }

        deserializer.deserialize_map(UniqueMapVisitor(PhantomData))
    }
}
