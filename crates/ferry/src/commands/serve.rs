//! `ferry serve` and `ferry serve gc`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ferry_server::gc::{GcOptions, collect};
use ferry_server::{Handle, ServerConfig};

use crate::cli::{GcArgs, ServeAction, ServeArgs};
use crate::exit::Exit;
use crate::output::print_json;
use crate::report::GcReport;
use crate::size::human;

pub fn run(store_root: &Path, args: &ServeArgs) -> anyhow::Result<Exit> {
    let default_root = store_root.join("registry");
    if let Some(ServeAction::Gc(gc)) = &args.action {
        return run_gc(&default_root, gc);
    }
    let mut config = ServerConfig::new(args.root.clone().unwrap_or(default_root));
    config.addr = args.addr;
    config.htpasswd = args.htpasswd.clone();
    config.anonymous_pull = args.anonymous_pull;
    config.read_only = args.read_only;
    config.tls = args.tls_cert.clone().zip(args.tls_key.clone());
    config.idle_timeout = args.idle_timeout;
    config.manifest_timeout = args.manifest_timeout;
    config.max_connections = args.max_connections;
    config.max_connections_per_client = args.max_connections_per_client;
    config.upload_ttl = args.upload_ttl;
    config.upload_idle_ttl = args.upload_idle_ttl;
    config.upload_limits = ferry_server::UploadLimits {
        max_sessions: args.max_uploads,
        max_sessions_per_client: args.max_uploads_per_client,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let handle = Handle::new();
        let signals = handle.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            signals.graceful_shutdown(Some(Duration::from_secs(30)));
        });
        let announce = handle.clone();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let root = config.root.clone();
        tokio::spawn(async move {
            if let Some(addr) = announce.listening().await {
                eprintln!(
                    "ferry serve: listening on {scheme}://{addr} (storage {})",
                    root.display()
                );
            }
        });
        ferry_server::serve(config, handle).await
    })?;
    Ok(Exit::Ok)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn run_gc(default_root: &Path, args: &GcArgs) -> anyhow::Result<Exit> {
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| default_root.to_path_buf());
    if !root.join("blobs").is_dir() {
        anyhow::bail!("{} is not a ferry registry root", root.display());
    }
    let report = collect(
        &root,
        &GcOptions {
            dry_run: args.dry_run,
            delete_untagged: args.delete_untagged,
            grace: args.grace,
        },
    )
    .with_context(|| format!("collecting garbage in {}", root.display()))?;
    if args.json {
        print_json(&GcReport {
            dry_run: args.dry_run,
            manifests: report.manifests,
            links: report.links,
            blobs: report.blobs,
            freed_bytes: report.bytes,
        })?;
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        println!(
            "{verb} {} manifests, {} repository links, {} blobs ({})",
            report.manifests.len(),
            report.links,
            report.blobs.len(),
            human(report.bytes)
        );
    }
    Ok(Exit::Ok)
}
