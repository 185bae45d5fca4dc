//! `ferry push` and `ferry pull`, and the client and runtime every
//! registry command shares.

use std::time::Instant;

use anyhow::Context;
use ferry_registry::credentials::DockerConfig;
use ferry_registry::hosts::RegistriesConfig;
use ferry_registry::transfer;
use ferry_registry::{Client, ClientOptions};
use ferry_store::Store;
use ferry_store::index::normalize_reference;

use crate::cli::{PullArgs, PushArgs, TransportArgs};
use crate::exit::Exit;
use crate::output::print_json;
use crate::progress::TransferBar;
use crate::report::{PullReport, PushReport, PushedBlobs, ReceivedBlobs};
use crate::size::{human, rate};

/// A registry client configured by the transport flags, `registries.toml`
/// and Docker's credentials.
pub(super) fn client(transport: &TransportArgs) -> anyhow::Result<Client> {
    let path = transport
        .registries_config
        .clone()
        .unwrap_or_else(RegistriesConfig::default_path);
    Ok(Client::new(ClientOptions {
        plain_http: transport.plain_http,
        insecure: transport.insecure,
        ca_file: transport.ca_file.clone(),
        registries: RegistriesConfig::load(&path)?,
        docker_config: Some(DockerConfig::load_default()?),
        ranges: transport.ranges(),
        ..ClientOptions::default()
    }))
}

/// The async runtime registry commands block on.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn push(store: &Store, args: &PushArgs, quiet: bool) -> anyhow::Result<Exit> {
    let destination = normalize_reference(args.destination.as_deref().unwrap_or(&args.reference))?;
    let client = client(&args.transport)?;
    let (pushed, bar, seconds) = with_transfer_bar(quiet, "pushing", async |bar| {
        transfer::push(
            &client,
            store,
            &args.reference,
            &destination,
            args.transport.concurrency,
            bar,
        )
        .await
    })?;
    if args.json {
        print_json(&PushReport {
            reference: pushed.reference,
            digest: pushed.digest.to_string(),
            blobs: PushedBlobs {
                sent: pushed.uploaded,
                present: pushed.skipped,
            },
            sent_bytes: bar.bytes(),
            seconds,
        })?;
    } else {
        println!("{} {}", pushed.reference, pushed.digest);
        if !quiet {
            eprintln!(
                "pushed {} blobs ({} already there), {} in {seconds:.2}s ({}/s)",
                pushed.uploaded,
                pushed.skipped,
                human(bar.bytes()),
                rate(bar.bytes(), seconds)
            );
        }
    }
    Ok(Exit::Ok)
}

pub fn pull(store: &Store, args: &PullArgs, quiet: bool) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let started = Instant::now();
    let pulled = pull_with_bar(
        store,
        &reference,
        args.platform.as_ref(),
        &args.transport,
        args.policy.policy.as_deref(),
        quiet,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&PullReport {
            blobs: ReceivedBlobs {
                received: pulled.downloaded,
                present: stored_blobs(store, &pulled.digest).saturating_sub(pulled.downloaded),
            },
            reference: pulled.reference,
            digest: pulled.digest.to_string(),
            received_bytes: pulled.bytes,
            seconds,
        })?;
    } else {
        println!("{} {}", pulled.reference, pulled.digest);
        if !quiet {
            eprintln!(
                "pulled {} blobs, {} in {seconds:.2}s ({}/s)",
                pulled.downloaded,
                human(pulled.bytes),
                rate(pulled.bytes, seconds)
            );
        }
    }
    Ok(Exit::Ok)
}

/// Pulls `reference` into the store behind a progress bar: `pull`, and
/// `mount` of an artifact the store lacks.
pub(super) fn pull_with_bar(
    store: &Store,
    reference: &ferry_spec::Reference,
    platform: Option<&ferry_registry::platform::Platform>,
    transport: &TransportArgs,
    policy: Option<&std::path::Path>,
    quiet: bool,
) -> anyhow::Result<transfer::Pulled> {
    let client = client(transport)?;
    let (pulled, _, _) = with_transfer_bar(quiet, "pulling", async |bar| {
        // Nothing is downloaded before the policy accepts the manifest.
        ferry_registry::admission::pull_admitted(
            &client,
            store,
            policy,
            reference,
            platform,
            transport.concurrency,
            bar,
        )
        .await
    })?;
    Ok(pulled)
}

/// Runs a registry transfer on a fresh runtime behind a progress bar: what
/// it gave, the bar (it counts the bytes moved) and the seconds it took.
pub(super) fn with_transfer_bar<T, E>(
    quiet: bool,
    label: &str,
    work: impl AsyncFnOnce(&TransferBar) -> Result<T, E>,
) -> anyhow::Result<(T, TransferBar, f64)>
where
    anyhow::Error: From<E>,
{
    let bar = TransferBar::new(quiet, label);
    let started = Instant::now();
    let result = runtime()?.block_on(work(&bar));
    bar.finish();
    Ok((result?, bar, started.elapsed().as_secs_f64()))
}

/// How many of a manifest's config and layers the store holds.
fn stored_blobs(store: &Store, manifest: &ferry_spec::oci::Digest) -> usize {
    let Ok(manifest) = store.read_manifest(manifest) else {
        return 0;
    };
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .filter(|blob| store.has_blob(blob.digest()))
        .count()
}
