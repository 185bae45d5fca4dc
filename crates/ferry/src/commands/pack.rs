//! `ferry pack`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use ferry_spec::media::Encoding;
use ferry_spec::modelfile::ModelFacts;
use ferry_store::Store;
use ferry_store::StoreError;
use ferry_store::compress::{CompressMode, CompressOptions};
use ferry_store::index::normalize_reference;
use ferry_store::pack::hf_cache::{self, HfCacheError};
use ferry_store::pack::walk::Reach;
use ferry_store::pack::{Metadata, PackOptions, Packed, pack_with_progress};

use crate::cli::{CompressArg, LayerFormat, PackArgs};
use crate::exit::{Exit, usage_error};
use crate::output::print_json;
use crate::progress::Bar;
use crate::report::PackReport;
use crate::size::{human, rate};

pub fn run(store: &Store, args: &PackArgs, dir: &Path, quiet: bool) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let options = options(args)?;
    refuse_unsafe_files(args, dir, &reference, &options, quiet)?;
    // Read (and its password asked for) before the files, not after.
    let sign_key = signing_key(args)?;
    let bar = Bar::new(quiet, "packing");
    let started = Instant::now();
    let result = pack_with_progress(store, dir, &reference, &options, &bar);
    bar.finish();
    let packed = result?;
    finish(store, args, dir, packed, sign_key.as_ref(), started, quiet)
}

/// The directory to pack: DIR, or the Hugging Face cache snapshot that
/// `--from-hf-cache` names.
pub(super) fn source_dir(args: &PackArgs) -> anyhow::Result<PathBuf> {
    match (&args.dir, &args.from_hf_cache) {
        (Some(dir), _) => Ok(dir.clone()),
        (None, Some(request)) => {
            let cache = hf_cache::cache_root(|name| std::env::var_os(name))
                .ok_or(HfCacheError::NoCacheRoot)?;
            Ok(request.find_in(&cache)?)
        }
        // clap requires one of them.
        (None, None) => Err(usage_error(&["pack"], "give DIR or --from-hf-cache")),
    }
}

