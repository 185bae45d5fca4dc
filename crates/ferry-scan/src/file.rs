//! One file judged: its format recognised by magic bytes and name, then the
//! format's check. Zip archives (PyTorch checkpoints, `.npz`) are opened
//! member by member: pickles and `.npy` arrays inside are scanned, tensor
//! data is not read.

use std::io::{self, Read, Seek, SeekFrom};

use serde::Serialize;

use crate::npy::scan_npy;
use crate::pickle::{PickleReport, scan_pickle};
use crate::verdict::{Finding, Verdict};

/// Members a zip may list before it is refused (a torch checkpoint has one
/// per tensor storage).
pub const MAX_ZIP_MEMBERS: usize = 1_000_000;

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A pickle stream (or several, as legacy torch files are).
    Pickle,
    /// A zip archive (PyTorch's format, `.npz`).
    Zip,
    /// A NumPy `.npy` array.
    Npy,
    /// safetensors.
    Safetensors,
    /// GGUF.
    Gguf,
    /// ONNX.
    Onnx,
    /// Not a format that runs or parses anything on load.
    Other,
}

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    /// The file, as the caller names it.
    pub path: String,
    /// Its format.
    pub format: Format,
    /// The worst of its findings.
    pub verdict: Verdict,
    /// What was found (members of a zip are named in each finding's reason
    /// and `member`).
    pub findings: Vec<FileFinding>,
    /// Globals the file imports that are known safe.
    pub safe_globals: Vec<String>,
}

/// A finding, with the zip member it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFinding {
    /// The member of a zip, if the finding is inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
}

/// Extensions of files that are pickles when they carry no zip or NumPy
/// magic (protocol 0 and 1 pickles have no magic of their own).
const PICKLE_EXTENSIONS: [&str; 6] = ["pkl", "pickle", "pt", "pth", "ckpt", "joblib"];

/// Extensions of formats that are never unpickled: a file with one of these
/// is not tried as a pickle.
const NOT_PICKLE_EXTENSIONS: [&str; 20] = [
    "json", "jsonl", "txt", "md", "yaml", "yml", "toml", "csv", "tsv", "py", "ipynb", "jinja",
    "html", "png", "jpg", "jpeg", "gif", "model", "tiktoken", "parquet",
];

/// Recognises the format of a file named `name` whose first bytes are
/// `head`.
pub fn detect(name: &str, head: &[u8]) -> Format {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Format::Zip
    } else if head.starts_with(b"\x93NUMPY") {
        Format::Npy
    } else if head.starts_with(b"GGUF") {
        Format::Gguf
    } else if extension == "safetensors" {
        Format::Safetensors
    } else if extension == "onnx" {
        Format::Onnx
    } else if PICKLE_EXTENSIONS.contains(&extension.as_str()) {
        Format::Pickle
    } else if head.first() == Some(&0x80) && head.get(1).is_some_and(|v| (2..=5).contains(v)) {
        // PROTO 2-5: what torch.save's legacy `.bin` files and any modern
        // pickle start with, whatever the name.
        Format::Pickle
    } else {
        Format::Other
    }
}

