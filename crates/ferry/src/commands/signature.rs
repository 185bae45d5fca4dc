//! `ferry sign` and `ferry verify`: cosign signatures of an artifact, in the
//! local store when it has the artifact (they travel with `push`), else on
//! its registry. Bytes move through `ferry_registry::signatures`; the
//! cryptography is `ferry_sign`'s.

use std::collections::BTreeMap;

use anyhow::bail;
use ferry_registry::Client;
use ferry_registry::Endpoint;
use ferry_registry::artifact_files::remote_artifact_files;
use ferry_registry::referrers::resolve_descriptor;
use ferry_registry::signatures::{self, SignatureCandidate};
use ferry_sign::PublicKey;
use ferry_sign::artifact::{
    VerifiedSignature, sign_legacy, sign_manifest_bundle, simple_signing_payload, verify_legacy,
    verify_manifest_bundle,
};
use ferry_spec::Reference;
use ferry_spec::oci::Digest;
use ferry_spec::signature::COSIGN_SIGN_PREDICATE;
use ferry_store::Store;
use ferry_store::files::artifact_files;
use ferry_store::index::normalize_reference;

use super::model_signature::{FilesUnderTest, check_model};
use super::referrers::annotation_map;
use super::sign::{read_private_key, read_public_keys};
use super::transfer::{client, runtime};
use crate::cli::{SignArgs, SignatureFormat, VerifyArgs};
use crate::exit::Exit;
use crate::output::print_json;
use crate::report::{SignReport, SignatureCheck, VerifyReport};

/// Where the artifact and its signatures are.
enum Place {
    /// The local store, which has the artifact.
    Store,
    /// The artifact's registry.
    Registry(Box<Client>),
}

impl Place {
    fn name(&self) -> &'static str {
        match self {
            Place::Store => "store",
            Place::Registry(_) => "registry",
        }
    }
}

/// The artifact's manifest digest and where it was found.
fn locate(
    store: &Store,
    reference: &Reference,
    remote: bool,
    transport: &crate::cli::TransportArgs,
) -> anyhow::Result<(Place, Digest)> {
    if !remote && let Ok(resolved) = store.resolve(&reference.whole()) {
        return Ok((Place::Store, resolved.descriptor.digest().clone()));
    }
    let client = client(transport)?;
    let descriptor = runtime()?.block_on(resolve_descriptor(&client, reference))?;
    Ok((
        Place::Registry(Box::new(client)),
        descriptor.digest().clone(),
    ))
}

/// The identity a signature names: the repository, as cosign writes it.
fn identity(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

pub fn sign(store: &Store, args: &SignArgs) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let key = read_private_key(&args.key, "sign")?;
    let annotations = annotation_map(&args.annotations)?;
    let (place, digest) = locate(store, &reference, args.remote, &args.transport)?;
    let identity = identity(&reference);
    let mut written = Vec::new();
    if matches!(args.format, SignatureFormat::Bundle | SignatureFormat::Both) {
        let bundle = sign_manifest_bundle(&key, &digest, Some(&identity), &annotations);
        let referrer = match &place {
            Place::Store => {
                signatures::store_bundle_referrer(store, &digest, &bundle, COSIGN_SIGN_PREDICATE)?
            }
            Place::Registry(client) => {
                let pinned = ferry_registry::admission::pinned(&reference, &digest);
                runtime()?.block_on(signatures::attach_bundle(
                    client,
                    &pinned,
                    &bundle,
                    COSIGN_SIGN_PREDICATE,
                ))?
            }
        };
        written.push(format!("bundle {referrer}"));
    }
    if matches!(args.format, SignatureFormat::Legacy | SignatureFormat::Both) {
        let payload = simple_signing_payload(&identity, &digest, &annotations);
        let signature = sign_legacy(&key, &payload);
        match &place {
            Place::Store => signatures::store_legacy_signature(
                store, &reference, &digest, &payload, &signature,
            )?,
            Place::Registry(client) => runtime()?.block_on(signatures::append_legacy_signature(
                client,
                &Endpoint::of(&reference),
                &digest,
                &payload,
                &signature,
            ))?,
        }
        written.push(format!(
            "legacy {}",
            ferry_spec::signature::signature_tag(&digest).unwrap_or_default()
        ));
    }
    let key = key.public_key().description();
    if args.json {
        print_json(&SignReport {
            reference: reference.whole(),
            digest: digest.to_string(),
            location: place.name(),
            signatures: written,
            key,
        })?;
    } else {
        println!(
            "signed {}@{digest} in the {} with {key}: {}",
            reference.whole(),
            place.name(),
            written.join(", ")
        );
    }
    Ok(Exit::Ok)
}

