//! `ferry scan PATH|REF`: model files judged for unsafe content. A path is
//! a file or a directory; otherwise the reference names an artifact in the
//! store or, when the store lacks it, on its registry (streamed, nothing
//! stored, every blob checked against its digest), scanned layer by layer:
//! raw layers as one file, tar layers entry by entry.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use ferry_registry::signatures::{attach_bundle, store_bundle_referrer};
use ferry_scan::{FileReport, Verdict, scan_file};
use ferry_sign::attestation::sign_attestation;
use ferry_spec::Reference;
use ferry_spec::oci::Digest;
use ferry_spec::signature::SCAN_REPORT_PREDICATE;
use ferry_store::Store;
use ferry_store::decompress::{Bounded, CountingReader, Limits, bomb_error, decoder};
use ferry_store::extract::{LayerPlacement, placement, safe_components};
use ferry_store::index::normalize_reference;

use crate::cli::ScanArgs;
use crate::exit::Exit;
use crate::output::print_json;

/// `ferry scan --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScanReport {
    /// What was scanned: the path or the reference.
    target: String,
    /// The worst verdict of any file.
    verdict: Verdict,
    /// Files scanned, by verdict.
    counts: Counts,
    /// Every file that is not plainly safe, and every file with its format
    /// with `--all`.
    files: Vec<FileReport>,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    safe: usize,
    suspicious: usize,
    dangerous: usize,
    invalid: usize,
}

/// Where a scanned artifact is, for attaching the report.
enum Scanned {
    /// Files on disk.
    Files,
    /// The store's artifact.
    Stored(Digest),
    /// A registry's artifact, pinned to what was scanned.
    Remote(Reference),
}

