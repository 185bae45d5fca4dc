//! `ferry convert`.

use std::path::PathBuf;

use ferry_store::Store;
use ferry_store::convert::{ConvertedFile, to_directory, to_modelpack};
use ferry_store::extract::ExtractOptions;
use ferry_store::index::normalize_reference;
use ferry_store::pack::PackOptions;

use super::pack::source_date_epoch;
use crate::cli::ConvertArgs;
use crate::exit::Exit;
use crate::output::print_json;
use crate::report::{ConvertReport, ConvertedFileReport};

pub fn run(store: &Store, args: &ConvertArgs) -> anyhow::Result<Exit> {
    let report = match args.destination.strip_prefix("dir:") {
        Some(dir) => {
            let converted = to_directory(
                store,
                &args.source,
                &PathBuf::from(dir),
                &ExtractOptions { force: args.force },
            )?;
            ConvertReport {
                source: args.source.clone(),
                source_kind: converted.source.name(),
                destination: dir.to_string(),
                digest: None,
                files: file_reports(converted.files),
                kept_in_annotation: Vec::new(),
            }
        }
        None => {
            let reference = normalize_reference(&args.destination)?;
            let options = PackOptions {
                created: source_date_epoch()?,
                ..PackOptions::default()
            };
            let converted = to_modelpack(store, &args.source, &reference, &options)?;
            ConvertReport {
                source: args.source.clone(),
                source_kind: converted.source.name(),
                destination: converted.packed.reference.clone(),
                digest: Some(converted.packed.manifest_digest.to_string()),
                files: file_reports(converted.files),
                kept_in_annotation: converted.kept_in_annotation,
            }
        }
    };
    if args.json {
        print_json(&report)?;
        return Ok(Exit::Ok);
    }
    let width = report.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    for file in &report.files {
        match &file.to {
            Some(to) => println!(
                "{:width$}  {} ({} -> {to})",
                file.path, file.action, file.from
            ),
            None => println!("{:width$}  {} ({})", file.path, file.action, file.from),
        }
    }
    if !report.kept_in_annotation.is_empty() {
        println!(
            "kept only in the {} annotation (no ModelPack field): {}",
            ferry_spec::annotations::KITOPS_KITFILE,
            report.kept_in_annotation.join(", ")
        );
    }
    match &report.digest {
        Some(digest) => println!("{} {digest}", report.destination),
        None => println!(
            "converted {} ({}) into {}: {} files",
            report.source,
            report.source_kind,
            report.destination,
            report.files.len()
        ),
    }
    Ok(Exit::Ok)
}

fn file_reports(files: Vec<ConvertedFile>) -> Vec<ConvertedFileReport> {
    files
        .into_iter()
        .map(|f| ConvertedFileReport {
            path: f.path,
            from: f.from,
            to: f.to,
            action: f.action,
        })
        .collect()
}
