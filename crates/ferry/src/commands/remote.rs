//! `ferry copy`, `ferry fetch`, `ferry pull --extract` and `ferry pack --push`:
//! commands that move artifacts without going through the store.

use std::time::Instant;

use ferry_registry::copy::{CopyOptions, Location, copy as copy_artifact};
use ferry_registry::pack_push::pack_and_push;
use ferry_registry::remote_extract::{LayerFilter, RemoteExtractOptions, extract_remote};
use ferry_store::index::normalize_reference;

use super::transfer::{client, runtime, with_transfer_bar};
use crate::cli::{CopyArgs, FetchArgs, PackArgs, PullArgs, TransportArgs};
use crate::exit::Exit;
use crate::output::print_json;
use crate::progress::Bar;
use crate::report::{CopiedBlobs, CopyReport, FetchReport, PackReport};
use crate::size::{human, rate};

pub fn copy(args: &CopyArgs, quiet: bool) -> anyhow::Result<Exit> {
    let source = Location::parse(&args.source)?;
    let destination = Location::parse(&args.destination)?;
    let client = client(&args.transport)?;
    let options = CopyOptions {
        recursive: args.recursive,
        concurrency: args.transport.concurrency,
    };
    let (copied, _, seconds) = with_transfer_bar(quiet, "copying", async |bar| {
        // Content from a registry comes in only as the policy allows
        // (layouts and archives are the user's own files).
        let source = match source {
            Location::Registry(reference) => Location::Registry(
                ferry_registry::admission::admit(
                    &client,
                    args.policy.policy.as_deref(),
                    &reference,
                )
                .await?,
            ),
            other => other,
        };
        anyhow::Ok(copy_artifact(&client, &source, &destination, &options, bar).await?)
    })?;
    if args.json {
        print_json(&CopyReport {
            source: copied.source,
            destination: copied.destination,
            digest: copied.digest.to_string(),
            media_type: copied.media_type,
            manifests: copied.manifests,
            referrers: copied.referrers,
            blobs: CopiedBlobs {
                sent: copied.sent,
                mounted: copied.mounted,
                present: copied.present,
            },
            sent_bytes: copied.bytes,
            seconds,
        })?;
    } else {
        println!("{} {}", copied.destination, copied.digest);
        if !quiet {
            eprintln!(
                "copied {} manifests ({} referrers): {} blobs sent, {} mounted, {} already there; {} in {seconds:.2}s ({}/s)",
                copied.manifests,
                copied.referrers,
                copied.sent,
                copied.mounted,
                copied.present,
                human(copied.bytes),
                rate(copied.bytes, seconds)
            );
        }
    }
    Ok(Exit::Ok)
}

/// `ferry pull REF --extract DIR`: no store is opened.
pub fn pull_extract(args: &PullArgs, quiet: bool) -> anyhow::Result<Exit> {
    let Some(dir) = &args.extract else {
        anyhow::bail!("pull --extract needs a directory");
    };
    let options = RemoteExtractOptions {
        force: args.force,
        filter: LayerFilter::default(),
        platform: args.platform.clone(),
        concurrency: args.transport.concurrency,
    };
    extract(
        &args.reference,
        dir,
        &options,
        &args.transport,
        args.policy.policy.as_deref(),
        args.json,
        quiet,
    )
}

/// `ferry fetch REF --include GLOB --category C -o DIR`.
pub fn fetch(args: &FetchArgs, quiet: bool) -> anyhow::Result<Exit> {
    let options = RemoteExtractOptions {
        force: args.force,
        filter: LayerFilter::new(&args.include, &args.category)?,
        platform: args.platform.clone(),
        concurrency: args.transport.concurrency,
    };
    extract(
        &args.reference,
        &args.output,
        &options,
        &args.transport,
        args.policy.policy.as_deref(),
        args.json,
        quiet,
    )
}

fn extract(
    reference: &str,
    dir: &std::path::Path,
    options: &RemoteExtractOptions,
    transport: &TransportArgs,
    policy: Option<&std::path::Path>,
    json: bool,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let reference = normalize_reference(reference)?;
    let client = client(transport)?;
    let (extracted, bar, seconds) = with_transfer_bar(quiet, "downloading", async |bar| {
        let admitted = ferry_registry::admission::admit(&client, policy, &reference).await?;
        anyhow::Ok(extract_remote(&client, &admitted, dir, options, bar).await?)
    })?;
    if json {
        print_json(&FetchReport {
            reference: extracted.reference,
            digest: extracted.digest.to_string(),
            dir: extracted.dir,
            layers: extracted.layers,
            skipped_layers: extracted.skipped_layers,
            entries: extracted.entries,
            written_bytes: extracted.bytes,
            received_bytes: bar.bytes(),
            seconds,
        })?;
    } else {
        println!("{} {}", extracted.reference, extracted.digest);
        if !quiet {
            eprintln!(
                "wrote {} layers ({} entries, {}) to {} in {seconds:.2}s ({}/s); {} layers left out",
                extracted.layers.len(),
                extracted.entries,
                human(extracted.bytes),
                extracted.dir.display(),
                rate(extracted.bytes, seconds),
                extracted.skipped_layers
            );
        }
    }
    Ok(Exit::Ok)
}

/// `ferry pack DIR -t REF --push`: no store is opened.
pub fn pack_push(args: &PackArgs, quiet: bool) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let options = super::pack::options(args)?;
    super::pack::refuse_unsafe_files(args, &reference, &options, quiet)?;
    let client = client(&args.transport)?;
    let runtime = runtime()?;
    let bar = Bar::new(quiet, "packing and pushing");
    let started = Instant::now();
    let result = pack_and_push(
        runtime.handle(),
        &client,
        args.model_dir()?,
        &reference,
        &options,
        args.transport.concurrency,
        &bar,
    );
    bar.finish();
    let pushed = result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&PackReport {
            reference: pushed.reference,
            digest: pushed.digest.to_string(),
            // The manifest pack_and_push assembles is the one `ferry pack` writes.
            artifact_type: Some(ferry_spec::media::ARTIFACT_TYPE_MODEL.to_string()),
            layers: pushed.layers,
            content_bytes: pushed.content_bytes,
            sent_bytes: Some(pushed.uploaded_bytes),
            model_signature: None,
            seconds,
        })?;
    } else {
        println!("{} {}", pushed.reference, pushed.digest);
        if !quiet {
            eprintln!(
                "packed and pushed {} in {} layers in {seconds:.2}s ({}/s)",
                human(pushed.content_bytes),
                pushed.layers,
                rate(pushed.uploaded_bytes, seconds)
            );
        }
    }
    Ok(Exit::Ok)
}
