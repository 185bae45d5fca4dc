//! `ferry pack --generic`: any files as a plain OCI artifact.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use ferry_store::Store;
use ferry_store::index::normalize_reference;
use ferry_store::pack::generic::{ConfigFile, GenericOptions, pack_generic_with_progress};

use super::pack::{check_rfc3339, source_date_epoch};
use crate::cli::PackArgs;
use crate::output::print_json;
use crate::progress::Bar;
use crate::size::human;

pub fn run(store: &Store, args: &PackArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let reference = normalize_reference(&args.reference)?;
    let options = options(args)?;
    let bar = Bar::new(quiet, "packing");
    let started = Instant::now();
    let result = pack_generic_with_progress(store, &args.dir, &reference, &options, &bar);
    bar.finish();
    let packed = result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&serde_json::json!({
            "reference": packed.reference,
            "digest": packed.manifest_digest.to_string(),
            "artifactType": packed.manifest.artifact_type().as_ref().map(|t| t.to_string()),
            "layers": packed.layers,
            "bytes": packed.content_bytes,
            "seconds": seconds,
        }))?;
    } else {
        println!("{} {}", packed.reference, packed.manifest_digest);
        if !quiet {
            eprintln!(
                "packed {} in {} layers in {seconds:.2}s",
                human(packed.content_bytes),
                packed.layers
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn options(args: &PackArgs) -> anyhow::Result<GenericOptions> {
    let m = &args.metadata;
    let model_flags = [
        m.name.is_some(),
        m.family.is_some(),
        m.arch.is_some(),
        m.format.is_some(),
        m.param_size.is_some(),
        m.precision.is_some(),
        m.quantization.is_some(),
        m.model_version.is_some(),
        !m.license.is_empty(),
        !m.author.is_empty(),
    ];
    if model_flags.into_iter().any(|set| set) {
        bail!(
            "model metadata flags (--name, --family, ...) describe ModelPack models; --generic artifacts have no model config"
        );
    }
    let created = match &args.created {
        Some(value) => Some(check_rfc3339(value)?),
        None => source_date_epoch()?,
    };
    Ok(GenericOptions {
        artifact_type: args.artifact_type.clone(),
        config: args
            .config
            .as_deref()
            .map(str::parse::<ConfigFile>)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        layer_media_type: args.media_type.clone(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        created,
        link: args.link,
    })
}
