//! `ferry mount`, `umount`, `mounts`, and the mount pins `rm` and `prune` honour.

use anyhow::Context;
use ferry_mount::{Access, LinuxSyscalls, MountPins, MountRecord, MountRequest, UmountOptions};
use ferry_store::maintenance::{NoPins, Pins};
use ferry_store::{Store, StoreError};

use crate::cli::{MountArgs, PullPolicy, UmountArgs};
use crate::exit::Exit;
use crate::output::{print_json, short_digest};
use crate::report::{MountReport, UmountReport, Volume};

/// What `rm` and `prune` must keep: the manifests of mounted volumes,
/// unless `--force`.
pub fn pins(force: bool) -> &'static dyn Pins {
    if force { &NoPins } else { &MountPins }
}

pub fn mount(store: &Store, args: &MountArgs, quiet: bool) -> anyhow::Result<Exit> {
    let mut artifacts = vec![args.reference.clone()];
    artifacts.extend(args.stack.iter().cloned());
    for artifact in &artifacts {
        make_local(store, artifact, args, quiet)?;
        // Judged where it is mounted from, whatever brought it there.
        ferry_registry::admission::admit_local(store, args.policy.policy.as_deref(), artifact)
            .with_context(|| format!("mounting {artifact}"))?;
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
        filter: ferry_store::select::LayerFilter::new(&args.include, &[])?
            .excluding(&args.exclude)?,
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
        print_json(&MountReport {
            volume: Volume::from(record),
            cache_built: mounted.cache.built,
            cache_reused: mounted.cache.reused,
            fallback: mounted.fallback.clone(),
        })?;
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
    Ok(Exit::Ok)
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
    super::transfer::pull_with_bar(
        store,
        &reference,
        args.platform.as_ref(),
        &args.transport,
        args.policy.policy.as_deref(),
        quiet,
    )
    .with_context(|| format!("pulling {input} to mount it"))?;
    Ok(())
}

pub fn umount(store: &Store, args: &UmountArgs) -> anyhow::Result<Exit> {
    let options = UmountOptions {
        keep_changes: args.keep_changes.clone(),
    };
    let unmounted = ferry_mount::umount(store, &args.target, &options, &LinuxSyscalls)?;
    if args.json {
        print_json(&UmountReport {
            volume: Volume::from(&unmounted.record),
            kept_changes: unmounted.kept,
            skipped_special: unmounted.skipped,
        })?;
    } else {
        println!("unmounted {}", unmounted.record.target.display());
        if let (Some(kept), Some(dir)) = (unmounted.kept, &args.keep_changes) {
            println!("kept {kept} changed entries in {}", dir.display());
        }
        if unmounted.skipped > 0 {
            println!(
                "did not keep {} device nodes, fifos or sockets (see the warnings)",
                unmounted.skipped
            );
        }
    }
    Ok(Exit::Ok)
}

pub fn mounts(store: &Store, json: bool) -> anyhow::Result<Exit> {
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
        let volumes: Vec<Volume> = listing.active.iter().map(Volume::from).collect();
        print_json(&volumes)?;
        return Ok(Exit::Ok);
    }
    if listing.active.is_empty() {
        println!("no volumes mounted");
        return Ok(Exit::Ok);
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
    Ok(Exit::Ok)
}

fn names(record: &MountRecord) -> String {
    record
        .artifacts
        .iter()
        .map(|a| a.reference.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}