/// Scans the files `pack` would pack ([`ferry_scan`]): dangerous ones (code
/// or I/O on load) stop the pack unless `--allow-unsafe`; suspicious and
/// malformed ones are named on stderr.
pub(super) fn refuse_unsafe_files(
    args: &PackArgs,
    dir: &Path,
    reference: &ferry_spec::Reference,
    options: &PackOptions,
    quiet: bool,
) -> anyhow::Result<()> {
    // The files pack would read: a link followed (out of a Hugging Face
    // snapshot into its blobs, say) is scanned at its target.
    let prepared = ferry_store::pack::prepare(dir, reference, options)?;
    let mut refused = Vec::new();
    for file in prepared.files() {
        // A link kept as a link is judged by its target's content under its
        // own name: what a loader opening that name reads.
        let opened = match &file.link_target {
            // A kept link to a directory has no bytes of its own: the
            // files below its target are walked (and scanned) themselves.
            Some(_) if dir.join(&file.rel).is_dir() => continue,
            Some(_) => {
                let path = dir.join(&file.rel);
                ferry_store::pack::walk::open_regular(&path)
                    .with_context(|| format!("scanning {}", path.display()))?
            }
            None => file
                .open()
                .with_context(|| format!("scanning {}", file.read_from.display()))?,
        };
        let len = opened.metadata()?.len();
        let report = ferry_scan::scan_file(&file.rel, opened, len)
            .with_context(|| format!("scanning {}", file.rel))?;
        let reasons = || {
            report
                .findings
                .iter()
                .map(|f| match &f.finding.global {
                    Some(global) => format!("{global} ({})", f.finding.reason),
                    None => f.finding.reason.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        // Dangerous is the worst verdict: a dangerous finding is never
        // hidden behind a malformed one.
        match report.verdict {
            ferry_scan::Verdict::Safe => {}
            ferry_scan::Verdict::Dangerous => {
                refused.push(format!("{} is dangerous: {}", file.rel, reasons()));
            }
            verdict => {
                if !quiet {
                    eprintln!(
                        "warning: {} is {}: {}",
                        file.rel,
                        verdict.as_str(),
                        reasons()
                    );
                }
            }
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    if args.allow_unsafe {
        for line in &refused {
            eprintln!("warning: packing anyway (--allow-unsafe): {line}");
        }
        return Ok(());
    }
    bail!(
        "{} (`ferry scan {}` for details; --allow-unsafe packs anyway)",
        refused.join("; "),
        dir.display()
    )
}

/// `--sign-key`'s private key, read before packing.
pub(super) fn signing_key(args: &PackArgs) -> anyhow::Result<Option<ferry_sign::PrivateKey>> {
    args.sign_key
        .as_deref()
        .map(|path| super::sign::read_private_key(path, "pack"))
        .transpose()
}

/// What `pack` and `pack --generic` do once the artifact is stored: sign
/// its files when asked, then print.
pub(super) fn finish(
    store: &Store,
    args: &PackArgs,
    dir: &Path,
    packed: Packed,
    sign_key: Option<&ferry_sign::PrivateKey>,
    started: Instant,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let model_signature = sign_key
        .map(|key| {
            super::model_signature::sign_packed(
                store,
                dir,
                &packed.manifest_digest,
                &packed.files,
                key,
            )
            .context("signing the packed files")
        })
        .transpose()?;
    let seconds = started.elapsed().as_secs_f64();
    print_packed(packed, model_signature, seconds, args.json, quiet)?;
    Ok(Exit::Ok)
}

/// Prints what `pack` and `pack --generic` stored: the reference and digest,
/// or the `--json` report.
fn print_packed(
    packed: Packed,
    model_signature: Option<ferry_spec::oci::Digest>,
    seconds: f64,
    json: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if json {
        print_json(&PackReport {
            reference: packed.reference,
            digest: packed.manifest_digest.to_string(),
            artifact_type: packed
                .manifest
                .artifact_type()
                .as_ref()
                .map(|t| t.to_string()),
            layers: packed.layers,
            content_bytes: packed.content_bytes,
            sent_bytes: None,
            model_signature: model_signature.as_ref().map(ToString::to_string),
            seconds,
        })?;
    } else {
        println!("{} {}", packed.reference, packed.manifest_digest);
        if let Some(referrer) = &model_signature {
            eprintln!(
                "signed {} files; model signature attached as {referrer}",
                packed.files.len()
            );
        }
        if !quiet {
            eprintln!(
                "packed {} in {} layers in {seconds:.2}s ({}/s)",
                human(packed.content_bytes),
                packed.layers,
                rate(packed.content_bytes, seconds)
            );
        }
    }
    Ok(())
}

pub(super) fn options(args: &PackArgs) -> anyhow::Result<PackOptions> {
    let created = match &args.created {
        Some(value) => Some(value.clone()),
        None => source_date_epoch()?,
    };
    let compress = CompressOptions {
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
    };
    // The level's range depends on the codec, so clap cannot check it alone.
    if let Err(e @ StoreError::LevelOutOfRange { .. }) = compress.validate() {
        return Err(usage_error(&["pack"], format!("--level: {e}")));
    }
    let m = &args.metadata;
    Ok(PackOptions {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        modelfile: args.modelfile.clone(),
        metadata: Metadata {
            facts: ModelFacts {
                name: m.name.clone(),
                family: m.family.clone(),
                arch: m.arch.clone(),
                format: m.format.clone(),
                param_size: m.param_size.clone(),
                precision: m.precision.clone(),
                quantization: m.quantization.clone(),
            },
            version: m.model_version.clone(),
            licenses: m.license.clone(),
            authors: m.author.clone(),
        },
        layer_format: match args.layer_format {
            LayerFormat::Raw => Encoding::Raw,
            LayerFormat::Tar => Encoding::Tar,
        },
        bundle_small: args.bundle_small,
        preserve_metadata: args.preserve_metadata,
        created,
        link: args.link,
        link_reach: link_reach(args),
        refuse_symlinks: args.sign_key.is_some(),
        compress,
        kitignore: true,
    })
}

/// `--follow-symlinks`.
pub(super) fn link_reach(args: &PackArgs) -> Reach {
    if args.follow_symlinks {
        Reach::Anywhere
    } else {
        Reach::Contained
    }
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
