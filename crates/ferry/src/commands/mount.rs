//! `ferry mount`, `umount`, `mounts`, and the mount pins `rm` and `prune` honour.

use std::process::ExitCode;

use anyhow::Context;
use ferry_mount::{Access, LinuxSyscalls, MountPins, MountRecord, MountRequest, UmountOptions};
use ferry_registry::platform::Platform;
use ferry_store::maintenance::{NoPins, Pins};
use ferry_store::{Store, StoreError};

use crate::cli::{MountArgs, PullPolicy, UmountArgs};
use crate::output::{print_json, short_digest};
use crate::progress::TransferBar;

/// What `rm` and `prune` must keep: the manifests of mounted volumes,
/// unless `--force`.
pub fn pins(force: bool) -> &'static dyn Pins {
    if force { &NoPins } else { &MountPins }
}

pub fn mount(store: &Store, args: &MountArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut artifacts = vec![args.reference.clone()];
    artifacts.extend(args.stack.iter().cloned());
    for artifact in &artifacts {
        make_local(store, artifact, args, quiet)?;
    }
    let request = MountRequest {
        artifacts,
        target: args.target.clone(),
        subpath: args.subpath.clone(),
        access: if args.rw {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        },
        noexec: args.noexec,
        no_mount: args.no_mount,
    };
    let mounted = ferry_mount::mount(store, &request, &LinuxSyscalls)?;
    let record = &mounted.record;
    if let Some(reason) = &mounted.fallback {
        eprintln!("note: {reason}");
    } else if args.no_mount && !quiet {
        eprintln!(
            "note: --no-mount: built the volume as a tree of {}",
            if args.rw {
                "private copies"
            } else {
                "read-only hardlinks to the layer cache (a process with CAP_DAC_OVERRIDE could still write through them)"
            }
        );
    }
    if args.json {
        let mut value = serde_json::to_value(record)?;
        value["cache"] = serde_json::json!({
            "built": mounted.cache.built,
            "reused": mounted.cache.reused,
        });
        value["fallback"] = serde_json::json!(mounted.fallback);
        print_json(&value)?;
    } else {
        println!(
            "mounted {} at {} ({}, {})",
            names(record),
            record.target.display(),
            record.access.as_str(),
            record.method.as_str()
        );
        if !quiet {
            eprintln!(
                "{} layer cache entries built, {} reused",
                mounted.cache.built, mounted.cache.reused
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies the pull policy to one artifact.
fn make_local(store: &Store, input: &str, args: &MountArgs, quiet: bool) -> anyhow::Result<()> {
    let present = match store.resolve(input) {
        Ok(_) => true,
        Err(StoreError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let pull = match args.pull {
        PullPolicy::Never => false,
        PullPolicy::Missing => !present,
        // A bare digest names no repository to pull from.
        PullPolicy::Always => !input.starts_with("sha256:"),
    };
    if !pull {
        if !present {
            anyhow::bail!("{input} is not in the store and --pull never forbids pulling it");
        }
        return Ok(());
    }
    let reference = ferry_store::index::normalize_reference(input)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let client = super::transfer::client(&args.transport)?;
    let bar = TransferBar::new(quiet, "pulling");
    let result = super::transfer::runtime()?.block_on(ferry_registry::transfer::pull(
        &client,
        store,
        &reference,
        platform.as_ref(),
        args.transport.concurrency,
        &bar,
    ));
    bar.finish();
    result.with_context(|| format!("pulling {input} to mount it"))?;
    Ok(())
}

pub fn umount(store: &Store, args: &UmountArgs) -> anyhow::Result<ExitCode> {
    let options = UmountOptions {
        keep_changes: args.keep_changes.clone(),
    };
    let unmounted = ferry_mount::umount(store, &args.target, &options, &LinuxSyscalls)?;
    if args.json {
        let mut value = serde_json::to_value(&unmounted.record)?;
        value["keptChanges"] = serde_json::json!(unmounted.kept);
        print_json(&value)?;
    } else {
        println!("unmounted {}", unmounted.record.target.display());
        if let (Some(kept), Some(dir)) = (unmounted.kept, &args.keep_changes) {
            println!("kept {kept} changed entries in {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn mounts(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let listing = ferry_mount::list(store, &LinuxSyscalls)?;
    for (record, reason) in &listing.cleaned {
        eprintln!(
            "removed the record of {} ({}): {reason}",
            record.target.display(),
            names(record)
        );
    }
    for (dir, error) in &listing.unreadable {
        eprintln!("warning: cannot read {}: {error}", dir.display());
    }
    if json {
        print_json(&serde_json::to_value(&listing.active)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if listing.active.is_empty() {
        println!("no volumes mounted");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<4} {:<8} {:<14} REFERENCE",
        "TARGET", "MODE", "METHOD", "DIGEST"
    );
    for record in &listing.active {
        let target = match &record.subpath {
            Some(subpath) => format!("{} ({subpath})", record.target.display()),
            None => record.target.display().to_string(),
        };
        let digest = record
            .artifacts
            .last()
            .map(|a| short_digest(&a.digest))
            .unwrap_or_default();
        println!(
            "{:<40} {:<4} {:<8} {:<14} {}",
            target,
            record.access.as_str(),
            record.method.as_str(),
            digest,
            names(record)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn names(record: &MountRecord) -> String {
    record
        .artifacts
        .iter()
        .map(|a| a.reference.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}
