//! `ferry pack --compress`: every encoding round-trips through `extract`,
//! `push` + `pull --extract` and `fetch` against `ferry serve`; `pack
//! --push` gives the local digest; `inspect` shows the choice; an artifact
//! pushed by the Python `oras` client with a gzip directory layer is
//! pulled and extracted.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::*;

/// `ferry serve` on a free loopback port, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: String,
    _dir: TempDir,
}

impl Serve {
    pub(crate) fn start() -> Serve {
        let dir = tempdir();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = fs::File::create(dir.path().join("serve.log")).expect("log file");
        let child = Command::new(FERRY)
            .arg("--store")
            .arg(dir.path().join("store"))
            .args(["serve", "--addr", &addr, "--root"])
            .arg(dir.path().join("registry"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting ferry serve");
        let started = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "ferry serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A model with every category, text large enough to compress well.
fn model(dir: &Path) -> PathBuf {
    tiny_model(dir, 5);
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("{{\"id\":{i},\"text\":\"row {}\"}}\n", i % 101));
    }
    fs::create_dir_all(dir.join("data")).expect("data dir");
    fs::write(dir.join("data/train.jsonl"), &text).expect("dataset");
    fs::write(dir.join("tokenizer.json"), "{\"version\":\"1.0\"}\n").expect("tokenizer");
    fs::create_dir_all(dir.join("scripts")).expect("scripts dir");
    fs::write(dir.join("scripts/infer.py"), "print('hello')\n").expect("code");
    dir.to_path_buf()
}

fn layer_media_types(ferry: &Ferry, reference: &str) -> Vec<String> {
    ferry.manifest(reference)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().expect("media type").to_string())
        .collect()
}

#[test]
fn every_encoding_round_trips_through_extract_pull_and_fetch() {
    let serve = Serve::start();
    let t = tempdir();
    let src = model(&t.path().join("model"));
    let expected = files_only(tree(&src));
    for (mode, suffix) in [
        ("none", ".raw"),
        ("gzip", ".tar+gzip"),
        ("zstd", ".tar+zstd"),
        ("auto", ".tar+zstd"),
    ] {
        let ferry = Ferry::new(t.path().join(format!("store-{mode}")));
        let reference = format!("{}/compress/{mode}:v1", serve.addr);
        let local = parse_pack_line(
            &ferry.ok(&[
                "pack",
                s(&src),
                "-t",
                &reference,
                "--compress",
                mode,
                "--compress-weights",
                "--min-saving",
                "0",
            ]),
            &reference,
        );
        let types = layer_media_types(&ferry, &reference);
        let dataset = types
            .iter()
            .find(|t| t.contains(".dataset."))
            .expect("a dataset layer");
        assert!(dataset.ends_with(suffix), "{mode}: {types:?}");
        if mode == "auto" {
            // With --compress-weights a sample decides: random weights
            // do not compress, so they stay raw.
            let weight = types
                .iter()
                .find(|t| t.contains(".weight.v1"))
                .expect("a weight layer");
            assert!(weight.ends_with(".raw"), "{types:?}");
        }
        let inspected = ferry.ok(&["inspect", &reference]);
        assert!(
            inspected.contains(suffix.trim_start_matches('.')),
            "{mode}: inspect does not show the encoding:\n{inspected}"
        );
        assert_eq!(
            inspected.contains("unpacked)"),
            mode != "none",
            "{mode}: inspect shows the unpacked size of compressed layers only:\n{inspected}"
        );

        let out = t.path().join(format!("extract-{mode}"));
        ferry.ok(&["extract", &reference, s(&out)]);
        assert_same_tree(&expected, &files_only(tree(&out)));

        ferry.ok(&["push", &reference, "--plain-http"]);
        let puller = Ferry::new(t.path().join(format!("pull-store-{mode}")));
        let pulled = t.path().join(format!("pull-{mode}"));
        puller.ok(&["pull", &reference, "--extract", s(&pulled), "--plain-http"]);
        assert_same_tree(&expected, &files_only(tree(&pulled)));

        let fetched = t.path().join(format!("fetch-{mode}"));
        puller.ok(&[
            "fetch",
            &reference,
            "--category",
            "dataset",
            "-o",
            s(&fetched),
            "--plain-http",
        ]);
        assert_eq!(
            fs::read(fetched.join("data/train.jsonl")).expect("fetched dataset"),
            fs::read(src.join("data/train.jsonl")).expect("source dataset"),
            "{mode}"
        );

        // pack --push produces the same compressed layers and digest.
        let pusher = Ferry::new(t.path().join(format!("push-store-{mode}")));
        let push_ref = format!("{}/compress/pushed-{mode}:v1", serve.addr);
        let local_again = parse_pack_line(
            &ferry.ok(&[
                "pack",
                s(&src),
                "-t",
                &push_ref,
                "--compress",
                mode,
                "--compress-weights",
                "--min-saving",
                "0",
            ]),
            &push_ref,
        );
        let pushed = pusher.json(&[
            "pack",
            s(&src),
            "-t",
            &push_ref,
            "--compress",
            mode,
            "--compress-weights",
            "--min-saving",
            "0",
            "--push",
            "--plain-http",
            "--json",
        ]);
        assert_eq!(pushed["digest"], local_again.as_str(), "{mode}: {pushed}");
        let again = Ferry::new(t.path().join(format!("again-store-{mode}")));
        let repacked = parse_pack_line(
            &again.ok(&[
                "pack",
                s(&src),
                "-t",
                &reference,
                "--compress",
                mode,
                "--compress-weights",
                "--min-saving",
                "0",
            ]),
            &reference,
        );
        assert_eq!(local, repacked, "{mode}: packing twice changed the digest");
    }
}

#[test]
fn a_bad_level_is_refused() {
    let t = tempdir();
    let src = model(&t.path().join("model"));
    let ferry = Ferry::new(t.path().join("store"));
    let err = ferry.fails(&[
        "pack",
        s(&src),
        "-t",
        "example.com/m:v1",
        "--compress",
        "gzip",
        "--level",
        "12",
    ]);
    assert!(err.contains("level 12"), "{err}");
}

const ORAS_PUSH_DIR: &str = r#"
import sys
import oras.client
host, target, directory = sys.argv[1:4]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.push(target=target, files=[directory])
"#;

#[test]
fn ferry_extracts_a_gzip_directory_layer_pushed_by_oras_py() {
    if !require(
        "python3 with the oras package",
        command_works("python3", &["-c", "import oras.client"]),
    ) {
        return;
    }
    let serve = Serve::start();
    let t = tempdir();
    let work = t.path().join("work");
    let src = model(&work.join("bundle"));
    let reference = format!("{}/oras/dir:v1", serve.addr);
    let output = run(Command::new("python3").current_dir(&work).args([
        "-c",
        ORAS_PUSH_DIR,
        &serve.addr,
        &reference,
        "bundle",
    ]));
    assert_success(&output, "oras-py push of a directory");

    let ferry = Ferry::new(t.path().join("store"));
    let manifest: serde_json::Value = {
        ferry.ok(&["pull", &reference, "--plain-http"]);
        ferry.manifest(&reference)
    };
    let layer = &manifest["layers"][0];
    // oras-py tars and gzips a directory into one OCI layer titled by it
    // (older versions also set io.deis.oras.content.unpack).
    assert_eq!(
        layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{manifest}"
    );
    let out = t.path().join("out");
    ferry.ok(&["extract", &reference, s(&out)]);
    assert_same_tree(
        &files_only(tree(&src)),
        &files_only(tree(&out.join("bundle"))),
    );

    let remote = t.path().join("remote");
    Ferry::new(t.path().join("other-store")).ok(&[
        "pull",
        &reference,
        "--extract",
        s(&remote),
        "--plain-http",
    ]);
    assert_same_tree(
        &files_only(tree(&src)),
        &files_only(tree(&remote.join("bundle"))),
    );
}
