//! OpenSSF model signing v1.0 ("files" method, key mode): `model.sig` is a
//! Sigstore bundle whose DSSE envelope signs an in-toto statement listing
//! every file's SHA-256.

mod hash;

pub use hash::{GIT_PATHS, HashOptions, Manifest, ManifestEntry, hash_model};

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::dsse::Envelope;
use crate::error::{Result, SignError};
use crate::keys::{KeyDescription, PrivateKey, PublicKey};
use crate::media::{IN_TOTO_PAYLOAD_TYPE, MODEL_SIGNING_PREDICATE_TYPE};
use crate::statement::{Statement, Subject};

/// The signature file's name model_signing uses.
pub const DEFAULT_SIGNATURE_NAME: &str = "model.sig";

/// The predicate of a model signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelPredicate {
    serialization: Serialization,
    resources: Vec<Resource>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Serialization {
    method: String,
    hash_type: String,
    allow_symlinks: bool,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resource {
    name: String,
    algorithm: String,
    digest: String,
}

/// What a verified model signature says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelVerified {
    /// The key that verified it.
    pub key: KeyDescription,
    /// The model name signed (the signer's directory name).
    pub model_name: String,
    /// `sha256:<hex>` root digest.
    pub root_digest: String,
    /// How many files it covers.
    pub files: usize,
    /// The paths the signer left out.
    pub ignore_paths: Vec<String>,
}

/// Signs the model in `dir`: hashes it ([`hash_model`]) and returns the
/// `model.sig` bundle bytes. `options.ignore_paths` should name the
/// signature file when it lives inside `dir`.
pub fn sign_model(dir: &Path, key: &PrivateKey, options: &HashOptions) -> Result<Vec<u8>> {
    let manifest = hash_model(dir, options)?;
    Ok(sign_model_manifest(
        &model_name(dir),
        &manifest,
        key,
        options,
    ))
}

/// The `model.sig` bundle for a manifest already hashed with `options`
/// (for callers that report on the manifest too).
pub fn sign_model_manifest(
    model_name: &str,
    manifest: &Manifest,
    key: &PrivateKey,
    options: &HashOptions,
) -> Vec<u8> {
    let predicate = ModelPredicate {
        serialization: Serialization {
            method: "files".to_string(),
            hash_type: "sha256".to_string(),
            allow_symlinks: false,
            ignore_paths: options.effective_ignore_paths(),
        },
        resources: manifest
            .files
            .iter()
            .map(|entry| Resource {
                name: entry.name.clone(),
                algorithm: "sha256".to_string(),
                digest: hex::encode(entry.sha256),
            })
            .collect(),
    };
    let subject = Subject {
        name: model_name.to_string(),
        digest: [("sha256".to_string(), hex::encode(manifest.root_digest()))].into(),
        annotations: None,
    };
    // Strings, booleans and arrays only: converting cannot fail.
    let predicate = serde_json::to_value(&predicate).unwrap_or_default();
    let statement = Statement::new(vec![subject], MODEL_SIGNING_PREDICATE_TYPE, predicate);
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), key);
    Bundle::new(envelope, &key.public_key().model_signing_hint()).to_json()
}