pub fn verify(store: &Store, args: &VerifyArgs) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let keys = read_public_keys(&args.key)?;
    let wanted = annotation_map(&args.annotations)?;
    let (place, digest) = locate(store, &reference, args.remote, &args.transport)?;
    let candidates = match &place {
        Place::Store => signatures::local_signatures(store, &reference, &digest)?,
        Place::Registry(client) => runtime()?.block_on(signatures::find_signatures(
            client,
            &Endpoint::of(&reference),
            &digest,
        ))?,
    };
    let identity = identity(&reference);
    // With --files only model signatures speak for the files; otherwise
    // every signature is checked, model ones against the artifact's files.
    let candidates: Vec<SignatureCandidate> = candidates
        .into_iter()
        .filter(|c| args.files.is_none() || c.is_model_signature())
        .collect();
    let files = if candidates
        .iter()
        .any(SignatureCandidate::is_model_signature)
    {
        Some(files_under_test(store, &place, &reference, &digest, args)?)
    } else {
        None
    };
    let checks: Vec<SignatureCheck> = candidates
        .iter()
        .map(|candidate| match (candidate, &files) {
            (
                SignatureCandidate::Bundle {
                    referrer, bytes, ..
                },
                Some(files),
            ) if candidate.is_model_signature() => check_model(referrer, bytes, &keys, files),
            (
                SignatureCandidate::Bundle {
                    referrer, bytes, ..
                },
                _,
            ) if candidate.is_scan_report() => check_scan(referrer, bytes, &keys, &digest),
            _ => check(candidate, &keys, &digest, &identity, &wanted),
        })
        .collect();
    let verified = checks.iter().any(|c| c.verified);
    if args.json {
        print_json(&VerifyReport {
            reference: reference.whole(),
            digest: digest.to_string(),
            location: place.name(),
            verified,
            signatures: checks,
        })?;
    } else {
        for c in &checks {
            match (&c.verified, &c.key) {
                (true, Some(key)) => match (&c.files, &c.checked_against) {
                    (Some(files), Some(against)) => println!(
                        "verified: {} signature {} by {key}: its {files} files are those of {against}",
                        c.format, c.digest
                    ),
                    _ => println!("verified: {} signature {} by {key}", c.format, c.digest),
                },
                _ => println!(
                    "not verified: {} signature {}: {}",
                    c.format,
                    c.digest,
                    c.problem.as_deref().unwrap_or("unknown")
                ),
            }
        }
    }
    if !verified {
        if candidates.is_empty() {
            bail!(
                "{}@{digest} has no {}signatures in the {}",
                reference.whole(),
                if args.files.is_some() { "model " } else { "" },
                place.name()
            );
        }
        bail!(
            "no signature of {}@{digest} verifies with the keys given",
            reference.whole()
        );
    }
    Ok(Exit::Ok)
}

/// A signed scan report (`ferry scan --attach`): verified by a key, about
/// this manifest, and clean. A report that found dangerous, malformed or
/// suspicious files does not count as verified, and says what it found.
fn check_scan(
    referrer: &Digest,
    bundle: &[u8],
    keys: &[PublicKey],
    digest: &Digest,
) -> SignatureCheck {
    let judged = ferry_sign::attestation::verify_attestation(
        bundle,
        keys,
        ferry_spec::signature::SCAN_REPORT_PREDICATE,
        digest,
    )
    .map_err(|e| e.to_string())
    .and_then(|attested| {
        let verdict = attested
            .predicate
            .get("verdict")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        if verdict == "safe" {
            Ok(attested.key)
        } else {
            Err(format!("the signed scan report found {verdict} files"))
        }
    });
    let (verified, key, problem) = match judged {
        Ok(key) => (true, Some(key.to_string()), None),
        Err(problem) => (false, None, Some(problem)),
    };
    SignatureCheck {
        format: "scan",
        digest: referrer.to_string(),
        verified,
        key,
        docker_reference: None,
        files: None,
        checked_against: None,
        problem,
    }
}

/// What model signatures are compared with: `--files DIR`, else the
/// artifact's files read from its layers (in the store, or streamed from
/// the registry without keeping anything).
fn files_under_test(
    store: &Store,
    place: &Place,
    reference: &Reference,
    digest: &Digest,
    args: &VerifyArgs,
) -> anyhow::Result<FilesUnderTest> {
    if let Some(dir) = &args.files {
        return Ok(FilesUnderTest::Dir(dir.clone()));
    }
    let files = match place {
        Place::Store => artifact_files(store, &store.read_manifest(digest)?)?,
        Place::Registry(client) => {
            let pinned = ferry_registry::admission::pinned(reference, digest);
            runtime()?.block_on(remote_artifact_files(client, &pinned, None))?
        }
    };
    Ok(FilesUnderTest::Artifact(
        ferry_registry::admission::signable(&files),
    ))
}

/// Verifies one candidate: a trusted key, this manifest's digest, this
/// repository's identity (when the signature names one: cosign's own
/// bundles name none) and the annotations asked for.
fn check(
    candidate: &SignatureCandidate,
    keys: &[PublicKey],
    digest: &Digest,
    identity: &str,
    wanted: &BTreeMap<String, String>,
) -> SignatureCheck {
    let (format, found, result) = match candidate {
        SignatureCandidate::Bundle {
            referrer, bytes, ..
        } => (
            "bundle",
            referrer,
            verify_manifest_bundle(bytes, keys, digest),
        ),
        SignatureCandidate::Legacy {
            layer,
            payload,
            signature_b64,
            ..
        } => ("legacy", layer, verify_legacy(payload, signature_b64, keys)),
    };
    let judged = result
        .map_err(|e| e.to_string())
        .and_then(|verified| judge(verified, digest, identity, wanted));
    match judged {
        Ok(verified) => SignatureCheck {
            format,
            digest: found.to_string(),
            verified: true,
            key: Some(verified.key.to_string()),
            docker_reference: verified.docker_reference,
            files: None,
            checked_against: None,
            problem: None,
        },
        Err(problem) => SignatureCheck {
            format,
            digest: found.to_string(),
            verified: false,
            key: None,
            docker_reference: None,
            files: None,
            checked_against: None,
            problem: Some(problem),
        },
    }
}

fn judge(
    verified: VerifiedSignature,
    digest: &Digest,
    identity: &str,
    wanted: &BTreeMap<String, String>,
) -> Result<VerifiedSignature, String> {
    verified.check(digest, wanted).map_err(|e| e.to_string())?;
    if let Some(signed) = &verified.docker_reference {
        let normalized = normalize_reference(signed)
            .map(|r| format!("{}/{}", r.registry(), r.repository()))
            .unwrap_or_else(|_| signed.clone());
        if normalized != identity {
            return Err(format!(
                "signed for {signed}, not {identity} (a signature copied from another repository)"
            ));
        }
    }
    Ok(verified)
}
