//! `ferry tag`, `rm`, `prune`, `fsck`, `extract`.

use std::process::ExitCode;

use ferry_store::Store;
use ferry_store::extract::{ExtractOptions, extract as extract_artifact};
use ferry_store::index::normalize_reference;
use ferry_store::maintenance;

use crate::cli::{ExtractArgs, FsckArgs, PruneArgs, RmArgs, TagArgs};
use crate::output::print_json;
use crate::size::human;

pub fn tag(store: &Store, args: &TagArgs) -> anyhow::Result<ExitCode> {
    let source = store.resolve(&args.source)?;
    let target = normalize_reference(&args.target)?;
    if target.digest().is_some() {
        anyhow::bail!(
            "cannot tag as {}: the new name must be a tag, not a digest",
            args.target
        );
    }
    let mut descriptor = source.descriptor.clone();
    descriptor.set_annotations(None);
    store.set_reference(&target, &descriptor)?;
    println!("{} {}", target.whole(), descriptor.digest());
    Ok(ExitCode::SUCCESS)
}

pub fn rm(store: &Store, args: &RmArgs) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for reference in &args.references {
        let removed = maintenance::remove_with(store, reference, super::mount::pins(args.force))?;
        if !args.json {
            println!(
                "removed {reference} ({} blobs, {} freed)",
                removed.blobs,
                human(removed.bytes)
            );
        }
        rows.push(serde_json::json!({
            "reference": reference,
            "entries": removed.entries,
            "blobs": removed.blobs,
            "bytes": removed.bytes,
        }));
    }
    if args.json {
        print_json(&serde_json::Value::Array(rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune(store: &Store, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    // Records of volumes that are gone pin nothing; drop them first.
    if !args.dry_run {
        let listing = ferry_mount::list(store, &ferry_mount::LinuxSyscalls)?;
        for (record, reason) in &listing.cleaned {
            eprintln!(
                "removed the mount record of {}: {reason}",
                record.target.display()
            );
        }
    }
    let pruned = maintenance::prune_with(store, args.dry_run, super::mount::pins(args.force))?;
    let layers = ferry_mount::layers::collect(store, args.dry_run)?;
    if args.json {
        print_json(&serde_json::json!({
            "dryRun": args.dry_run,
            "blobs": pruned.blobs,
            "tempFiles": pruned.temp_files,
            "layerCache": layers.entries,
            "bytes": pruned.bytes + layers.bytes,
        }))?;
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for blob in &pruned.blobs {
            println!("{verb} {blob}");
        }
        for file in &pruned.temp_files {
            println!("{verb} {}", file.display());
        }
        for entry in &layers.entries {
            println!("{verb} layer cache {entry}");
        }
        println!(
            "{verb} {} blobs, {} temporary files and {} layer cache entries ({})",
            pruned.blobs.len(),
            pruned.temp_files.len(),
            layers.entries.len(),
            human(pruned.bytes + layers.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fsck(store: &Store, args: &FsckArgs) -> anyhow::Result<ExitCode> {
    let report = maintenance::fsck(store, args.repair)?;
    if args.json {
        print_json(&serde_json::json!({
            "clean": report.is_clean(),
            "checked": report.checked,
            "bytes": report.bytes,
            "corrupt": report.corrupt,
            "missing": report.missing,
            "unreferenced": report.unreferenced,
            "leftovers": report.leftovers,
            "indexError": report.index_error,
        }))?;
    } else {
        if let Some(error) = &report.index_error {
            println!("index: {error}");
        }
        for blob in &report.corrupt {
            let action = if args.repair { " (deleted)" } else { "" };
            println!("corrupt: {blob}{action}");
        }
        for blob in &report.missing {
            println!("missing: {blob}");
        }
        println!(
            "checked {} blobs ({}): {} corrupt, {} missing, {} unreferenced, {} leftover temporary files",
            report.checked,
            human(report.bytes),
            report.corrupt.len(),
            report.missing.len(),
            report.unreferenced.len(),
            report.leftovers
        );
        if !report.unreferenced.is_empty() || report.leftovers > 0 {
            println!("run `ferry prune` to remove unreferenced blobs and leftovers");
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn extract(store: &Store, args: &ExtractArgs) -> anyhow::Result<ExitCode> {
    let extracted = extract_artifact(
        store,
        &args.reference,
        &args.dir,
        &ExtractOptions { force: args.force },
    )?;
    if args.json {
        print_json(&serde_json::json!({
            "dir": args.dir,
            "entries": extracted.entries,
            "bytes": extracted.bytes,
        }))?;
    } else {
        println!(
            "extracted {} entries ({}) to {}",
            extracted.entries,
            human(extracted.bytes),
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
