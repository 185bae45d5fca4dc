//! `ferry pack`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use ferry_spec::media::Encoding;
use ferry_store::Store;
use ferry_store::index::normalize_reference;
use ferry_store::pack::{Metadata, PackOptions, pack_with_progress};

use crate::cli::{CompressArg, LayerFormat, PackArgs};
use crate::output::print_json;
use crate::progress::Bar;
use crate::size::{human, parse_size};
use ferry_store::compress::CompressMode;

pub fn run(store: &Store, args: &PackArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let reference = normalize_reference(&args.reference)?;
    let options = options(args)?;
    let bar = Bar::new(quiet, "packing");
    let started = Instant::now();
    let result = pack_with_progress(store, &args.dir, &reference, &options, &bar);
    bar.finish();
    let packed = result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&serde_json::json!({
            "reference": packed.reference,
            "digest": packed.manifest_digest.to_string(),
            "layers": packed.layers,
            "bytes": packed.content_bytes,
            "seconds": seconds,
        }))?;
    } else {
        println!("{} {}", packed.reference, packed.manifest_digest);
        if !quiet {
            eprintln!(
                "packed {} in {} layers in {seconds:.2}s ({}/s)",
                human(packed.content_bytes),
                packed.layers,
                human((packed.content_bytes as f64 / seconds.max(1e-9)) as u64)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn options(args: &PackArgs) -> anyhow::Result<PackOptions> {
    let created = match &args.created {
        Some(value) => Some(check_rfc3339(value)?),
        None => source_date_epoch()?,
    };
    let m = &args.metadata;
    Ok(PackOptions {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        modelfile: args.modelfile.clone(),
        metadata: Metadata {
            name: m.name.clone(),
            family: m.family.clone(),
            arch: m.arch.clone(),
            format: m.format.clone(),
            param_size: m.param_size.clone(),
            precision: m.precision.clone(),
            quantization: m.quantization.clone(),
            version: m.model_version.clone(),
            licenses: m.license.clone(),
            authors: m.author.clone(),
        },
        layer_format: match args.layer_format {
            LayerFormat::Raw => Encoding::Raw,
            LayerFormat::Tar => Encoding::Tar,
        },
        bundle_small: args
            .bundle_small
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        preserve_metadata: args.preserve_metadata,
        created,
        link: args.link,
        compress: ferry_store::compress::CompressOptions {
            mode: match args.compress {
                CompressArg::None => CompressMode::None,
                CompressArg::Gzip => CompressMode::Gzip,
                CompressArg::Zstd => CompressMode::Zstd,
                CompressArg::Auto => CompressMode::Auto,
            },
            level: args.level,
            weights: args.compress_weights,
            min_saving_percent: args.min_saving,
            threads: 0,
        },
    })
}

pub(super) fn check_rfc3339(value: &str) -> anyhow::Result<String> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(value, &Rfc3339)
        .with_context(|| format!("--created {value:?} is not an RFC 3339 date-time"))?;
    Ok(parsed.format(&Rfc3339)?)
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org): seconds since the epoch.
pub(super) fn source_date_epoch() -> anyhow::Result<Option<String>> {
    let Some(value) = std::env::var_os("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    let Ok(seconds) = text.trim().parse::<i64>() else {
        bail!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds");
    };
    ferry_spec::config::rfc3339_from_unix(seconds)
        .map(Some)
        .with_context(|| format!("SOURCE_DATE_EPOCH={seconds} is out of range"))
}
