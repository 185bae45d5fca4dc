//! `ferry push`, `pull`, `login` and `logout` against real registries:
//! Debian's distribution 2.8 (`docker-registry`) and `ferry serve`, with the
//! Python `oras` client and skopeo as third-party clients, plus what users
//! get wrong (unreachable hosts, bad certificates, missing credentials) and a
//! pull killed halfway.

use std::ffi::OsStr;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

const DISTRIBUTION: &str = "/usr/bin/docker-registry";

pub(crate) fn require_distribution() -> bool {
    require(
        "docker-registry (Debian's distribution 2.8)",
        Path::new(DISTRIBUTION).is_file(),
    )
}

pub(crate) fn require_oras_py() -> bool {
    require(
        "python3 with the oras package",
        command_works("python3", &["-c", "import oras.client"]),
    )
}

fn require_openssl() -> bool {
    require("openssl", command_works("openssl", &["version"]))
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// A registry process, killed and reaped when dropped. Its output goes to a
/// log file: an unread pipe would fill up and block it.
pub(crate) struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    /// Starts `cmd` (its output redirected to `dir/server.log`) and waits
    /// until `addr` accepts connections.
    fn start(mut cmd: Command, addr: String, dir: TempDir) -> Server {
        let log = dir.path().join("server.log");
        let file = fs::File::create(&log).expect("create server log");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut server = Server {
            child,
            addr,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(&server.addr).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the registry exited ({status}) before listening:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {} within 20s:\n{}",
                server.addr,
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Debian's distribution 2.8 with filesystem storage in a temp dir.
    pub(crate) fn distribution() -> Server {
        let dir = tempdir();
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                s(&dir.path().join("storage"))
            ),
        )
        .expect("write registry config");
        let mut cmd = Command::new(DISTRIBUTION);
        cmd.arg("serve").arg(&config);
        Server::start(cmd, addr, dir)
    }

    /// `ferry serve` on a free port with storage in a temp dir, plus `extra` flags.
    pub(crate) fn ferry_serve<S: AsRef<OsStr>>(extra: &[S]) -> Server {
        let dir = tempdir();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(FERRY);
        cmd.arg("--store")
            .arg(dir.path().join("store"))
            .args(["serve", "--addr", &addr, "--root"])
            .arg(dir.path().join("registry"))
            .args(extra)
            .env_remove("RUST_LOG");
        Server::start(cmd, addr, dir)
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ADDR/name`.
    pub(crate) fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Running ferry with a private Docker config
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

/// Total bytes of an artifact's config and layers, from its stored manifest.
fn blob_bytes(ferry: &Ferry, reference: &str) -> u64 {
    let manifest = ferry.manifest(reference);
    let layers: u64 = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["size"].as_u64().expect("size"))
        .sum();
    layers + manifest["config"]["size"].as_u64().expect("config size")
}

/// Extracts `reference` into a fresh directory under `parent` and asserts it
/// holds exactly the files of `model`, byte for byte.
fn assert_extracts_to(cli: &Cli, reference: &str, model: &Path, parent: &Path) {
    let out = parent.join(format!(
        "extracted-{}",
        sha256(reference.as_bytes())[7..15].to_owned()
    ));
    cli.ok(&[OsStr::new("extract"), reference.as_ref(), out.as_os_str()]);
    assert_same_tree(&files_only(tree(model)), &files_only(tree(&out)));
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

#[test]
fn push_rm_pull_extract_through_distribution() {
    if !require_distribution() {
        return;
    }
    let model = gen_model_sized(50 * MIB, 2, 1);
    let registry = Server::distribution();
    let cli = Cli::new();
    let reference = registry.reference("models/llama:v1");
    let digest = cli.ferry.pack(&model, &reference);
    let total = blob_bytes(&cli.ferry, &reference);

    let pushed = cli.json(&["push", &reference, "--json"]);
    assert_eq!(pushed["digest"], digest.as_str());
    let layers = cli.ferry.manifest(&reference)["layers"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!(
        pushed["blobs"]["sent"].as_u64(),
        Some(layers + 1),
        "{pushed}"
    );
    assert_eq!(pushed["sentBytes"].as_u64(), Some(total), "{pushed}");

    cli.ok(&["rm", &reference]);
    cli.ok(&["prune"]);
    assert!(cli.ferry.listed().is_empty());
    assert!(names(&cli.ferry.store.join("artifacts/blobs/sha256")).is_empty());

    let pulled = cli.json(&["pull", &reference, "--json"]);
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(pulled["blobs"]["received"].as_u64(), Some(layers + 1));
    assert_eq!(pulled["receivedBytes"].as_u64(), Some(total));
    assert_eq!(cli.ferry.resolve(&reference), digest);
    cli.ok(&["fsck"]);
    assert_extracts_to(&cli, &reference, &model, cli.home.path());

    // Pushing the unchanged model again moves nothing.
    let again = cli.json(&["push", &reference, "--json"]);
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["blobs"]["sent"].as_u64(), Some(0), "{again}");
    assert_eq!(again["sentBytes"].as_u64(), Some(0), "{again}");
    // And pushing it under another tag uploads no blob either.
    let other = registry.reference("models/llama:v2");
    cli.ok(&["tag", &reference, &other]);
    let tagged = cli.json(&["push", &other, "--json"]);
    assert_eq!(tagged["blobs"]["sent"].as_u64(), Some(0), "{tagged}");
    assert_eq!(tagged["sentBytes"].as_u64(), Some(0), "{tagged}");
}

const ORAS_PULL: &str = r#"
import json, sys
import oras.client
host, target, outdir = sys.argv[1:4]
client = oras.client.OrasClient(hostname=host, insecure=True)
print(json.dumps(client.pull(target=target, outdir=outdir)))
"#;

#[test]
fn oras_py_pulls_what_ferry_pushed() {
    if !require_distribution() || !require_oras_py() {
        return;
    }
    let model = gen_model_sized(50 * MIB, 2, 1);
    let registry = Server::distribution();
    let cli = Cli::new();
    let reference = registry.reference("interop/ferry-made:v1");
    // oras-py saves each blob under its title without decompressing it: it
    // reads raw layers only, which is what a default pack writes.
    cli.ferry.ok(&["pack", s(&model), "-t", &reference]);
    cli.ok(&["push", &reference]);

    let out = cli.home.path().join("oras-out");
    let output = run(Command::new("python3")
        .args(["-c", ORAS_PULL, &registry.addr, &reference])
        .arg(&out));
    assert_success(&output, "oras-py pull");
    // oras-py names each file by its title annotation, which ferry sets to
    // the file's path in the model.
    assert_eq!(contents(&model), contents(&out));
}

const ORAS_PUSH: &str = r#"
import json, sys
import oras.client
host, target, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = oras.client.OrasClient(hostname=host, insecure=True)
client.push(
    target=target,
    files=files,
    manifest_config="modelpack-config.json:application/vnd.cncf.model.config.v1+json",
    annotation_file="annotations.json",
    manifest_annotations={"org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
)
"#;

#[test]
fn ferry_pulls_inspects_and_extracts_what_oras_py_pushed() {
    if !require_distribution() || !require_oras_py() {
        return;
    }
    let registry = Server::distribution();
    let cli = Cli::new();
    let src = cli.home.path().join("oras-src");
    fs::create_dir_all(src.join("tokenizer")).unwrap();
    fs::write(src.join("config.json"), "{\"model_type\":\"oras\"}\n").unwrap();
    write_random_file(&src.join("model.safetensors"), 3 * 1024 * 1024 + 17, 77);
    fs::write(src.join("README.md"), "# pushed by oras-py\n").unwrap();
    fs::write(src.join("tokenizer/vocab.txt"), "a\nb\nc\n").unwrap();
    let layers = [
        (
            "config.json",
            "application/vnd.cncf.model.weight.config.v1.raw",
        ),
        (
            "model.safetensors",
            "application/vnd.cncf.model.weight.v1.raw",
        ),
        ("README.md", "application/vnd.cncf.model.doc.v1.raw"),
        (
            "tokenizer/vocab.txt",
            "application/vnd.cncf.model.weight.config.v1.raw",
        ),
    ];
    // Per-file annotations (oras-py keys them by the path it was given);
    // oras-py itself sets the title to the base name only.
    let mut annotations = serde_json::Map::new();
    let mut diff_ids = Vec::new();
    for (path, _) in &layers {
        annotations.insert(
            path.to_string(),
            serde_json::json!({"org.cncf.model.filepath": path}),
        );
        diff_ids.push(sha256_file(&src.join(path)));
    }
    fs::write(
        src.join("annotations.json"),
        Value::Object(annotations).to_string(),
    )
    .unwrap();
    let config = serde_json::json!({
        "descriptor": {"name": "oras-made"},
        "config": {"format": "safetensors"},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    });
    fs::write(src.join("modelpack-config.json"), config.to_string()).unwrap();
    let files: Vec<String> = layers.iter().map(|(p, t)| format!("{p}:{t}")).collect();
    let reference = registry.reference("interop/oras-made:v1");
    let output = run(Command::new("python3")
        .current_dir(&src)
        .args(["-c", ORAS_PUSH, &registry.addr, &reference])
        .arg(serde_json::to_string(&files).unwrap()));
    assert_success(&output, "oras-py push");

    let pulled = cli.json(&["pull", &reference, "--json"]);
    assert_eq!(
        pulled["blobs"]["received"].as_u64(),
        Some(layers.len() as u64 + 1)
    );
    let inspected = cli.json(&["inspect", &reference, "--json"]);
    assert_eq!(inspected["digest"], pulled["digest"]);
    let text = inspected.to_string();
    assert!(
        text.contains("oras-made"),
        "inspect shows the config: {text}"
    );
    let out = cli.home.path().join("extracted");
    cli.ok(&[OsStr::new("extract"), reference.as_ref(), out.as_os_str()]);
    let mut expected = contents(&src);
    expected.remove("annotations.json");
    expected.remove("modelpack-config.json");
    assert_eq!(expected, contents(&out));
}

#[test]
fn skopeo_copies_a_ferry_artifact_to_ferry_serve() {
    if !require_distribution() || !require_skopeo() {
        return;
    }
    let model = gen_model_sized(50 * MIB, 2, 1);
    let source = Server::distribution();
    let destination = Server::ferry_serve::<&str>(&[]);
    let cli = Cli::new();
    let reference = source.reference("models/copied:v1");
    let digest = cli.ferry.pack(&model, &reference);
    cli.ok(&["push", &reference]);

    let copy = destination.reference("mirror/copied:v1");
    let output = run(Command::new("skopeo")
        .args([
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{reference}"))
        .arg(format!("docker://{copy}")));
    assert_success(&output, "skopeo copy");

    let puller = Cli::new();
    let pulled = puller.json(&["pull", &copy, "--json"]);
    assert_eq!(
        pulled["digest"],
        digest.as_str(),
        "the copy is the same artifact"
    );
    puller.ok(&["fsck"]);
    assert_extracts_to(&puller, &copy, &model, puller.home.path());
}

// ---------------------------------------------------------------------------
// What users get wrong
// ---------------------------------------------------------------------------

#[test]
fn an_unreachable_registry_is_named_in_the_error() {
    let cli = Cli::new();
    let registry = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let line = cli.fails(
        &["pull", &format!("{registry}/x:y")],
        &[&registry, "cannot reach"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "giving up took {:?}: {line}",
        started.elapsed()
    );
    tiny_model(&cli.home.path().join("tiny"), 1);
    let reference = format!("{registry}/x:y");
    cli.ferry.pack(&cli.home.path().join("tiny"), &reference);
    cli.fails(&["push", &reference], &[&registry, "cannot reach"]);
}

#[test]
fn an_unknown_host_is_named_in_the_error() {
    let cli = Cli::new();
    let started = Instant::now();
    let line = cli.fails(
        &["pull", "no-such-host.invalid:5000/x:y"],
        &["no-such-host.invalid"],
    );
    assert!(
        line.contains("cannot reach") && line.to_lowercase().contains("dns"),
        "the error says the name did not resolve: {line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a DNS failure is not retried for long: {:?}",
        started.elapsed()
    );
}

/// A CA, a server certificate for `localhost` and 127.0.0.1 signed by it,
/// and an unrelated second CA, made with openssl in `dir`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = run(Command::new("openssl").current_dir(dir).args(args));
        assert_success(&output, &format!("openssl {}", args.join(" ")));
    };
    for ca in ["ca-a", "ca-b"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=ferry test {ca}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ]);
    }
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca-a.pem",
        "-CAkey",
        "ca-a.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn a_certificate_from_the_wrong_ca_is_reported_as_such() {
    if !require_openssl() {
        return;
    }
    let certs = tempdir();
    certificates(certs.path());
    let server = Server::ferry_serve(&[
        OsStr::new("--tls-cert"),
        certs.path().join("server.pem").as_os_str(),
        OsStr::new("--tls-key"),
        certs.path().join("server.key").as_os_str(),
    ]);
    let port = server.addr.rsplit(':').next().unwrap();
    let cli = Cli::new();
    let wrong_ca = certs.path().join("ca-b.pem");
    let right_ca = certs.path().join("ca-a.pem");
    for host in ["localhost", "127.0.0.1"] {
        let registry = format!("{host}:{port}");
        let reference = format!("{registry}/m:v1");
        let started = Instant::now();
        let line = cli.fails(
            &[
                OsStr::new("pull"),
                reference.as_ref(),
                "--ca-file".as_ref(),
                wrong_ca.as_os_str(),
            ],
            &[&registry],
        );
        assert!(
            line.to_lowercase().contains("certificate"),
            "the error is about the certificate: {line}"
        );
        let hinted = cli.run(&[
            OsStr::new("pull"),
            reference.as_ref(),
            "--ca-file".as_ref(),
            wrong_ca.as_os_str(),
        ]);
        let stderr = String::from_utf8_lossy(&hinted.stderr);
        assert!(
            stderr.lines().any(|l| l.starts_with("hint: ")
                && l.contains("--ca-file")
                && l.contains("--insecure")),
            "a TLS failure suggests --ca-file and --insecure: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "certificate errors are not retried"
        );
        // With the right CA the same pull reaches the registry (which has nothing).
        cli.fails(
            &[
                OsStr::new("pull"),
                reference.as_ref(),
                "--ca-file".as_ref(),
                right_ca.as_os_str(),
            ],
            &["not found"],
        );
    }
}

#[test]
fn an_unknown_repository_or_tag_is_not_found() {
    if !require_distribution() {
        return;
    }
    let registry = Server::distribution();
    let cli = Cli::new();
    tiny_model(&cli.home.path().join("tiny"), 2);
    let reference = registry.reference("known/m:v1");
    cli.ferry.pack(&cli.home.path().join("tiny"), &reference);
    cli.ok(&["push", &reference]);
    let unknown_repo = registry.reference("unknown/m:v1");
    cli.fails(&["pull", &unknown_repo], &["not found", "unknown/m"]);
    let missing_tag = registry.reference("known/m:nope");
    cli.fails(&["pull", &missing_tag], &["not found", "known/m:nope"]);
    let missing_digest = format!(
        "{}@sha256:{}",
        registry.reference("known/m"),
        "0".repeat(64)
    );
    cli.fails(&["pull", &missing_digest], &["not found"]);
    assert_eq!(cli.ferry.listed().len(), 1, "failed pulls add nothing");
}

#[test]
fn login_writes_docker_config_and_logout_removes_it() {
    let dir = tempdir();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("pa55 word", 4).expect("bcrypt");
    fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let server = Server::ferry_serve(&[OsStr::new("--htpasswd"), htpasswd.as_os_str()]);
    let registry = server.addr.clone();
    let cli = Cli::new();
    tiny_model(&cli.home.path().join("tiny"), 3);
    let reference = server.reference("private/m:v1");
    cli.ferry.pack(&cli.home.path().join("tiny"), &reference);

    let line = cli.fails(&["push", &reference], &["ferry login", &registry]);
    assert!(line.contains("authentication"), "{line}");
    cli.fails(&["pull", &reference], &["ferry login"]);
    let config = cli.docker_config().join("config.json");

    let wrong = cli.login(&registry, "alice", "not the password");
    assert_failure(&wrong, "ferry login with a wrong password");
    assert!(!config.exists(), "a refused login is not saved");

    let right = cli.login(&registry, "alice", "pa55 word");
    assert_success(&right, "ferry login");
    let written: Value =
        serde_json::from_slice(&fs::read(&config).expect("config.json written")).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode("alice:pa55 word");
    assert_eq!(
        written["auths"][&registry]["auth"],
        expected.as_str(),
        "docker's format: base64 user:password under auths: {written}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "config.json holds a secret");
    }
    let pushed = cli.json(&["push", &reference, "--json"]);
    assert!(pushed["blobs"]["sent"].as_u64().unwrap() > 0);
    let puller = Cli::new();
    fs::create_dir_all(puller.docker_config()).unwrap();
    fs::copy(&config, puller.docker_config().join("config.json")).unwrap();
    puller.ok(&["pull", &reference]);

    cli.ok(&["logout", &registry]);
    let after: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert!(
        after["auths"].get(&registry).is_none(),
        "logout removed the entry: {after}"
    );
    cli.fails(&["push", &reference], &["ferry login"]);
    cli.fails(&["logout", &registry], &["not logged in"]);
}

// ---------------------------------------------------------------------------
// A pull killed halfway
// ---------------------------------------------------------------------------

/// Bytes in `<store>/tmp/partial-*` files.
fn partial_bytes(store: &Path) -> u64 {
    fs::read_dir(store.join("tmp"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("partial-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_pull_killed_mid_transfer_leaves_a_consistent_store_and_resumes() {
    if !require_distribution() {
        return;
    }
    let model = gen_model_sized(300 * MIB, 3, 5);
    let registry = Server::distribution();
    let pusher = Cli::new();
    let reference = registry.reference("big/model:v1");
    let digest = pusher.ferry.pack(&model, &reference);
    pusher.ok(&["push", &reference]);
    let total = blob_bytes(&pusher.ferry, &reference);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg::new(seed);
    let cli = Cli::new();
    let mut killed = false;
    for attempt in 0..5 {
        let mut cmd = cli.command(&["pull", &reference, "--concurrency", "1", "--json"]);
        let child = KillOnDrop::spawn({
            cmd.stdin(Stdio::null());
            cmd
        });
        // Wait until bytes are flowing, then a random moment more.
        let deadline = Instant::now() + Duration::from_secs(60);
        while partial_bytes(&cli.ferry.store) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let output = child.kill();
        if output.status.code().is_none() {
            eprintln!("killed the pull on attempt {attempt} (seed {seed})");
            killed = true;
            break;
        }
        // The pull finished first: start over with an empty store.
        assert_success(&output, "the pull that outran the kill");
        cli.ok(&["rm", &reference]);
        cli.ok(&["prune"]);
    }
    assert!(
        killed,
        "five pulls all finished before SIGKILL reached them"
    );

    let fsck = cli.json(&["fsck", "--json"]);
    assert_eq!(
        fsck["clean"], true,
        "the store is consistent after SIGKILL: {fsck}"
    );
    let resumed = cli.json(&["pull", &reference, "--json"]);
    assert_eq!(resumed["digest"], digest.as_str());
    let fetched = resumed["receivedBytes"].as_u64().expect("receivedBytes");
    assert!(
        fetched < total,
        "the second pull fetched {fetched} of {total} bytes: it should resume, not start over"
    );
    cli.ok(&["fsck"]);
    assert_tmp_empty(&cli.ferry.store);
    assert_extracts_to(&cli, &reference, &model, cli.home.path());
}

#[test]
fn large_blobs_come_in_ranges_from_distribution_and_ferry_serve() {
    if !require_distribution() {
        return;
    }
    // Two shards of about 80 MiB: above the 64 MiB ranged threshold.
    let model = gen_model_sized(160 * MIB, 2, 7);
    for registry in [Server::distribution(), Server::ferry_serve::<&str>(&[])] {
        let cli = Cli::new();
        let reference = registry.reference("models/wide:v1");
        let digest = cli.ferry.pack(&model, &reference);
        let total = blob_bytes(&cli.ferry, &reference);
        cli.ok(&["push", &reference]);
        cli.ok(&["rm", &reference]);
        cli.ok(&["prune"]);

        let output = cli
            .command(&[
                "pull",
                &reference,
                "--json",
                "--connections-per-blob",
                "4",
                "--split-below",
                "0",
            ])
            .env("RUST_LOG", "ferry_registry=debug")
            .output()
            .expect("run ferry pull");
        assert_success(&output, "ranged pull");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let ranged = stderr.matches("ranges over 4 connections").count();
        assert_eq!(ranged, 2, "both shards came in ranges:\n{stderr}");
        let pulled: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(pulled["digest"], digest.as_str());
        assert_eq!(pulled["receivedBytes"].as_u64(), Some(total));
        cli.ok(&["fsck"]);
        assert_tmp_empty(&cli.ferry.store);
        assert_extracts_to(&cli, &reference, &model, cli.home.path());

        // Straight into a directory, in ordered ranges.
        let out = cli.home.path().join("direct");
        cli.ok(&[
            OsStr::new("pull"),
            reference.as_ref(),
            OsStr::new("--extract"),
            out.as_os_str(),
            OsStr::new("--connections-per-blob"),
            OsStr::new("3"),
            OsStr::new("--split-below"),
            OsStr::new("0"),
        ]);
        assert_same_tree(&files_only(tree(&model)), &files_only(tree(&out)));
    }
    let cli = Cli::new();
    let refused = cli.run(&["pull", "localhost:1/m:v1", "--connections-per-blob", "0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("connections-per-blob"),
        "{}",
        show(&refused)
    );
}