pub fn run(store: &Store, args: &ScanArgs, quiet: bool) -> anyhow::Result<Exit> {
    // Read (and its password asked for) before the scan, not after.
    let key = args
        .key
        .as_deref()
        .map(|path| super::sign::read_private_key(path, "scan"))
        .transpose()?;
    let (reports, scanned) = match collect(store, args) {
        Ok(collected) => collected,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(Exit::ScanFailed);
        }
    };
    let mut counts = Counts::default();
    for report in &reports {
        match report.verdict {
            Verdict::Safe => counts.safe += 1,
            Verdict::Suspicious => counts.suspicious += 1,
            Verdict::Dangerous => counts.dangerous += 1,
            Verdict::Invalid => counts.invalid += 1,
        }
    }
    let verdict = reports
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Safe);
    let failing = |v: Verdict| v >= Verdict::Invalid || (args.strict && v == Verdict::Suspicious);
    if let (true, Some(key)) = (args.attach, &key) {
        let attached = attach(store, args, &scanned, key, verdict, &counts, &reports)?;
        if !quiet {
            eprintln!("signed scan report attached as {attached}");
        }
    }
    if args.json {
        print_json(&ScanReport {
            target: args.target.clone(),
            verdict,
            files: reports
                .into_iter()
                .filter(|r| args.all || r.verdict != Verdict::Safe)
                .collect(),
            counts,
        })?;
    } else {
        for report in reports.iter().filter(|r| r.verdict != Verdict::Safe) {
            println!("{}: {}", report.path, report.verdict.as_str());
            for found in &report.findings {
                let finding = &found.finding;
                let member = found
                    .member
                    .as_deref()
                    .map(|m| format!(" in {m}"))
                    .unwrap_or_default();
                let at = finding
                    .offset
                    .map(|o| format!(" at byte {o}"))
                    .unwrap_or_default();
                let what = match (&finding.opcode, &finding.global) {
                    (Some(opcode), Some(global)) => format!("{opcode} {global}: "),
                    (Some(opcode), None) => format!("{opcode}: "),
                    _ => String::new(),
                };
                println!(
                    "  {}{member}{at}: {what}{}",
                    finding.verdict.as_str(),
                    finding.reason
                );
            }
        }
        if !quiet {
            eprintln!(
                "scanned {} files: {} safe, {} suspicious, {} dangerous, {} invalid",
                counts.safe + counts.suspicious + counts.dangerous + counts.invalid,
                counts.safe,
                counts.suspicious,
                counts.dangerous,
                counts.invalid
            );
        }
    }
    Ok(if failing(verdict) {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// Signs the report as an in-toto attestation about the artifact and
/// attaches it where the artifact is. Returns the referrer's digest.
fn attach(
    store: &Store,
    args: &ScanArgs,
    scanned: &Scanned,
    key: &ferry_sign::PrivateKey,
    verdict: Verdict,
    counts: &Counts,
    reports: &[FileReport],
) -> anyhow::Result<Digest> {
    let findings: Vec<&FileReport> = reports
        .iter()
        .filter(|r| r.verdict != Verdict::Safe)
        .collect();
    let predicate = serde_json::json!({
        "scanner": {"name": "ferry", "version": env!("CARGO_PKG_VERSION")},
        "verdict": verdict.as_str(),
        "counts": counts,
        "files": findings,
    });
    let (digest, remote) = match scanned {
        Scanned::Files => anyhow::bail!("--attach needs an artifact, not files on disk"),
        Scanned::Stored(digest) => (digest.clone(), None),
        Scanned::Remote(pinned) => (
            pinned
                .digest()
                .context("the scanned reference is pinned")?
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            Some(pinned),
        ),
    };
    let bundle = sign_attestation(key, &digest, SCAN_REPORT_PREDICATE, predicate);
    Ok(match remote {
        None => store_bundle_referrer(store, &digest, &bundle, SCAN_REPORT_PREDICATE)?,
        Some(pinned) => {
            let client = super::transfer::client(&args.transport)?;
            super::transfer::runtime()?.block_on(attach_bundle(
                &client,
                pinned,
                &bundle,
                SCAN_REPORT_PREDICATE,
            ))?
        }
    })
}

fn collect(store: &Store, args: &ScanArgs) -> anyhow::Result<(Vec<FileReport>, Scanned)> {
    let path = Path::new(&args.target);
    if path.exists() {
        let mut reports = Vec::new();
        scan_path(path, &mut reports)?;
        return Ok((reports, Scanned::Files));
    }
    if let Ok(resolved) = store.resolve(&args.target) {
        let digest = resolved.descriptor.digest().clone();
        return Ok((scan_artifact(store, &digest)?, Scanned::Stored(digest)));
    }
    // On a registry: streamed layer by layer, nothing stored (a file that
    // must be seeked, a zip, goes through a scratch file of its own).
    let reference = normalize_reference(&args.target).with_context(|| {
        format!(
            "{} is neither a file, a directory nor a reference",
            args.target
        )
    })?;
    let client = super::transfer::client(&args.transport)?;
    let scratch = store.tmp_dir();
    let (digest, layers) = super::transfer::runtime()?.block_on(
        ferry_registry::artifact_files::visit_remote_layers(
            &client,
            &reference,
            None,
            move |layer, reader| {
                scan_layer(&scratch, layer, reader).map_err(|e| io::Error::other(format!("{e:#}")))
            },
        ),
    )?;
    let pinned = ferry_registry::admission::pinned(&reference, &digest);
    Ok((
        layers.into_iter().flatten().collect(),
        Scanned::Remote(pinned),
    ))
}

/// A file, or every file under a directory (`.git` skipped). A symbolic
/// link to a file is judged by the content it points at under the link's
/// own name (what a loader opening that name reads), wherever the target
/// is: a Hugging Face cache snapshot is all links into `../../blobs`. A
/// dangling link or a link to a directory is a finding. The path given
/// itself may be a link.
fn scan_path(root: &Path, reports: &mut Vec<FileReport>) -> anyhow::Result<()> {
    let canonical_root =
        std::fs::canonicalize(root).with_context(|| format!("resolving {}", root.display()))?;
    let metadata =
        std::fs::metadata(root).with_context(|| format!("reading {}", root.display()))?;
    if metadata.is_dir() {
        walk(&canonical_root, &canonical_root, reports)
    } else {
        let name = root.display().to_string();
        let file = File::open(root).with_context(|| format!("opening {name}"))?;
        reports.push(
            scan_file(&name, file, metadata.len()).with_context(|| format!("scanning {name}"))?,
        );
        Ok(())
    }
}

fn walk(root: &Path, dir: &Path, reports: &mut Vec<FileReport>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name() == ".git" {
            continue;
        }
        let path = entry.path();
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk(root, &path, reports)?;
            continue;
        }
        if file_type.is_symlink() {
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                reports.push(finding_report(
                    &name,
                    Verdict::Suspicious,
                    "a symbolic link that dangles or points at a directory: not followed",
                ));
                continue;
            }
        } else if !file_type.is_file() {
            continue;
        }
        // Opened through the link, judged under the link's name.
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        reports.push(scan_file(&name, file, len).with_context(|| format!("scanning {name}"))?);
    }
    Ok(())
}

