//! The command-line contract scripts rely on: every data command's `--json`
//! fields, exit codes (0 ok, 1 error, 2 usage, 3 problems found), hints,
//! `fsck --repair` re-fetching from a registry, and colour only on terminals.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `ferry serve` on a loopback port, killed when dropped.
struct Serve {
    child: Child,
    addr: String,
    root: PathBuf,
    _dir: TempDir,
}

impl Serve {
    fn start() -> Serve {
        let dir = tempdir();
        let addr = format!("127.0.0.1:{}", free_port());
        let root = dir.path().join("registry");
        let log = fs::File::create(dir.path().join("serve.log")).expect("create serve log");
        let child = Command::new(FERRY)
            .args(["serve", "--addr", &addr, "--root"])
            .arg(&root)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn ferry serve");
        let serve = Serve {
            child,
            addr,
            root,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&serve.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "ferry serve did not listen on {}",
                serve.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    /// `ADDR/name`.
    fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The digest of a layer of `reference` whose file path is `path`.
fn layer_digest(cli: &Cli, reference: &str, path: &str) -> String {
    let inspected = cli.json(&["inspect", reference, "--json"]);
    inspected["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["path"] == path)
        .unwrap_or_else(|| panic!("no layer {path} in {inspected}"))["digest"]
        .as_str()
        .expect("a digest")
        .to_string()
}

// ---------------------------------------------------------------------------
// --json
// ---------------------------------------------------------------------------

#[test]
fn local_commands_print_their_documented_json() {
    let cli = Cli::new();
    let model = cli.path("model");
    tiny_model(&model, 1);

    let init = cli.json(&["init", s(&model), "--json"]);
    assert_eq!(keys(&init), ["declared", "files", "metadata", "modelfile"]);
    assert_eq!(init["modelfile"], s(&model.join("Modelfile")));
    assert_eq!(init["files"], 3);
    assert_eq!(
        init["declared"],
        serde_json::json!({"code": 0, "config": 1, "dataset": 0, "doc": 1, "model": 1})
    );
    assert_eq!(
        keys(&init["metadata"]),
        [
            "arch",
            "family",
            "format",
            "name",
            "paramSize",
            "precision",
            "quantization"
        ]
    );
    assert_eq!(init["metadata"]["name"], "model");
    assert!(model.join("Modelfile").is_file());

    let packed = cli.json(&["pack", s(&model), "-t", REF, "--json"]);
    let digest = packed["digest"].as_str().expect("digest").to_string();
    assert!(is_digest(&digest), "{packed}");

    let tagged = cli.json(&["tag", REF, "localhost:5000/m:v2", "--json"]);
    assert_eq!(keys(&tagged), ["digest", "reference", "source"]);
    assert_eq!(tagged["reference"], "localhost:5000/m:v2");
    assert_eq!(tagged["digest"], digest.as_str());
    assert_eq!(tagged["source"], REF);
    let by_digest = cli.json(&["tag", &digest, "other", "--json"]);
    assert_eq!(by_digest["reference"], "docker.io/library/other:latest");
    assert_eq!(by_digest["source"], digest.as_str());

    let volumes = cli.json(&["mounts", "--json"]);
    assert_eq!(volumes, Value::Array(vec![]));
}

/// `ferry ...` with `COSIGN_PASSWORD` set, expecting exit `code`.
fn with_password(cli: &Cli, code: i32, args: &[&str]) -> Output {
    let output = run(cli.command(args).env("COSIGN_PASSWORD", "pw"));
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}\n{}",
        show(&output)
    );
    output
}

#[test]
fn signing_commands_print_their_documented_json() {
    use std::os::unix::fs::PermissionsExt;
    let cli = Cli::new();
    let key = cli.path("cosign.key");
    let public = cli.path("cosign.pub");
    let generate = [
        "key",
        "generate",
        "--output-key",
        s(&key),
        "--output-pub",
        s(&public),
    ];
    let mut json_args = generate.to_vec();
    json_args.push("--json");
    let generated = parse_json(&with_password(&cli, 0, &json_args), &json_args);
    assert_eq!(keys(&generated), ["key", "privateKey", "publicKey"]);
    assert_eq!(keys(&generated["key"]), ["algorithm", "fingerprint"]);
    assert_eq!(generated["key"]["algorithm"], "ecdsa-p256");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key_text = fs::read_to_string(&key).unwrap();
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    // An existing key is never replaced without --force.
    let output = with_password(&cli, 1, &generate);
    assert!(
        stderr(&output).contains("exists (use --force to overwrite)"),
        "{}",
        show(&output)
    );
    assert_eq!(fs::read_to_string(&key).unwrap(), key_text);
    let mut forced = generate.to_vec();
    forced.push("--force");
    with_password(&cli, 0, &forced);
    assert_ne!(fs::read_to_string(&key).unwrap(), key_text);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No password source (no variable, stdin not a terminal): a usage
    // error, nothing written.
    let other = cli.path("other.key");
    let other_pub = cli.path("other.pub");
    let output = run(cli
        .command(&[
            "key",
            "generate",
            "--output-key",
            s(&other),
            "--output-pub",
            s(&other_pub),
        ])
        .env_remove("COSIGN_PASSWORD"));
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        stderr(&output).contains("set COSIGN_PASSWORD"),
        "{}",
        show(&output)
    );
    assert!(!other.exists());

    let model = cli.path("model");
    tiny_model(&model, 1);
    let sign = ["sign-model", s(&model), "--key", s(&key), "--json"];
    let signed = parse_json(&with_password(&cli, 0, &sign), &sign);
    assert_eq!(
        keys(&signed),
        ["files", "key", "model", "rootDigest", "signature"]
    );
    assert_eq!(signed["files"], 3);
    assert_eq!(signed["signature"], s(&model.join("model.sig")));
    let verified = cli.json(&["verify-model", s(&model), "--key", s(&public), "--json"]);
    assert_eq!(
        keys(&verified),
        [
            "files",
            "ignorePaths",
            "key",
            "model",
            "modelName",
            "rootDigest",
            "signature",
            "verified"
        ]
    );
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["rootDigest"], signed["rootDigest"]);
    assert_eq!(verified["key"], signed["key"]);

