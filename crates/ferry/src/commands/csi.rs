//! `ferry csi`: the Kubernetes CSI driver, until SIGTERM.

use std::path::Path;

use anyhow::Context;
use ferry_csi::{Driver, DriverOptions, RegistrySettings};

use crate::cli::CsiArgs;
use crate::exit::Exit;

pub fn run(store_root: &Path, args: &CsiArgs) -> anyhow::Result<Exit> {
    let transport = &args.transport;
    let driver = Driver::new(DriverOptions {
        store_root: store_root.to_path_buf(),
        node_id: args.node_id.clone(),
        driver_name: args.driver_name.clone(),
        policy: args.policy.policy.clone(),
        registries: RegistrySettings {
            plain_http: transport.plain_http,
            insecure: transport.insecure,
            ca_file: transport.ca_file.clone(),
            registries_config: transport.registries_config.clone(),
            docker_config: args.docker_config.clone(),
            ranges: transport.ranges(),
        },
        concurrency: transport.concurrency,
    })
    .with_context(|| format!("opening the store at {}", store_root.display()))?;
    let runtime = super::transfer::runtime()?;
    runtime.block_on(async {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            ferry_csi::shutdown_signal().await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Some(addr) = args.metrics_addr {
            let metrics = ferry_csi::serve_metrics(
                std::sync::Arc::clone(&driver),
                addr,
                until_stopped(stopped.clone()),
            );
            tokio::spawn(async move {
                if let Err(error) = metrics.await {
                    tracing::error!("{error}");
                }
            });
        }
        eprintln!(
            "ferry csi: {} on {} (node {}, store {})",
            args.driver_name,
            args.endpoint,
            args.node_id,
            store_root.display()
        );
        ferry_csi::serve(driver, &args.endpoint, until_stopped(stopped)).await
    })?;
    Ok(Exit::Ok)
}
