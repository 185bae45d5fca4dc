//! `ferry push`, `pull`, `login`, `logout`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use ferry_registry::client::{Access, Endpoint};
use ferry_registry::credentials::{DockerConfig, Secret};
use ferry_registry::hosts::RegistriesConfig;
use ferry_registry::platform::Platform;
use ferry_registry::transfer;
use ferry_registry::{Client, ClientOptions};
use ferry_store::Store;
use ferry_store::index::normalize_reference;

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, TransportArgs};
use crate::output::print_json;
use crate::progress::TransferBar;
use crate::size::human;

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
        ..ClientOptions::default()
    }))
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn push(store: &Store, args: &PushArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let destination = normalize_reference(args.destination.as_deref().unwrap_or(&args.reference))?;
    let client = client(&args.transport)?;
    let bar = TransferBar::new(quiet, "pushing");
    let started = Instant::now();
    let result = runtime()?.block_on(transfer::push(
        &client,
        store,
        &args.reference,
        &destination,
        args.transport.concurrency,
        &bar,
    ));
    bar.finish();
    let pushed = result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&serde_json::json!({
            "reference": pushed.reference,
            "digest": pushed.digest.to_string(),
            "uploaded": pushed.uploaded,
            "skipped": pushed.skipped,
            "bytes": bar.bytes(),
            "seconds": seconds,
        }))?;
    } else {
        println!("{} {}", pushed.reference, pushed.digest);
        if !quiet {
            eprintln!(
                "pushed {} blobs ({} already there), {} in {seconds:.2}s ({}/s)",
                pushed.uploaded,
                pushed.skipped,
                human(bar.bytes()),
                human((bar.bytes() as f64 / seconds.max(1e-9)) as u64)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pull(store: &Store, args: &PullArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let reference = normalize_reference(&args.reference)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let client = client(&args.transport)?;
    let bar = TransferBar::new(quiet, "pulling");
    let started = Instant::now();
    let result = runtime()?.block_on(transfer::pull(
        &client,
        store,
        &reference,
        platform.as_ref(),
        args.transport.concurrency,
        &bar,
    ));
    bar.finish();
    let pulled = result?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&serde_json::json!({
            "reference": pulled.reference,
            "digest": pulled.digest.to_string(),
            "downloaded": pulled.downloaded,
            "bytes": pulled.bytes,
            "seconds": seconds,
        }))?;
    } else {
        println!("{} {}", pulled.reference, pulled.digest);
        if !quiet {
            eprintln!(
                "pulled {} blobs, {} in {seconds:.2}s ({}/s)",
                pulled.downloaded,
                human(pulled.bytes),
                human((pulled.bytes as f64 / seconds.max(1e-9)) as u64)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn login(args: &LoginArgs) -> anyhow::Result<ExitCode> {
    if !args.password_stdin {
        bail!(
            "pass the password on stdin with --password-stdin (it never goes on the command line)"
        );
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = Secret::new(password.trim_end_matches(['\n', '\r']));
    // Check the credentials against the registry before saving them.
    let mut config = DockerConfig::load_default()?;
    let mut probe = DockerConfig::load(
        std::env::temp_dir().join(format!("ferry-login-{}.json", std::process::id())),
    )?;
    let registry = args.registry.trim_end_matches('/');
    probe.store_login_in_memory(registry, &args.username, &password);
    let client = Client::new(ClientOptions {
        plain_http: args.transport.plain_http,
        insecure: args.transport.insecure,
        ca_file: args.transport.ca_file.clone(),
        docker_config: Some(probe),
        ..ClientOptions::default()
    });
    let endpoint = Endpoint {
        registry: registry.to_string(),
        repository: "ferry-login-check".to_string(),
    };
    runtime()?.block_on(client.check_login(&endpoint, Access::Pull))?;
    config.store_login(registry, &args.username, &password)?;
    println!("login succeeded for {registry}");
    Ok(ExitCode::SUCCESS)
}

pub fn logout(args: &LogoutArgs) -> anyhow::Result<ExitCode> {
    let mut config = DockerConfig::load_default()?;
    if config.remove_login(&args.registry)? {
        println!("removed login for {}", args.registry);
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("not logged in to {}", args.registry)
    }
}