    // Another key: exit 1 saying no signature verifies.
    let stranger = cli.path("stranger.pub");
    with_password(
        &cli,
        0,
        &[
            "key",
            "generate",
            "--output-key",
            s(&cli.path("stranger.key")),
            "--output-pub",
            s(&stranger),
        ],
    );
    let output = cli.exits(1, &["verify-model", s(&model), "--key", s(&stranger)]);
    assert!(
        stderr(&output).contains("no signature verifies with the given 1 key(s)"),
        "{}",
        show(&output)
    );

    // A tampered model: exit 1 naming the file.
    let weights = model.join("weights.bin");
    fs::write(&weights, b"tampered").unwrap();
    let output = cli.exits(1, &["verify-model", s(&model), "--key", s(&public)]);
    let text = stderr(&output);
    assert!(
        text.contains("model does not match its signature: changed: "),
        "{text}"
    );
    assert!(
        text.contains(weights.file_name().unwrap().to_str().unwrap()),
        "{text}"
    );
}

#[test]
fn signing_commands_refuse_wrong_passwords_and_oversized_files() {
    let cli = Cli::new();
    let key = cli.path("cosign.key");
    let public = cli.path("cosign.pub");
    with_password(
        &cli,
        0,
        &[
            "key",
            "generate",
            "--output-key",
            s(&key),
            "--output-pub",
            s(&public),
        ],
    );
    let model = cli.path("model");
    tiny_model(&model, 2);
    let output = run(cli
        .command(&["sign-model", s(&model), "--key", s(&key)])
        .env("COSIGN_PASSWORD", "not pw"));
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        stderr(&output).contains("wrong password or corrupted key"),
        "{}",
        show(&output)
    );
    assert!(
        !model.join("model.sig").exists(),
        "nothing written on failure"
    );

    let huge = cli.path("huge.sig");
    fs::write(&huge, vec![b' '; 2 << 20]).unwrap();
    let output = cli.exits(
        1,
        &[
            "verify-model",
            s(&model),
            "--key",
            s(&public),
            "--signature",
            s(&huge),
        ],
    );
    assert!(
        stderr(&output).contains("is over 1048576 bytes"),
        "{}",
        show(&output)
    );
}

