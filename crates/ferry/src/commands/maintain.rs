//! `ferry tag`, `rm`, `prune`, `extract`.

use anyhow::bail;
use ferry_store::Store;
use ferry_store::extract::{ExtractOptions, extract as extract_artifact};
use ferry_store::index::normalize_reference;
use ferry_store::maintenance;

use crate::cli::{ExtractArgs, PruneArgs, RmArgs, TagArgs};
use crate::exit::Exit;
use crate::output::print_json;
use crate::report::{ExtractReport, PruneReport, RemovedArtifact, TagReport};
use crate::size::human;

pub fn tag(store: &Store, args: &TagArgs) -> anyhow::Result<Exit> {
    let source = store.resolve(&args.source)?;
    let target = normalize_reference(&args.target)?;
    if target.digest().is_some() {
        bail!(
            "cannot tag as {}: the new name must be a tag, not a digest",
            args.target
        );
    }
    let mut descriptor = source.descriptor.clone();
    descriptor.set_annotations(None);
    store.set_reference(&target, &descriptor)?;
    if args.json {
        print_json(&TagReport {
            reference: target.whole(),
            digest: descriptor.digest().to_string(),
            source: args.source.clone(),
        })?;
    } else {
        println!("{} {}", target.whole(), descriptor.digest());
    }
    Ok(Exit::Ok)
}

pub fn rm(store: &Store, args: &RmArgs) -> anyhow::Result<Exit> {
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
        rows.push(RemovedArtifact {
            reference: reference.clone(),
            entries: removed.entries,
            blobs: removed.blobs,
            freed_bytes: removed.bytes,
        });
    }
    if args.json {
        print_json(&rows)?;
    }
    Ok(Exit::Ok)
}

pub fn prune(store: &Store, args: &PruneArgs) -> anyhow::Result<Exit> {
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
    let freed_bytes = pruned.bytes + layers.bytes;
    if args.json {
        print_json(&PruneReport {
            dry_run: args.dry_run,
            blobs: pruned.blobs,
            temp_files: pruned.temp_files,
            layer_cache: layers.entries,
            freed_bytes,
        })?;
        return Ok(Exit::Ok);
    }
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
        human(freed_bytes)
    );
    Ok(Exit::Ok)
}

pub fn extract(store: &Store, args: &ExtractArgs) -> anyhow::Result<Exit> {
    let resolved = store.resolve(&args.reference)?;
    let extracted = extract_artifact(
        store,
        &args.reference,
        &args.dir,
        &ExtractOptions { force: args.force },
    )?;
    if args.json {
        print_json(&ExtractReport {
            reference: resolved.reference,
            digest: resolved.descriptor.digest().to_string(),
            dir: args.dir.clone(),
            entries: extracted.entries,
            written_bytes: extracted.bytes,
        })?;
    } else {
        println!(
            "extracted {} entries ({}) to {}",
            extracted.entries,
            human(extracted.bytes),
            args.dir.display()
        );
    }
    Ok(Exit::Ok)
}
