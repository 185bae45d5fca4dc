//! Model signatures attached to artifacts: `ferry pack --sign-key` signs
//! the files it packs and stores the signature as a referrer; `ferry
//! verify` checks such a signature against the artifact's files, or with
//! `--files DIR` against the files a user has in front of them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_registry::signatures::store_bundle_referrer;
use ferry_sign::PrivateKey;
use ferry_sign::PublicKey;
use ferry_sign::model::{
    HashOptions, Manifest, ManifestEntry, SignedModel, hash_model, sign_model_manifest,
};
use ferry_spec::oci::Digest;
use ferry_spec::signature::MODEL_SIGNING_PREDICATE;
use ferry_store::Store;
use ferry_store::pack::PackedFile;

use crate::report::SignatureCheck;

/// What a model signature is compared with.
pub(super) enum FilesUnderTest {
    /// A directory on disk (`ferry verify --files DIR`), hashed per
    /// signature with the signer's ignore paths.
    Dir(PathBuf),
    /// The artifact's files, read from its layers, or why they cannot be
    /// signed.
    Artifact(Result<Vec<ManifestEntry>, String>),
}

impl FilesUnderTest {
    fn describe(&self) -> String {
        match self {
            Self::Dir(dir) => dir.display().to_string(),
            Self::Artifact(_) => "the artifact".to_string(),
        }
    }
}

/// Verifies the model signature `bundle` (the layer of the referrer
/// `referrer`) with `keys`, then compares its files with `files`.
pub(super) fn check_model(
    referrer: &Digest,
    bundle: &[u8],
    keys: &[PublicKey],
    files: &FilesUnderTest,
) -> SignatureCheck {
    let judged = SignedModel::verify(bundle, keys)
        .map_err(|e| e.to_string())
        .and_then(|signed| {
            compare(&signed, files)?;
            Ok(signed)
        });
    match judged {
        Ok(signed) => SignatureCheck {
            format: "model",
            digest: referrer.to_string(),
            verified: true,
            key: Some(signed.verified().key.to_string()),
            docker_reference: None,
            files: Some(signed.verified().files),
            checked_against: Some(files.describe()),
            problem: None,
        },
        Err(problem) => SignatureCheck {
            format: "model",
            digest: referrer.to_string(),
            verified: false,
            key: None,
            docker_reference: None,
            files: None,
            checked_against: Some(files.describe()),
            problem: Some(problem),
        },
    }
}

fn compare(signed: &SignedModel, files: &FilesUnderTest) -> Result<(), String> {
    match files {
        FilesUnderTest::Dir(dir) => {
            let options = HashOptions {
                ignore_paths: signed.ignore_paths().to_vec(),
            };
            let actual = hash_model(dir, &options).map_err(|e| e.to_string())?;
            signed.matches(&actual).map_err(|e| e.to_string())
        }
        FilesUnderTest::Artifact(Ok(entries)) => signed
            .matches_files(entries.iter().map(|e| (e.name.as_str(), e.sha256)))
            .map_err(|e| e.to_string()),
        FilesUnderTest::Artifact(Err(reason)) => Err(reason.clone()),
    }
}

/// `ferry pack --sign-key`: signs `packed` (the files just written into
/// the store, hashed as they were read) with `key` and stores the model
/// signature as a referrer of `manifest`. Returns the referrer's digest.
pub(super) fn sign_packed(
    store: &Store,
    dir: &Path,
    manifest: &Digest,
    packed: &[PackedFile],
    key: &PrivateKey,
) -> anyhow::Result<Digest> {
    let options = HashOptions::default();
    let ignored = options.effective_ignore_paths();
    let mut files = Vec::with_capacity(packed.len());
    for file in packed {
        // Refused before packing (PackOptions::refuse_symlinks).
        let Some(sha256) = &file.sha256 else {
            anyhow::bail!("{} is a symbolic link: it cannot be signed", file.path);
        };
        // Paths model_signing leaves out of every model are not signed.
        if ignored
            .iter()
            .any(|ignore| file.path == *ignore || file.path.starts_with(&format!("{ignore}/")))
        {
            continue;
        }
        let mut raw = [0u8; 32];
        hex::decode_to_slice(sha256.digest(), &mut raw)
            .with_context(|| format!("{}: {sha256} is not a SHA-256", file.path))?;
        files.push(ManifestEntry {
            name: file.path.clone(),
            sha256: raw,
        });
    }
    let manifest_of_files = Manifest::sorted(files);
    let bundle = sign_model_manifest(
        &ferry_sign::model::model_name(dir),
        &manifest_of_files,
        key,
        &options,
    );
    Ok(store_bundle_referrer(
        store,
        manifest,
        &bundle,
        MODEL_SIGNING_PREDICATE,
    )?)
}
