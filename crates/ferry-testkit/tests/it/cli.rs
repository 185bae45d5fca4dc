//! `ferry-gen-model`, the benches' generator: size, bounded memory, errors.

use std::process::Command;

use ferry_testkit::safetensors::read_header;
use ferry_testkit::{MIB, file_sizes};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ferry-gen-model");

#[test]
fn a_256_mib_model_comes_within_2_percent_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let output = Command::new(BIN)
        .arg("--out")
        .arg(&out)
        .args(["--size", "256MiB", "--shards", "4", "--seed", "3"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let target = 256.0 * MIB as f64;
    let weights = summary["weight_bytes"].as_u64().unwrap();
    let error = (weights as f64 - target).abs() / target;
    assert!(error < 0.02, "{weights} bytes of weights for 256 MiB");
    assert_eq!(summary["shards"], 4);

    let shards: u64 = file_sizes(&out)
        .iter()
        .filter(|(name, _)| name.ends_with(".safetensors"))
        .map(|(name, size)| {
            read_header(&out.join(name)).unwrap();
            *size
        })
        .sum();
    assert!(shards > weights && shards < weights + MIB, "{shards}");

    // Streaming: the process never held more than a small fixed amount,
    // however large the model (the weights alone are 256 MiB).
    let peak = summary["peak_rss_bytes"].as_u64().expect("peak memory");
    assert!(peak < 64 * MIB, "peak memory {peak} bytes");
}

#[test]
fn total_gb_and_dtype_are_understood() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let output = Command::new(BIN)
        .arg("--out")
        .arg(&out)
        .args(["--total-gb", "0.001", "--dtype", "f32"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["dtype"], "f32");
    assert!(out.join("model.safetensors").is_file());
}

#[test]
fn bad_arguments_fail_with_usage() {
    for args in [
        &["--size", "1GiB"][..],
        &["--out", "/nonexistent/x"],
        &["--out", "x", "--size", "lots"],
        &["--out", "x", "--size", "1M", "--shards", "0"],
        &["--out", "x", "--size", "1M", "--dtype", "int4"],
        &["--frobnicate"],
    ] {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains("usage:"),
            "{stderr}"
        );
    }
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
}