/// A report of one finding about `name`, for what is not scanned as a file.
fn finding_report(name: &str, verdict: Verdict, reason: &str) -> FileReport {
    FileReport {
        path: name.to_string(),
        format: ferry_scan::Format::Other,
        verdict,
        findings: vec![ferry_scan::file::FileFinding {
            member: None,
            finding: ferry_scan::Finding::new(verdict, None, reason),
        }],
        safe_globals: Vec::new(),
    }
}

/// Every layer of the store's artifact `digest`.
fn scan_artifact(store: &Store, digest: &Digest) -> anyhow::Result<Vec<FileReport>> {
    let manifest = store.read_manifest(digest)?;
    let mut reports = Vec::new();
    for layer in manifest.layers() {
        let blob = store.open_blob(layer.digest())?;
        reports.extend(scan_layer(
            &store.tmp_dir(),
            layer,
            &mut io::BufReader::new(blob),
        )?);
    }
    Ok(reports)
}

/// One layer's files, from its blob bytes: a raw layer is one file, a tar
/// layer (compressed or not) is read entry by entry. Files are copied to
/// scratch files in `scratch` (zip and safetensors checks seek), one at a
/// time, removed when scanned.
fn scan_layer(
    scratch: &Path,
    layer: &ferry_spec::oci::Descriptor,
    reader: &mut dyn Read,
) -> anyhow::Result<Vec<FileReport>> {
    let mut reports = Vec::new();
    match placement(layer)? {
        LayerPlacement::File(path) => {
            let name = safe_components(&path)?.join("/");
            let (file, len) = spool(scratch, reader)?;
            reports.push(scan_file(&name, file, len)?);
        }
        LayerPlacement::Tar(encoding) => {
            // Held to the same decompression limits as extraction: a bomb
            // must not fill the scratch directory.
            let limits = Limits::from_env()?;
            let counting = CountingReader::new(reader);
            let compressed = counting.count();
            let decoded = decoder(encoding, counting, &limits)
                .with_context(|| format!("decoding layer {}", layer.digest()))?;
            let bounded = Bounded::new(decoded, limits, std::sync::Arc::clone(&compressed));
            let tripped = bounded.tripped();
            let scanned = scan_tar(scratch, bounded, &mut reports);
            if tripped.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(bomb_error(
                    layer.digest().as_ref(),
                    compressed.load(std::sync::atomic::Ordering::Relaxed),
                    &limits,
                )
                .into());
            }
            scanned.with_context(|| format!("reading layer {}", layer.digest()))?;
        }
    }
    Ok(reports)
}

/// Copies `reader` into an unnamed scratch file; returns it rewound.
fn spool(scratch: &Path, reader: &mut dyn Read) -> anyhow::Result<(File, u64)> {
    let mut file = tempfile::tempfile_in(scratch).or_else(|_| tempfile::tempfile())?;
    let len = io::copy(reader, &mut file)?;
    io::Seek::rewind(&mut file)?;
    Ok((file, len))
}

/// The regular files of a tar stream, each copied to a scratch file (zip
/// and safetensors checks seek) and scanned.
fn scan_tar(
    scratch: &Path,
    reader: impl Read,
    reports: &mut Vec<FileReport>,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = safe_components(&entry.path()?.to_string_lossy())?.join("/");
        match entry.header().entry_type() {
            // Extraction writes both as regular files.
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Link | tar::EntryType::Symlink => {
                // The target's content is judged under the target's name;
                // a loader opening this name may read it as another format.
                reports.push(finding_report(
                    &name,
                    Verdict::Suspicious,
                    "a link inside a tar layer: its target was scanned under the target's name",
                ));
                continue;
            }
            _ => continue,
        }
        let (file, len) = spool(scratch, &mut entry)?;
        reports.push(scan_file(&name, file, len)?);
    }
    Ok(())
}