#[test]
fn registry_commands_print_their_documented_json() {
    let serve = Serve::start();
    let cli = Cli::new();
    let model = cli.path("model");
    tiny_model(&model, 2);
    let reference = serve.reference("contract/m:v1");
    let digest = cli.ferry.pack(&model, &reference);

    let pushed = cli.json(&["push", &reference, "--json"]);
    assert_eq!(
        keys(&pushed),
        ["blobs", "digest", "reference", "seconds", "sentBytes"]
    );
    assert_eq!(keys(&pushed["blobs"]), ["present", "sent"]);
    assert_eq!(pushed["blobs"]["sent"], 4, "three layers and the config");
    assert_eq!(pushed["blobs"]["present"], 0);
    assert_eq!(pushed["digest"], digest.as_str());
    assert!(pushed["sentBytes"].as_u64().unwrap() > 64 * 1024);

    cli.exits(0, &["rm", &reference]);
    let pulled = cli.json(&["pull", &reference, "--json"]);
    assert_eq!(
        keys(&pulled),
        ["blobs", "digest", "receivedBytes", "reference", "seconds"]
    );
    assert_eq!(keys(&pulled["blobs"]), ["present", "received"]);
    assert_eq!(pulled["blobs"]["received"], 4, "{pulled}");
    assert_eq!(
        pulled["blobs"]["present"], 0,
        "rm removed every blob: {pulled}"
    );
    assert_eq!(pulled["digest"], digest.as_str());
    let again = cli.json(&["pull", &reference, "--json"]);
    assert_eq!(again["blobs"]["received"], 0, "{again}");
    assert_eq!(again["blobs"]["present"], 4, "{again}");
    assert_eq!(again["receivedBytes"], 0, "{again}");

    let copy = serve.reference("contract/copy:v1");
    let copied = cli.json(&["copy", &reference, &copy, "--json"]);
    assert_eq!(
        keys(&copied),
        [
            "blobs",
            "destination",
            "digest",
            "manifests",
            "mediaType",
            "referrers",
            "seconds",
            "sentBytes",
            "source"
        ]
    );
    assert_eq!(keys(&copied["blobs"]), ["mounted", "present", "sent"]);
    assert_eq!(copied["digest"], digest.as_str());

    let fetched_dir = cli.path("fetched");
    let fetched = cli.json(&[
        "fetch",
        &reference,
        "--include",
        "config.json",
        "-o",
        s(&fetched_dir),
        "--json",
    ]);
    let fetch_keys = [
        "digest",
        "dir",
        "entries",
        "layers",
        "receivedBytes",
        "reference",
        "seconds",
        "skippedLayers",
        "writtenBytes",
    ];
    assert_eq!(keys(&fetched), fetch_keys);
    assert_eq!(fetched["layers"], serde_json::json!(["config.json"]));
    assert_eq!(fetched["skippedLayers"], 2);
    let extracted_dir = cli.path("pulled");
    let extracted = cli.json(&["pull", &reference, "--extract", s(&extracted_dir), "--json"]);
    assert_eq!(keys(&extracted), fetch_keys);
    assert_eq!(
        extracted["writtenBytes"],
        file_sizes(&model).values().sum::<u64>()
    );

    let note = cli.path("note.txt");
    fs::write(&note, "reviewed\n").unwrap();
    let attached = cli.json(&[
        "attach",
        &reference,
        s(&note),
        "--artifact-type",
        "application/vnd.example.note",
        "-a",
        "org.example.by=ci",
        "--json",
    ]);
    assert_eq!(
        keys(&attached),
        [
            "artifactType",
            "digest",
            "fallbackAttempts",
            "fallbackTag",
            "reference",
            "referrersApi",
            "subject"
        ]
    );
    assert_eq!(
        keys(&attached["subject"]),
        ["digest", "mediaType", "reference", "size"]
    );
    assert_eq!(attached["referrersApi"], true, "ferry serve has the API");

    let discovered = cli.json(&["discover", &reference, "--json"]);
    assert_eq!(
        keys(&discovered),
        ["digest", "reference", "referrers", "source"]
    );
    let referrer_keys = [
        "annotations",
        "artifactType",
        "digest",
        "mediaType",
        "referrers",
        "repeated",
        "size",
        "truncated",
    ];
    let listed = &discovered["referrers"][0];
    assert_eq!(keys(listed), referrer_keys);
    assert_eq!(listed["annotations"]["org.example.by"], "ci");
    assert_eq!(listed["digest"], attached["digest"]);
    let tree = cli.json(&["discover", &reference, "--tree", "--json"]);
    assert_eq!(keys(&tree), ["digest", "reference", "referrers", "source"]);
    assert!(tree["source"].is_null(), "{tree}");
    assert_eq!(keys(&tree["referrers"][0]), referrer_keys);

    let index = serve.reference("contract/m:multi");
    let indexed = cli.json(&[
        "index",
        "create",
        &index,
        "-m",
        &reference,
        "--platform",
        "linux/arm64/v8",
        "--json",
    ]);
    assert_eq!(keys(&indexed), ["digest", "manifests", "reference"]);
    assert_eq!(
        keys(&indexed["manifests"][0]),
        ["artifactType", "digest", "mediaType", "platform", "size"]
    );
    assert_eq!(indexed["manifests"][0]["platform"], "linux/arm64/v8");

    let streamed = cli.json(&[
        "pack",
        s(&model),
        "-t",
        &serve.reference("contract/m:streamed"),
        "--push",
        "--json",
    ]);
    assert_eq!(
        keys(&streamed),
        [
            "artifactType",
            "contentBytes",
            "digest",
            "layers",
            "modelSignature",
            "reference",
            "seconds",
            "sentBytes"
        ]
    );
    assert_eq!(streamed["digest"], digest.as_str(), "the same artifact");
    assert_eq!(
        streamed["contentBytes"],
        file_sizes(&model).values().sum::<u64>()
    );
    assert!(
        streamed["sentBytes"].as_u64().is_some(),
        "sentBytes counts bytes: {streamed}"
    );

    let gc = cli.json(&[
        "serve",
        "gc",
        "--root",
        s(&serve.root),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(
        keys(&gc),
        ["blobs", "dryRun", "freedBytes", "links", "manifests"]
    );
    assert_eq!(gc["dryRun"], true);
}

#[test]
fn volumes_print_their_documented_json() {
    let cli = Cli::new();
    let model = cli.path("model");
    tiny_model(&model, 3);
    cli.ferry.pack(&model, REF);
    let target = cli.path("volume");
    let mounted = cli.json(&[
        OsStr::new("mount"),
        OsStr::new(REF),
        target.as_os_str(),
        OsStr::new("--no-mount"),
        OsStr::new("--json"),
    ]);
    assert_eq!(
        keys(&mounted),
        ["cacheBuilt", "cacheReused", "fallback", "volume"]
    );
    let volume_keys = [
        "access",
        "artifacts",
        "created",
        "id",
        "layers",
        "method",
        "noexec",
        "subpath",
        "target",
    ];
    assert_eq!(keys(&mounted["volume"]), volume_keys);
    assert!(mounted["volume"]["subpath"].is_null());
    assert_eq!(mounted["volume"]["method"], "hardlink");

    let listed = cli.json(&["mounts", "--json"]);
    assert_eq!(keys(&listed[0]), volume_keys);
    assert_eq!(listed[0]["target"], mounted["volume"]["target"]);

    let unmounted = cli.json(&[
        OsStr::new("umount"),
        target.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_eq!(
        keys(&unmounted),
        ["keptChanges", "skippedSpecial", "volume"]
    );
    assert!(unmounted["keptChanges"].is_null());
    assert_eq!(unmounted["skippedSpecial"], 0);
    assert_eq!(unmounted["volume"]["id"], mounted["volume"]["id"]);
}

// ---------------------------------------------------------------------------
// Exit codes and hints
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let cli = Cli::new();
    let model = cli.path("model");
    tiny_model(&model, 4);
    let dir = s(&model);
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "frobnicate"),
        (&["pack", dir], "--tag"),
        (
            &["pack", dir, "-t", REF, "--bundle-small", "12parsecs"],
            "--bundle-small",
        ),
        (
            &["pack", dir, "-t", REF, "--created", "last tuesday"],
            "--created",
        ),
        (
            &["pack", dir, "-t", REF, "--min-saving", "150"],
            "--min-saving",
        ),
        (
            &[
                "pack",
                dir,
                "-t",
                REF,
                "--compress",
                "gzip",
                "--level",
                "15",
            ],
            "--level",
        ),
        (
            &["pack", "--generic", dir, "-t", REF, "--name", "m"],
            "--generic",
        ),
        (
            &["pack", "--generic", dir, "-t", REF, "--config", "nocolon"],
            "--config",
        ),
        (&["pull", REF, "--platform", "linux"], "--platform"),
        (
            &["fetch", REF, "--include", "*", "-o", dir, "--platform", "/"],
            "--platform",
        ),
        (&["serve", "--idle-timeout", "60"], "--idle-timeout"),
        (&["serve", "--upload-ttl", "soon"], "--upload-ttl"),
        (&["serve", "--upload-idle-ttl", "0s"], "--upload-idle-ttl"),
        (&["serve", "--manifest-timeout", "60"], "--manifest-timeout"),
        (&["serve", "--max-connections", "0"], "--max-connections"),
        (
            &["serve", "--max-uploads-per-client", "many"],
            "--max-uploads-per-client",
        ),
        (&["serve", "gc", "--grace", "3600"], "--grace"),
        (
            &[
                "attach",
                REF,
                dir,
                "--artifact-type",
                "a/b",
                "-a",
                "novalue",
            ],
            "--annotation",
        ),
        (
            &[
                "attach",
                REF,
                dir,
                "--artifact-type",
                "a/b",
                "-a",
                "k=1",
                "-a",
                "k=2",
            ],
            "--annotation",
        ),
        (
            &[
                "index",
                "create",
                REF,
                "-m",
                REF,
                "-m",
                REF,
                "--platform",
                "linux/amd64",
            ],
            "--platform",
        ),
        (&["login", "localhost:5000", "-u", "me"], "--password-stdin"),
        (&["verify-model", dir], "--key"),
        (&["sign-model", dir], "--key"),
    ];
    for (args, flag) in cases {
        let output = cli.exits(2, args);
        let text = stderr(&output);
        // The message may continue on the next lines (clap lists missing flags there).
        let error = text
            .split_once("error: ")
            .map(|(_, rest)| rest.split("\n\n").next().unwrap_or(rest))
            .unwrap_or_else(|| panic!("{}: no error:\n{text}", words(args)));
        assert!(
            error.contains(flag),
            "{}: the error names {flag}: {error}",
            words(args)
        );
        assert!(
            text.contains("--help"),
            "{}: clap's pointer to --help: {text}",
            words(args)
        );
    }
    assert!(
        cli.ferry.listed().is_empty(),
        "no usage error packed anything"
    );
}

#[test]
fn plain_errors_exit_1_with_a_hint() {
    let cli = Cli::new();
    let output = cli.exits(1, &["push", "missing:v1"]);
    let text = stderr(&output);
    error_line(&text, &["docker.io/library/missing:v1", "not found"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("hint: ") && l.contains("ferry ls")),
        "a hint follows the error: {text}"
    );
    let output = cli.exits(1, &["inspect", "localhost:5000/nope:v1"]);
    assert!(stderr(&output).contains("hint: "), "{}", show(&output));
    // A duration in the one style every flag takes is accepted.
    cli.exits(
        1,
        &[
            "serve",
            "gc",
            "--grace",
            "90m",
            "--root",
            s(&cli.path("none")),
        ],
    );
}

#[test]
fn fsck_exits_3_and_names_the_artifacts_a_corrupt_blob_breaks() {
    let cli = Cli::new();
    let model = cli.path("model");
    tiny_model(&model, 5);
    cli.ferry.pack(&model, REF);
    cli.exits(0, &["fsck"]);
    let weights = layer_digest(&cli, REF, "weights.bin");
    let blob = blob_path(&cli.ferry.store, &weights);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();

    let output = cli.exits(3, &["fsck"]);
    let text = stdout(&output);
    assert!(text.contains(&format!("corrupt: {weights}")), "{text}");
    assert!(text.contains(&format!("damaged: {REF}")), "{text}");
    assert!(text.contains("ferry fsck --repair"), "{text}");
    let report = parse_json(&cli.exits(3, &["fsck", "--json"]), &["fsck"]);
    assert_eq!(report["clean"], false);
    assert_eq!(report["damaged"][0]["reference"], REF);
    assert_eq!(
        report["damaged"][0]["blobs"],
        serde_json::json!([weights.as_str()])
    );
    assert_eq!(report["repairs"], Value::Array(vec![]));
}

// ---------------------------------------------------------------------------
// fsck --repair
// ---------------------------------------------------------------------------

#[test]
fn fsck_repair_refetches_from_the_registry_or_names_the_command() {
    let serve = Serve::start();
    let cli = Cli::new();
    let model = cli.path("model");
    tiny_model(&model, 6);
    let reference = serve.reference("repair/m:v1");
    let digest = cli.ferry.pack(&model, &reference);
    cli.exits(0, &["push", &reference]);
    let weights = layer_digest(&cli, &reference, "weights.bin");
    let weights_blob = blob_path(&cli.ferry.store, &weights);
    fs::remove_file(&weights_blob).unwrap();

    let text = stdout(&cli.exits(3, &["fsck"]));
    assert!(text.contains(&format!("missing: {weights}")), "{text}");
    assert!(text.contains(&format!("damaged: {reference}")), "{text}");

    let repaired = parse_json(
        &cli.exits(0, &["fsck", "--repair", "--json"]),
        &["fsck", "--repair"],
    );
    assert_eq!(repaired["clean"], true, "{repaired}");
    assert_eq!(repaired["missing"], serde_json::json!([weights.as_str()]));
    let repair = &repaired["repairs"][0];
    assert_eq!(
        keys(repair),
        [
            "command",
            "digest",
            "error",
            "receivedBlobs",
            "reference",
            "refetched"
        ]
    );
    assert_eq!(repair["reference"], reference.as_str());
    assert_eq!(repair["digest"], digest.as_str());
    assert_eq!(repair["refetched"], true);
    assert_eq!(repair["receivedBlobs"], 1);
    assert_eq!(
        sha256_file(&weights_blob),
        weights,
        "the same bytes came back"
    );
    cli.exits(0, &["fsck"]);
    let out = cli.path("out");
    cli.exits(
        0,
        &[OsStr::new("extract"), reference.as_ref(), out.as_os_str()],
    );
    assert_eq!(
        fs::read(out.join("weights.bin")).unwrap(),
        fs::read(model.join("weights.bin")).unwrap()
    );

    // With the registry gone, fsck says exactly what to run later.
    drop(serve);
    fs::remove_file(&weights_blob).unwrap();
    let output = cli.exits(3, &["fsck", "--repair"]);
    let text = stdout(&output);
    let command = format!("ferry pull {reference}@{digest}");
    assert!(text.contains(&format!("`{command}`")), "{}", show(&output));
    assert!(text.contains("cannot re-fetch"), "{text}");
    assert!(
        text.contains("after repair: 1 blobs still missing"),
        "{text}"
    );
    let report = parse_json(
        &cli.exits(3, &["fsck", "--repair", "--json"]),
        &["fsck", "--repair"],
    );
    assert_eq!(report["repairs"][0]["refetched"], false);
    assert_eq!(report["repairs"][0]["command"], command.as_str());
    assert!(
        report["repairs"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach")),
        "{report}"
    );
}

// ---------------------------------------------------------------------------
// login and colours
// ---------------------------------------------------------------------------

/// `ferry serve` requiring Basic auth for alice (password `right`); the
/// server, its directory and its address.
fn serve_with_login() -> (KillOnDrop, TempDir, String) {
    let dir = tempdir();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("right", 4).expect("bcrypt");
    fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(FERRY);
    cmd.args(["serve", "--addr", &addr, "--root"])
        .arg(dir.path().join("registry"))
        .arg("--htpasswd")
        .arg(&htpasswd)
        .env_remove("RUST_LOG");
    let server = KillOnDrop::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "ferry serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, dir, addr)
}

#[test]
fn a_refused_login_says_so_without_suggesting_ferry_login() {
    let (_server, _dir, addr) = serve_with_login();
    let cli = Cli::new();
    let mut login = cli.command(&["login", &addr, "-u", "alice", "--password-stdin"]);
    login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = login.spawn().expect("spawn ferry login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"wrong\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let text = stderr(&output);
    error_line(&text, &[&addr, "refused the credentials of alice"]);
    assert!(
        !text.contains("ferry login"),
        "no advice to do what just failed: {text}"
    );
    assert!(!cli.path("docker/config.json").exists());
}

/// SGR sequences (colours), as tracing writes them.
fn has_colour(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(at, _)| {
        text[at + 2..]
            .chars()
            .find(|c| !c.is_ascii_digit() && *c != ';')
            == Some('m')
    })
}

/// Runs `ferry args` under a pseudo-terminal (`script`) with `typed` as the
/// keyboard, returning the exit code and what the terminal showed.
fn on_a_terminal(cli: &Cli, args: &[&str], no_color: bool, typed: &str) -> (Option<i32>, String) {
    let line = std::iter::once(FERRY)
        .chain(["--store", s(&cli.ferry.store)])
        .chain(args.iter().copied())
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env("DOCKER_CONFIG", cli.path("docker"))
        .env("XDG_CONFIG_HOME", cli.path("xdg"))
        .env("NO_PROGRESS", "1")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let mut child = cmd.spawn().expect("spawn script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(typed.as_bytes())
        .expect("type into the terminal");
    let output = child.wait_with_output().expect("wait for script");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn require_script() -> bool {
    require(
        "script (util-linux)",
        command_works("script", &["--version"]),
    )
}

#[test]
fn login_asks_for_the_password_on_a_terminal() {
    if !require_script() {
        return;
    }
    let (_server, _dir, addr) = serve_with_login();
    let cli = Cli::new();
    let (code, screen) = on_a_terminal(&cli, &["login", &addr, "-u", "alice"], true, "right\n");
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains(&format!("Password for alice at {addr}: ")),
        "{screen}"
    );
    assert!(screen.contains("login succeeded"), "{screen}");
    let config: Value =
        serde_json::from_slice(&fs::read(cli.path("docker/config.json")).expect("saved")).unwrap();
    assert!(config["auths"][&addr]["auth"].is_string(), "{config}");
}

#[test]
fn retry_warnings_are_coloured_only_on_a_terminal_without_no_color() {
    if !require_script() {
        return;
    }
    // A registry that answers 503 (Retry-After: 0), so ferry warns and retries at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request);
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let cli = Cli::new();
    let reference = format!("{addr}/m:v1");
    let args = ["pull", reference.as_str(), "--plain-http"];

    let piped = cli.exits(1, &args);
    let text = stderr(&piped);
    assert!(text.contains("retrying"), "a retry warning: {text}");
    assert!(
        !text.contains('\x1b'),
        "no escape codes into a pipe: {text:?}"
    );

    let (_, plain) = on_a_terminal(&cli, &args, true, "");
    assert!(plain.contains("retrying"), "{plain:?}");
    assert!(!has_colour(&plain), "NO_COLOR: {plain:?}");

    let (_, coloured) = on_a_terminal(&cli, &args, false, "");
    assert!(coloured.contains("retrying"), "{coloured:?}");
    assert!(has_colour(&coloured), "colours on a terminal: {coloured:?}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
}
