//! `ferry fsck [--repair]`: check the store; with `--repair`, delete corrupt
//! blobs and fetch what damaged artifacts lack from the registry their
//! reference names.

use ferry_registry::transfer;
use ferry_spec::Reference;
use ferry_store::Store;
use ferry_store::index::normalize_reference;
use ferry_store::maintenance::{self, Damaged, FsckReport};

use super::transfer::{client, runtime};
use crate::cli::FsckArgs;
use crate::exit::Exit;
use crate::output::{error_chain, print_json};
use crate::progress::TransferBar;
use crate::report::{self, DamagedArtifact, Repair};
use crate::size::human;

pub fn run(store: &Store, args: &FsckArgs, quiet: bool) -> anyhow::Result<Exit> {
    let found = maintenance::fsck(store, args.repair)?;
    let repairs = if args.repair && !found.damaged.is_empty() {
        refetch(store, args, &found.damaged, quiet)?
    } else {
        Vec::new()
    };
    // After repairs, what counts is what is left.
    let after = if args.repair && !found.is_clean() {
        Some(maintenance::fsck(store, false)?)
    } else {
        None
    };
    let clean = after.as_ref().unwrap_or(&found).is_clean();
    if args.json {
        print_json(&json_report(&found, repairs, clean))?;
    } else {
        print_text(&found, &repairs, args.repair);
        if let Some(after) = &after {
            print_after_repair(after);
        }
    }
    Ok(if clean { Exit::Ok } else { Exit::Problems })
}

/// Pulls each named damaged artifact by tag and digest: the exact manifest
/// the store names comes back, with whatever blobs it lacks.
fn refetch(
    store: &Store,
    args: &FsckArgs,
    damaged: &[Damaged],
    quiet: bool,
) -> anyhow::Result<Vec<Repair>> {
    let client = client(&args.transport)?;
    let runtime = runtime()?;
    let repairs = damaged
        .iter()
        .map(|artifact| {
            let digest = artifact.digest.to_string();
            let Some(name) = &artifact.reference else {
                return failed(
                    None,
                    digest,
                    "an unnamed entry does not say which registry it came from".into(),
                    None,
                );
            };
            let exact = match exact_reference(name, &digest) {
                Ok(exact) => exact,
                Err(error) => return failed(Some(name.clone()), digest, error.to_string(), None),
            };
            let bar = TransferBar::new(quiet, "fetching");
            let result = runtime.block_on(transfer::pull(
                &client,
                store,
                &exact,
                None,
                args.transport.concurrency,
                &bar,
            ));
            bar.finish();
            match result {
                Ok(pulled) => Repair {
                    reference: Some(name.clone()),
                    digest,
                    refetched: true,
                    received_blobs: pulled.downloaded,
                    error: None,
                    command: None,
                },
                Err(error) => failed(
                    Some(name.clone()),
                    digest,
                    error_chain(&anyhow::Error::new(error)),
                    Some(format!("ferry pull {}", exact.whole())),
                ),
            }
        })
        .collect();
    Ok(repairs)
}

/// `name` pinned to `digest`: the tag keeps the store's name, the digest
/// the content.
fn exact_reference(name: &str, digest: &str) -> ferry_store::Result<Reference> {
    let named = normalize_reference(name)?;
    Ok(match named.tag() {
        Some(tag) => Reference::with_tag_and_digest(
            named.registry().to_string(),
            named.repository().to_string(),
            tag.to_string(),
            digest.to_string(),
        ),
        None => named.clone_with_digest(digest.to_string()),
    })
}

fn failed(
    reference: Option<String>,
    digest: String,
    error: String,
    command: Option<String>,
) -> Repair {
    Repair {
        reference,
        digest,
        refetched: false,
        received_blobs: 0,
        error: Some(error),
        command,
    }
}

fn json_report(found: &FsckReport, repairs: Vec<Repair>, clean: bool) -> report::FsckReport {
    report::FsckReport {
        clean,
        checked: found.checked,
        checked_bytes: found.bytes,
        corrupt: found.corrupt.clone(),
        missing: found.missing.clone(),
        unreferenced: found.unreferenced.clone(),
        leftovers: found.leftovers,
        index_error: found.index_error.clone(),
        damaged: found
            .damaged
            .iter()
            .map(|d| DamagedArtifact {
                reference: d.reference.clone(),
                digest: d.digest.to_string(),
                blobs: d.blobs.clone(),
            })
            .collect(),
        repairs,
    }
}

fn print_text(found: &FsckReport, repairs: &[Repair], repair: bool) {
    if let Some(error) = &found.index_error {
        println!("index: {error}");
    }
    for blob in &found.corrupt {
        let action = if repair { " (deleted)" } else { "" };
        println!("corrupt: {blob}{action}");
    }
    for blob in &found.missing {
        println!("missing: {blob}");
    }
    for artifact in &found.damaged {
        println!(
            "damaged: {} ({} of its blobs)",
            artifact
                .reference
                .as_deref()
                .unwrap_or(artifact.digest.as_ref()),
            artifact.blobs.len()
        );
    }
    println!(
        "checked {} blobs ({}): {} corrupt, {} missing, {} unreferenced, {} leftover temporary files",
        found.checked,
        human(found.bytes),
        found.corrupt.len(),
        found.missing.len(),
        found.unreferenced.len(),
        found.leftovers
    );
    for done in repairs {
        let name = done.reference.as_deref().unwrap_or(&done.digest);
        match (&done.error, &done.command) {
            (None, _) => println!("re-fetched {name} ({} blobs)", done.received_blobs),
            (Some(error), Some(command)) => {
                println!("cannot re-fetch {name}: {error}");
                println!("  run `{command}` once its registry is reachable, or pack it again");
            }
            (Some(error), None) => {
                println!("cannot re-fetch {name}: {error}; remove it with `ferry rm {name}`")
            }
        }
    }
    if !repair && !found.damaged.is_empty() {
        println!(
            "run `ferry fsck --repair` to delete corrupt blobs and fetch what is missing from each artifact's registry"
        );
    }
    if !found.unreferenced.is_empty() || found.leftovers > 0 {
        println!("run `ferry prune` to remove unreferenced blobs and leftovers");
    }
}

fn print_after_repair(after: &FsckReport) {
    if after.is_clean() {
        println!("after repair: clean");
    } else {
        println!(
            "after repair: {} blobs still missing, {} artifacts still damaged",
            after.missing.len(),
            after.damaged.len()
        );
    }
}