/// Scans a file whose bytes `reader` gives (`len` of them), named `name`
/// (its extension helps recognise the format).
pub fn scan_file<R: Read + Seek>(name: &str, mut reader: R, len: u64) -> io::Result<FileReport> {
    let mut head = [0u8; 8];
    let read = read_up_to(&mut reader, &mut head)?;
    reader.seek(SeekFrom::Start(0))?;
    let format = detect(name, &head[..read]);
    let mut report = FileReport {
        path: name.to_string(),
        format,
        verdict: Verdict::Safe,
        findings: Vec::new(),
        safe_globals: Vec::new(),
    };
    match format {
        Format::Pickle => add_pickle(&mut report, None, &scan_pickle(io::BufReader::new(reader))),
        Format::Npy => {
            let (findings, pickle) = scan_npy(io::BufReader::new(reader));
            add(&mut report, None, findings);
            if let Some(pickle) = pickle {
                add_pickle(&mut report, None, &pickle);
            }
        }
        Format::Zip => scan_zip(&mut report, reader)?,
        Format::Safetensors => {
            if let Err(error) = crate::safetensors::check_safetensors(&mut reader, len) {
                add(
                    &mut report,
                    None,
                    vec![invalid(error.offset, error.to_string())],
                );
            }
        }
        Format::Gguf => {
            if let Err(error) = crate::gguf::check_gguf(&mut io::BufReader::new(reader), len) {
                add(
                    &mut report,
                    None,
                    vec![invalid(error.offset, error.to_string())],
                );
            }
        }
        Format::Onnx => {
            let findings = crate::onnx::scan_onnx(&mut io::BufReader::new(reader), len);
            add(&mut report, None, findings);
        }
        Format::Other => {
            // Pickles need no magic and no name: anything that is not a
            // known non-pickle format and reads as a complete pickle is
            // judged as one (`pytorch_model.bin` written by protocol 0).
            let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            if !extension.is_some_and(|e| NOT_PICKLE_EXTENSIONS.contains(&e.as_str())) {
                let sniffed = scan_pickle(io::BufReader::new(&mut reader));
                if sniffed.pickles > 0 {
                    report.format = Format::Pickle;
                    add_pickle(&mut report, None, &sniffed);
                }
            }
        }
    }
    report.verdict = report
        .findings
        .iter()
        .map(|f| f.finding.verdict)
        .max()
        .unwrap_or(Verdict::Safe);
    Ok(report)
}

fn invalid(offset: u64, reason: String) -> Finding {
    Finding::new(Verdict::Invalid, Some(offset), reason)
}

fn add(report: &mut FileReport, member: Option<&str>, findings: Vec<Finding>) {
    report
        .findings
        .extend(findings.into_iter().map(|finding| FileFinding {
            member: member.map(str::to_string),
            finding,
        }));
}

fn add_pickle(report: &mut FileReport, member: Option<&str>, pickle: &PickleReport) {
    add(report, member, pickle.findings.clone());
    for global in &pickle.safe_globals {
        if !report.safe_globals.contains(global) {
            report.safe_globals.push(global.clone());
        }
    }
}

/// The members of a zip that load code or data: pickles (`*.pkl`, as
/// PyTorch's `*/data.pkl`) and arrays (`*.npy`, as in `.npz`).
fn scan_zip<R: Read + Seek>(report: &mut FileReport, reader: R) -> io::Result<()> {
    let mut archive = match zip::ZipArchive::new(reader) {
        Ok(archive) => archive,
        Err(error) => {
            add(report, None, vec![invalid(0, format!("zip: {error}"))]);
            return Ok(());
        }
    };
    if archive.len() > MAX_ZIP_MEMBERS {
        add(
            report,
            None,
            vec![invalid(
                0,
                format!(
                    "zip: {} members, more than {MAX_ZIP_MEMBERS}",
                    archive.len()
                ),
            )],
        );
        return Ok(());
    }
    for index in 0..archive.len() {
        let mut member = match archive.by_index(index) {
            Ok(member) => member,
            Err(error) => {
                add(
                    report,
                    None,
                    vec![invalid(0, format!("zip member {index}: {error}"))],
                );
                continue;
            }
        };
        let name = match member.name() {
            Ok(name) => name.into_owned(),
            Err(error) => {
                add(
                    report,
                    None,
                    vec![invalid(0, format!("zip member {index}: {error}"))],
                );
                continue;
            }
        };
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".pkl") || lower.ends_with(".pickle") {
            let pickle = scan_pickle(io::BufReader::new(&mut member));
            add_pickle(report, Some(&name), &pickle);
        } else if lower.ends_with(".npy") {
            let (findings, pickle) = scan_npy(io::BufReader::new(&mut member));
            add(report, Some(&name), findings);
            if let Some(pickle) = pickle {
                add_pickle(report, Some(&name), &pickle);
            }
        }
    }
    Ok(())
}

fn read_up_to<R: Read>(reader: &mut R, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
