//! ferry-scan's readers on arbitrary bytes: pickles (with the memo, the
//! stack and every opcode), safetensors and GGUF headers, NumPy arrays,
//! ONNX protobuf and zip archives, through `scan_file` as `ferry scan` and
//! `ferry pack` call it.
//!
//! Input: the first byte chooses the file name (and so the format for
//! files without magic bytes); the rest is the file.
//!
//! Invariants: never panics; memory and time stay bounded whatever sizes
//! the bytes declare (libFuzzer's RSS and timeout limits catch a reader
//! that trusts them); a file's verdict is the worst of its findings, and a
//! pickle judged safe imports only globals the allowlist names.

#![no_main]

use std::io::Cursor;

use ferry_scan::{Verdict, scan_file};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "model.pkl",
    "model.safetensors",
    "model.gguf",
    "array.npy",
    "model.onnx",
    "pytorch_model.bin",
    "checkpoint.pt",
    "README.md",
];

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, data)) = bytes.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    let Ok(report) = scan_file(name, Cursor::new(data), data.len() as u64) else {
        return;
    };
    let worst = report
        .findings
        .iter()
        .map(|f| f.finding.verdict)
        .max()
        .unwrap_or(Verdict::Safe);
    assert_eq!(report.verdict, worst, "the verdict is the worst finding");
    for global in &report.safe_globals {
        let (module, name) = global.rsplit_once('.').expect("module.name");
        assert_eq!(
            ferry_scan::globals::judge(module, name),
            ferry_scan::globals::Judgement::Safe,
            "{global} reported safe"
        );
    }
});