/// The directory's own name (of its absolute form, so `.` has one): the
/// statement's subject name.
pub fn model_name(dir: &Path) -> String {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .components()
        .next_back()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Verifies `signature` (a `model.sig` bundle) with `keys`, checks its root
/// digest against its resources, then re-hashes `dir` (leaving out the
/// signer's ignore paths and `options.ignore_paths`) and reports every
/// changed, added and removed file.
pub fn verify_model(
    dir: &Path,
    signature: &[u8],
    keys: &[PublicKey],
    options: &HashOptions,
) -> Result<ModelVerified> {
    let signed = SignedModel::verify(signature, keys)?;
    let mut ignore_paths = signed.ignore_paths().to_vec();
    ignore_paths.extend(options.ignore_paths.iter().cloned());
    let actual = hash_model(dir, &HashOptions { ignore_paths })?;
    signed.matches(&actual)?;
    Ok(signed.verified)
}

/// A model signature whose envelope verified and whose parts agree, not
/// yet compared with any files.
#[derive(Debug, Clone)]
pub struct SignedModel {
    manifest: Manifest,
    verified: ModelVerified,
}

impl SignedModel {
    /// Verifies `signature` (a `model.sig` bundle) with `keys` and checks
    /// its root digest against its resources.
    pub fn verify(signature: &[u8], keys: &[PublicKey]) -> Result<SignedModel> {
        let bundle = Bundle::from_json(signature)?;
        let key = bundle.dsse_envelope.verify(IN_TOTO_PAYLOAD_TYPE, keys)?;
        let statement = Statement::from_json(&bundle.dsse_envelope.payload)?;
        statement.expect_predicate_type(MODEL_SIGNING_PREDICATE_TYPE)?;
        let (manifest, predicate) = signed_manifest(&statement)?;
        let verified = ModelVerified {
            key: key.description(),
            model_name: statement.subject[0].name.clone(),
            root_digest: manifest.root_digest_string(),
            files: manifest.files.len(),
            ignore_paths: predicate.serialization.ignore_paths,
        };
        Ok(SignedModel { manifest, verified })
    }

    /// The paths the signer left out ('/'-separated).
    pub fn ignore_paths(&self) -> &[String] {
        &self.verified.ignore_paths
    }

    /// What was verified.
    pub fn verified(&self) -> &ModelVerified {
        &self.verified
    }

    /// Compares the signed files with `actual` (hashed with the signer's
    /// ignore paths left out): every changed, added and removed file is
    /// reported.
    pub fn matches(&self, actual: &Manifest) -> Result<()> {
        compare(&self.manifest, actual)
    }

    /// [`SignedModel::matches`] for files listed by path and SHA-256 (an
    /// artifact's, read from its layers): the signer's ignore paths are
    /// left out of `files` first.
    pub fn matches_files<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a str, [u8; 32])>,
    ) -> Result<()> {
        let ignored = HashOptions::default().with_ignored(self.ignore_paths());
        let files = files
            .into_iter()
            .filter(|(name, _)| !ignored.iter().any(|ignore| hash::is_under(name, ignore)))
            .map(|(name, sha256)| ManifestEntry {
                name: name.to_string(),
                sha256,
            })
            .collect();
        compare(&self.manifest, &Manifest { files })
    }
}

/// The manifest a verified statement signs, after checking its parts agree.
fn signed_manifest(statement: &Statement) -> Result<(Manifest, ModelPredicate)> {
    let inconsistent = |why: String| SignError::InconsistentModelSignature(why);
    let [subject] = statement.subject.as_slice() else {
        return Err(inconsistent(format!(
            "{} subjects, expected one",
            statement.subject.len()
        )));
    };
    let predicate: ModelPredicate = serde_json::from_value(statement.predicate.clone())
        .map_err(|e| SignError::malformed("model signing predicate", e))?;
    let serialization = &predicate.serialization;
    if serialization.method != "files" || serialization.hash_type != "sha256" {
        return Err(SignError::Unexpected {
            what: "model serialization",
            found: format!("{} with {}", serialization.method, serialization.hash_type),
            expected: "files with sha256".to_string(),
        });
    }
    let mut files = Vec::with_capacity(predicate.resources.len());
    let mut names = BTreeSet::new();
    for resource in &predicate.resources {
        if resource.algorithm != "sha256" {
            return Err(inconsistent(format!(
                "{} is hashed with {:?}",
                resource.name, resource.algorithm
            )));
        }
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&resource.digest, &mut sha256)
            .map_err(|_| inconsistent(format!("{}: digest is not 64 hex digits", resource.name)))?;
        if !names.insert(resource.name.as_str()) {
            return Err(inconsistent(format!("{} is listed twice", resource.name)));
        }
        files.push(ManifestEntry {
            name: resource.name.clone(),
            sha256,
        });
    }
    // The root digest covers the resources in the order listed.
    let manifest = Manifest { files };
    let root = hex::encode(manifest.root_digest());
    match subject.digest.get("sha256") {
        Some(signed_root) if *signed_root == root => {}
        Some(signed_root) => {
            return Err(inconsistent(format!(
                "root digest is {signed_root}, but the resources hash to {root}"
            )));
        }
        None => return Err(inconsistent("the subject has no sha256 digest".to_string())),
    }
    Ok((manifest, predicate))
}

/// Every difference between the signed files and the directory's.
fn compare(signed: &Manifest, actual: &Manifest) -> Result<()> {
    let signed_files: std::collections::BTreeMap<&str, &[u8; 32]> = signed
        .files
        .iter()
        .map(|e| (e.name.as_str(), &e.sha256))
        .collect();
    let actual_files: std::collections::BTreeMap<&str, &[u8; 32]> = actual
        .files
        .iter()
        .map(|e| (e.name.as_str(), &e.sha256))
        .collect();
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for (name, digest) in &signed_files {
        match actual_files.get(name) {
            Some(found) if found == digest => {}
            Some(_) => changed.push(name.to_string()),
            None => removed.push(name.to_string()),
        }
    }
    let added: Vec<String> = actual_files
        .keys()
        .filter(|name| !signed_files.contains_key(*name))
        .map(|name| name.to_string())
        .collect();
    if changed.is_empty() && added.is_empty() && removed.is_empty() {
        Ok(())
    } else {
        Err(SignError::ModelMismatch {
            changed,
            added,
            removed,
        })
    }
}
