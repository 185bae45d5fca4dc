//! `ferry index create`.

use anyhow::Context;
use ferry_registry::image_index::{IndexEntry, create_index};
use ferry_registry::platform::Platform;
use ferry_spec::Reference;
use ferry_store::index::{normalize_reference, parse_digest};

use super::transfer::{client, runtime};
use crate::cli::{IndexAction, IndexArgs, IndexCreateArgs};
use crate::exit::{Exit, usage_error};
use crate::output::print_json;
use crate::report::{IndexReport, IndexedManifest};

pub fn run(args: &IndexArgs) -> anyhow::Result<Exit> {
    match &args.action {
        IndexAction::Create(create) => create_command(create),
    }
}

fn create_command(args: &IndexCreateArgs) -> anyhow::Result<Exit> {
    let target = normalize_reference(&args.reference)?;
    let entries = entries(&target, &args.manifests, &args.platforms)?;
    let client = client(&args.transport)?;
    let created = runtime()?.block_on(create_index(&client, &target, &entries))?;
    if args.json {
        let manifests = created
            .manifests
            .iter()
            .map(|d| IndexedManifest {
                media_type: d.media_type().to_string(),
                digest: d.digest().to_string(),
                size: d.size(),
                artifact_type: d.artifact_type().as_ref().map(|t| t.to_string()),
                platform: d.platform().as_ref().map(|p| {
                    let mut text = format!("{}/{}", p.os(), p.architecture());
                    if let Some(variant) = p.variant() {
                        text = format!("{text}/{variant}");
                    }
                    text
                }),
            })
            .collect();
        print_json(&IndexReport {
            reference: created.reference,
            digest: created.digest.to_string(),
            manifests,
        })?;
    } else {
        println!("{} {}", created.reference, created.digest);
    }
    Ok(Exit::Ok)
}

/// Pairs each `--manifest` with its `--platform` (by position).
fn entries(
    target: &Reference,
    manifests: &[String],
    platforms: &[Platform],
) -> anyhow::Result<Vec<IndexEntry>> {
    if !platforms.is_empty() && platforms.len() != manifests.len() {
        return Err(usage_error(
            &["index", "create"],
            format!(
                "{} --platform values for {} --manifest values: give one per manifest, in the same order, or none",
                platforms.len(),
                manifests.len()
            ),
        ));
    }
    manifests
        .iter()
        .enumerate()
        .map(|(i, manifest)| {
            Ok(IndexEntry {
                reference: manifest_reference(target, manifest)?,
                platform: platforms.get(i).cloned(),
            })
        })
        .collect()
}

/// A `--manifest` value: a full reference, or a bare digest in the index's repository.
fn manifest_reference(target: &Reference, value: &str) -> anyhow::Result<Reference> {
    let algorithm = value.split_once(':').map(|(a, _)| a);
    if matches!(algorithm, Some("sha256" | "sha384" | "sha512")) {
        let digest = parse_digest(value)
            .with_context(|| format!("--manifest {value:?} is neither a reference nor a digest"))?;
        return Ok(Reference::with_digest(
            target.registry().to_string(),
            target.repository().to_string(),
            digest.to_string(),
        ));
    }
    Ok(normalize_reference(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_pair_with_manifests_by_position() {
        let target: Reference = "localhost:5000/m:multi".parse().unwrap();
        let manifests = vec![
            "localhost:5000/m:amd".to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".to_string(),
        ];
        let platforms: Vec<Platform> = ["linux/amd64", "linux/arm64/v8"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let paired = entries(&target, &manifests, &platforms).unwrap();
        assert_eq!(paired[0].reference.tag(), Some("amd"));
        assert_eq!(
            paired[0].platform.as_ref().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(paired[1].reference.repository(), "m");
        assert_eq!(paired[1].reference.registry(), "localhost:5000");
        assert!(paired[1].reference.digest().is_some());
        assert_eq!(
            paired[1].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );

        let none = entries(&target, &manifests, &[]).unwrap();
        assert!(none.iter().all(|e| e.platform.is_none()));
        let short = entries(&target, &manifests, &platforms[..1]).unwrap_err();
        assert!(
            short.to_string().contains("1 --platform values for 2"),
            "{short}"
        );
        assert!(
            short.downcast_ref::<clap::Error>().is_some(),
            "a usage error: {short}"
        );
        assert!(manifest_reference(&target, "sha256:xyz").is_err());
        // A short name is a reference (and then not in the index's repository).
        let other = manifest_reference(&target, "m:v1").unwrap();
        assert_eq!(other.registry(), "docker.io");
    }
}
