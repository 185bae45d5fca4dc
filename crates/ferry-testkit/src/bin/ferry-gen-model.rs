//! Writes a synthetic Hugging Face style model for benchmarks and manual
//! tests: `ferry-gen-model --out DIR --size 1GiB --shards 4 --seed 1`.
//! Prints a JSON summary on stdout (architecture, sizes, time, peak memory).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ferry_testkit::{Dtype, GIB, ModelSpec, generate, parse_size};

const USAGE: &str = "usage: ferry-gen-model --out DIR (--size SIZE | --total-gb X) \
[--shards N] [--seed S] [--dtype bf16|f32]

  --out DIR       the model directory (created)
  --size SIZE     weight bytes to come close to: 1GiB, 512MiB, 2G, 300000000
  --total-gb X    the same in GiB (X may be fractional)
  --shards N      weight files (default 1)
  --seed S        every byte follows from it (default 0)
  --dtype D       bf16 (default) or f32";

struct Args {
    out: PathBuf,
    spec: ModelSpec,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = None;
    let mut size = None;
    let mut spec = ModelSpec::new(0);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--size" => size = Some(parse_size(&value()?)?),
            "--total-gb" => {
                let text = value()?;
                let gib: f64 = text
                    .parse()
                    .ok()
                    .filter(|g: &f64| g.is_finite() && *g >= 0.0)
                    .ok_or_else(|| format!("--total-gb {text:?} is not a number"))?;
                size = Some((gib * GIB as f64).round() as u64);
            }
            "--shards" => {
                let text = value()?;
                spec.shards = text
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--shards {text:?} is not a positive number"))?;
            }
            "--seed" => {
                let text = value()?;
                spec.seed = text
                    .parse()
                    .map_err(|_| format!("--seed {text:?} is not a number"))?;
            }
            "--dtype" => spec.dtype = value()?.parse::<Dtype>()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    spec.total_bytes = size.ok_or("--size or --total-gb is required")?;
    let out = out.ok_or("--out is required")?;
    Ok(Args { out, spec })
}

/// The process's peak resident memory (Linux `VmHWM`), when known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("error: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    match generate(&args.out, &args.spec) {
        Ok(model) => {
            let a = &model.plan.arch;
            let summary = serde_json::json!({
                "out": args.out,
                "hidden": a.hidden,
                "intermediate": a.intermediate,
                "layers": a.layers,
                "params": model.params,
                "weight_bytes": model.weight_bytes,
                "dtype": args.spec.dtype.to_string(),
                "shards": model.shard_files.len(),
                "seconds": started.elapsed().as_secs_f64(),
                "peak_rss_bytes": peak_rss_bytes(),
            });
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing the model to {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
