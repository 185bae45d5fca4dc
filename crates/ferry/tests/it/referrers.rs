//! `ferry attach`, `discover`, `index create` and `pack --generic` against
//! two real registries: `ferry serve` (with the referrers API) and Debian's
//! docker-registry 2.8 (without it, so ferry keeps the fallback tag).

use std::collections::BTreeSet;
use std::fs::{self, File};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

/// Debian's distribution registry (v2.8, no referrers API).
const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

// ---------------------------------------------------------------------------
// Registries
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `ferry serve`: has the referrers API.
    Ferry,
    /// docker-registry 2.8: has none.
    Distribution,
}

/// A registry process on a loopback port, killed and reaped when dropped.
struct Registry {
    kind: Kind,
    /// `127.0.0.1:PORT`.
    addr: String,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `ferry serve` on a free port.
    fn ferry() -> Registry {
        Registry::start(Kind::Ferry, |dir, addr| {
            let mut cmd = Command::new(FERRY);
            cmd.arg("serve")
                .arg("--root")
                .arg(dir.join("registry"))
                .arg("--addr")
                .arg(addr)
                .env("RUST_LOG", "warn");
            cmd
        })
    }

    /// docker-registry on a free port; `None` (after a note) when it is not
    /// installed, except under `CI=true`, where that fails the test.
    fn distribution() -> Option<Registry> {
        if !require(
            "docker-registry (Debian's distribution 2.8)",
            Path::new(DOCKER_REGISTRY).is_file(),
        ) {
            return None;
        }
        Some(Registry::start(Kind::Distribution, |dir, addr| {
            let config = dir.join("config.yml");
            let storage = dir.join("storage");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                    s(&storage)
                ),
            )
            .expect("write docker-registry config");
            let mut cmd = Command::new(DOCKER_REGISTRY);
            cmd.arg("serve").arg(&config);
            cmd
        }))
    }

    /// Starts the command `make` builds for a free port (another port when
    /// that one was taken in the meantime).
    fn start(kind: Kind, make: impl Fn(&Path, &str) -> Command) -> Registry {
        for _ in 0..5 {
            let dir = tempdir();
            let log = dir.path().join("registry.log");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let mut cmd = make(dir.path(), &addr);
            let file = File::create(&log).expect("create registry log");
            cmd.stdin(Stdio::null())
                .stdout(file.try_clone().expect("clone log handle"))
                .stderr(file);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("start {kind:?} registry: {e}"));
            let mut registry = Registry {
                kind,
                addr,
                child,
                log,
                _dir: dir,
            };
            if registry.wait_ready() {
                return registry;
            }
            eprintln!(
                "{kind:?} registry did not start on {}; log:\n{}",
                registry.addr,
                fs::read_to_string(&registry.log).unwrap_or_default()
            );
            // Dropping it kills it; try another port.
        }
        panic!("{kind:?} registry did not start on any of 5 ports");
    }

    /// Waits until `GET /v2/` answers; false when the process exits first.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Some((status, _)) = http_get(&self.addr, "/v2/", "*/*")
                && (status == 200 || status == 401)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `ADDR/repository:tag`.
    fn reference(&self, rest: &str) -> String {
        format!("{}/{rest}", self.addr)
    }

    /// GET a path; panics with the registry log when it cannot connect.
    fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        http_get(&self.addr, path, accept).unwrap_or_else(|| {
            panic!(
                "GET {path} on {:?} failed; registry log:\n{}",
                self.kind,
                fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }

    /// GET a manifest (or index) as JSON; `None` on 404.
    fn manifest(&self, repository: &str, reference: &str) -> Option<Value> {
        let (status, body) = self.get(
            &format!("/v2/{repository}/manifests/{reference}"),
            &format!("{MANIFEST_TYPE}, {INDEX_TYPE}"),
        );
        if status == 404 {
            return None;
        }
        assert_eq!(
            status,
            200,
            "GET manifest {reference}: {}",
            String::from_utf8_lossy(&body)
        );
        Some(serde_json::from_slice(&body).expect("manifest is JSON"))
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A store and a scratch directory for one test.
struct Setup {
    dir: TempDir,
    ferry: Ferry,
}

fn setup() -> Setup {
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    Setup { dir, ferry }
}

impl Setup {
    /// Packs a tiny model as `reference` and pushes it; returns its digest.
    fn push_model(&self, reference: &str, seed: u64) -> String {
        let model = self.dir.path().join(format!("model-{seed}"));
        tiny_model(&model, seed);
        let digest = self.ferry.pack(&model, reference);
        self.ferry.ok(&["push", reference, "--plain-http", "-q"]);
        digest
    }

    /// Writes `name` with `content` into the scratch directory.
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join("files").join(name);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create files dir");
        fs::write(&path, content).expect("write file");
        path
    }

    /// `ferry attach REF FILE --artifact-type TYPE --json` plus `extra`.
    fn attach(&self, reference: &str, file: &Path, artifact_type: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "attach",
            reference,
            s(file),
            "--artifact-type",
            artifact_type,
            "--plain-http",
            "--json",
        ];
        args.extend_from_slice(extra);
        self.ferry.json(&args)
    }

    /// `ferry discover REF --json` plus `extra`.
    fn discover(&self, reference: &str, extra: &[&str]) -> Value {
        let mut args = vec!["discover", reference, "--plain-http", "--json"];
        args.extend_from_slice(extra);
        self.ferry.json(&args)
    }
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

/// `(digest, artifactType)` of each listed descriptor.
fn listed(entries: &Value) -> BTreeSet<(String, String)> {
    entries
        .as_array()
        .expect("an array of descriptors")
        .iter()
        .map(|e| {
            (
                text(&e["digest"]).to_string(),
                e["artifactType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

// ---------------------------------------------------------------------------
// attach and discover
// ---------------------------------------------------------------------------

const SBOM: &str = "application/spdx+json";
const SIGNATURE: &str = "application/vnd.example.signature.v1";

fn attach_and_discover(registry: &Registry) {
    let t = setup();
    let model_ref = registry.reference("m:v1");
    let model = t.push_model(&model_ref, 11);
    let model_size = t.ferry.manifest_bytes(&model_ref).len() as u64;

    let sbom_file = t.file("sbom.spdx.json", "{\"spdxVersion\":\"SPDX-2.3\"}\n");
    let sbom = t.attach(
        &model_ref,
        &sbom_file,
        SBOM,
        &["--annotation", "org.example.kind=sbom"],
    );
    let sig_file = t.file("model.sig", "signature bytes\n");
    let sig = t.attach(&model_ref, &sig_file, SIGNATURE, &[]);
    let sbom_digest = text(&sbom["digest"]).to_string();
    let sig_digest = text(&sig["digest"]).to_string();
    assert!(is_digest(&sbom_digest) && is_digest(&sig_digest));
    assert_ne!(sbom_digest, sig_digest);
    assert_eq!(sbom["subject"]["digest"], model.as_str());
    assert_eq!(
        sbom["reference"],
        format!("{}/m@{sbom_digest}", registry.addr).as_str()
    );
    let has_api = registry.kind == Kind::Ferry;
    for attached in [&sbom, &sig] {
        assert_eq!(attached["referrersApi"], has_api, "{attached}");
        if has_api {
            assert!(attached["fallbackTag"].is_null(), "{attached}");
        } else {
            assert_eq!(attached["fallbackTag"], fallback_tag(&model).as_str());
        }
    }

    // The referrer manifest as the registry serves it.
    let manifest = registry
        .manifest("m", &sbom_digest)
        .expect("the referrer manifest is on the registry");
    assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
    assert_eq!(manifest["artifactType"], SBOM);
    assert_eq!(manifest["subject"]["digest"], model.as_str());
    assert_eq!(manifest["subject"]["size"], model_size);
    assert_eq!(manifest["subject"]["mediaType"], MANIFEST_TYPE);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], EMPTY_DIGEST);
    assert_eq!(manifest["config"]["size"], 2);
    assert_eq!(manifest["annotations"]["org.example.kind"], "sbom");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/octet-stream");
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "sbom.spdx.json"
    );
    assert_eq!(
        layers[0]["digest"],
        sha256(&fs::read(&sbom_file).unwrap()).as_str()
    );
    let (status, body) = registry.get(&format!("/v2/m/blobs/{EMPTY_DIGEST}"), "*/*");
    assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));

    // discover: both, then one by type.
    let all = t.discover(&model_ref, &[]);
    assert_eq!(all["digest"], model.as_str());
    assert_eq!(all["source"], if has_api { "api" } else { "tag" });
    let expected: BTreeSet<(String, String)> = [
        (sbom_digest.clone(), SBOM.to_string()),
        (sig_digest.clone(), SIGNATURE.to_string()),
    ]
    .into();
    assert_eq!(listed(&all["referrers"]), expected);
    let only_sbom = t.discover(&model_ref, &["--artifact-type", SBOM]);
    let entries = only_sbom["referrers"].as_array().expect("referrers");
    assert_eq!(entries.len(), 1, "{only_sbom}");
    assert_eq!(entries[0]["digest"], sbom_digest.as_str());
    assert_eq!(entries[0]["annotations"]["org.example.kind"], "sbom");
    let none = t.discover(
        &model_ref,
        &["--artifact-type", "application/vnd.example.none"],
    );
    assert_eq!(none["referrers"], Value::Array(vec![]));

    // The text form: one line per referrer, digest first.
    let plain = t.ferry.ok(&["discover", &model_ref, "--plain-http"]);
    let lines: BTreeSet<&str> = plain.lines().collect();
    let wanted: BTreeSet<String> = [
        format!("{sbom_digest}  {SBOM}"),
        format!("{sig_digest}  {SIGNATURE}"),
    ]
    .into();
    assert_eq!(
        lines,
        wanted.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );

    // The fallback tag: kept only where the registry has no referrers API.
    let fallback = registry.manifest("m", &fallback_tag(&model));
    if has_api {
        assert!(
            fallback.is_none(),
            "ferry serve got a needless fallback tag"
        );
    } else {
        let index = fallback.expect("docker-registry has the fallback tag");
        assert_eq!(index["mediaType"], INDEX_TYPE);
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(listed(&index["manifests"]), expected);
        for entry in index["manifests"].as_array().unwrap() {
            assert_eq!(entry["mediaType"], MANIFEST_TYPE);
        }
    }
}

#[test]
fn attach_and_discover_on_ferry_serve() {
    attach_and_discover(&Registry::ferry());
}

#[test]
fn attach_and_discover_on_docker_registry() {
    let Some(registry) = Registry::distribution() else {
        return;
    };
    attach_and_discover(&registry);
}

#[test]
fn attach_refuses_bad_input_before_pushing() {
    let registry = Registry::ferry();
    let t = setup();
    let model_ref = registry.reference("m:v1");
    let model = t.push_model(&model_ref, 12);
    let file = t.file("a.txt", "a\n");
    let stderr = t.ferry.fails(&[
        "attach",
        &model_ref,
        s(&file),
        "--artifact-type",
        "not-a-media-type",
        "--plain-http",
    ]);
    error_line(&stderr, &["artifact type", "not-a-media-type"]);
    let stderr = t.ferry.fails(&[
        "attach",
        &model_ref,
        s(&file),
        "--artifact-type",
        SBOM,
        "--annotation",
        "novalue",
        "--plain-http",
    ]);
    error_line(&stderr, &["novalue", "KEY=VALUE"]);
    let stderr = t.ferry.fails(&[
        "attach",
        &registry.reference("m:missing"),
        s(&file),
        "--artifact-type",
        SBOM,
        "--plain-http",
    ]);
    error_line(&stderr, &["m:missing", "not found"]);
    let listed = t.discover(&model_ref, &[]);
    assert_eq!(
        listed["referrers"],
        Value::Array(vec![]),
        "nothing was attached"
    );
    assert_eq!(listed["digest"], model.as_str());
}

// ---------------------------------------------------------------------------
// Concurrency on the fallback tag
// ---------------------------------------------------------------------------

#[test]
fn concurrent_attaches_all_land_in_the_fallback_index() {
    const WRITERS: usize = 8;
    let Some(registry) = Registry::distribution() else {
        return;
    };
    let t = setup();
    let model_ref = registry.reference("m:v1");
    let model = t.push_model(&model_ref, 13);
    let files: Vec<PathBuf> = (0..WRITERS)
        .map(|i| t.file(&format!("note-{i}.txt"), &format!("note {i}\n")))
        .collect();
    let children: Vec<KillOnDrop> = files
        .iter()
        .map(|file| {
            KillOnDrop::spawn(t.ferry.command(&[
                "attach",
                &model_ref,
                s(file),
                "--artifact-type",
                "application/vnd.example.note",
                "--plain-http",
                "--json",
            ]))
        })
        .collect();
    let mut digests = BTreeSet::new();
    let mut retried = 0;
    for child in children {
        let output = child.wait();
        assert_success(&output, "concurrent ferry attach");
        let value: Value = serde_json::from_slice(&output.stdout).expect("attach --json");
        assert_eq!(value["fallbackTag"], fallback_tag(&model).as_str());
        if value["fallbackAttempts"].as_u64().is_some_and(|a| a > 1) {
            retried += 1;
        }
        digests.insert(text(&value["digest"]).to_string());
    }
    assert_eq!(
        digests.len(),
        WRITERS,
        "every attach pushed its own manifest"
    );
    eprintln!("{retried} of {WRITERS} writers had to retry the fallback index");

    let index = registry
        .manifest("m", &fallback_tag(&model))
        .expect("the fallback tag exists");
    let in_index: BTreeSet<String> = listed(&index["manifests"])
        .into_iter()
        .map(|(digest, _)| digest)
        .collect();
    assert_eq!(in_index, digests, "a concurrent writer's entry was lost");
    let discovered = t.discover(&model_ref, &[]);
    assert_eq!(
        discovered["referrers"].as_array().map(Vec::len),
        Some(WRITERS)
    );
}

// ---------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------

fn tree_of_referrers(registry: &Registry) {
    let t = setup();
    let model_ref = registry.reference("m:v1");
    let model = t.push_model(&model_ref, 14);
    let sig = t.attach(&model_ref, &t.file("model.sig", "sig\n"), SIGNATURE, &[]);
    let sig_digest = text(&sig["digest"]).to_string();
    let sig_ref = registry.reference(&format!("m@{sig_digest}"));
    let counter = t.attach(
        &sig_ref,
        &t.file("counter.sig", "counter\n"),
        "application/vnd.example.countersignature",
        &[],
    );
    let counter_digest = text(&counter["digest"]).to_string();
    let sbom = t.attach(&model_ref, &t.file("sbom.json", "{}\n"), SBOM, &[]);
    let sbom_digest = text(&sbom["digest"]).to_string();

    let tree = t.discover(&model_ref, &["--tree"]);
    assert_eq!(tree["digest"], model.as_str());
    let top = tree["referrers"].as_array().expect("referrers");
    assert_eq!(top.len(), 2, "{tree}");
    let sig_node = top
        .iter()
        .find(|n| n["digest"] == sig_digest.as_str())
        .expect("the signature is a referrer");
    let sbom_node = top
        .iter()
        .find(|n| n["digest"] == sbom_digest.as_str())
        .expect("the sbom is a referrer");
    let below = sig_node["referrers"].as_array().expect("nested referrers");
    assert_eq!(below.len(), 1, "{tree}");
    assert_eq!(below[0]["digest"], counter_digest.as_str());
    assert_eq!(
        below[0]["artifactType"],
        "application/vnd.example.countersignature"
    );
    assert_eq!(below[0]["referrers"], Value::Array(vec![]));
    assert_eq!(sbom_node["referrers"], Value::Array(vec![]));

    // The drawn tree: the counter-signature hangs one level below the signature.
    let drawn = t
        .ferry
        .ok(&["discover", &model_ref, "--tree", "--plain-http"]);
    let lines: Vec<&str> = drawn.lines().collect();
    assert_eq!(lines.len(), 4, "{drawn}");
    assert_eq!(lines[0], format!("{}/m@{model}", registry.addr));
    let sig_line = lines
        .iter()
        .position(|l| l.contains(&sig_digest))
        .expect("signature line");
    let counter_line = lines[sig_line + 1];
    assert!(counter_line.contains(&counter_digest), "{drawn}");
    assert!(
        counter_line.starts_with("│   └── ") || counter_line.starts_with("    └── "),
        "nested under the signature:\n{drawn}"
    );
    assert!(lines[sig_line].starts_with("├── ") || lines[sig_line].starts_with("└── "));

    // One level only: the signature is flagged as having more below.
    let shallow = t.discover(&model_ref, &["--tree", "--depth", "1"]);
    let sig_node = shallow["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["digest"] == sig_digest.as_str())
        .cloned()
        .expect("the signature is listed");
    assert_eq!(sig_node["referrers"], Value::Array(vec![]));
    assert_eq!(sig_node["truncated"], true);

    // The type filter applies to the first level.
    let only_sig = t.discover(&model_ref, &["--tree", "--artifact-type", SIGNATURE]);
    let top = only_sig["referrers"].as_array().unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0]["referrers"][0]["digest"], counter_digest.as_str());
}

#[test]
fn tree_on_ferry_serve() {
    tree_of_referrers(&Registry::ferry());
}

#[test]
fn tree_on_docker_registry() {
    let Some(registry) = Registry::distribution() else {
        return;
    };
    tree_of_referrers(&registry);
}

// ---------------------------------------------------------------------------
// Multi-platform indexes
// ---------------------------------------------------------------------------

fn index_then_pull(registry: &Registry) {
    let t = setup();
    let amd = t.push_model(&registry.reference("m:amd64"), 21);
    let arm = t.push_model(&registry.reference("m:arm64"), 22);
    let index_ref = registry.reference("m:multi");
    let created = t.ferry.json(&[
        "index",
        "create",
        &index_ref,
        "--manifest",
        &registry.reference("m:amd64"),
        "--manifest",
        &arm, // a bare digest names a manifest of the same repository
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64/v8",
        "--plain-http",
        "--json",
    ]);
    let manifests = created["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["digest"], amd.as_str());
    assert_eq!(manifests[0]["platform"], "linux/amd64");
    assert_eq!(manifests[1]["digest"], arm.as_str());
    assert_eq!(manifests[1]["platform"], "linux/arm64/v8");

    let index = registry
        .manifest("m", "multi")
        .expect("the index is tagged");
    assert_eq!(index["mediaType"], INDEX_TYPE);
    assert_eq!(index["manifests"][1]["platform"]["os"], "linux");
    assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
    assert_eq!(index["manifests"][1]["platform"]["variant"], "v8");
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        sha256(&registry.get("/v2/m/manifests/multi", INDEX_TYPE).1),
        text(&created["digest"])
    );

    for (platform, expected) in [("linux/arm64/v8", &arm), ("linux/amd64", &amd)] {
        let puller = Ferry::new(
            t.dir
                .path()
                .join(format!("pull-{}", platform.replace('/', "-"))),
        );
        let pulled = puller.json(&[
            "pull",
            &index_ref,
            "--platform",
            platform,
            "--plain-http",
            "--json",
        ]);
        assert_eq!(pulled["digest"], expected.as_str(), "platform {platform}");
        assert_eq!(puller.resolve(&index_ref), *expected);
    }
    let puller = Ferry::new(t.dir.path().join("pull-none"));
    let stderr = puller.fails(&[
        "pull",
        &index_ref,
        "--platform",
        "linux/s390x",
        "--plain-http",
    ]);
    error_line(&stderr, &["linux/s390x"]);

    let stderr = t.ferry.fails(&[
        "index",
        "create",
        &registry.reference("m:bad"),
        "--manifest",
        &amd,
        "--manifest",
        &arm,
        "--platform",
        "linux/amd64",
        "--plain-http",
    ]);
    error_line(&stderr, &["--platform", "--manifest"]);
    let stderr = t.ferry.fails(&[
        "index",
        "create",
        &registry.reference("m:bad"),
        "--manifest",
        &amd,
        "--manifest",
        &arm,
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/amd64",
        "--plain-http",
    ]);
    error_line(&stderr, &["linux/amd64"]);
    assert!(
        registry.manifest("m", "bad").is_none(),
        "a refused index was pushed"
    );
}

#[test]
fn index_create_then_pull_on_ferry_serve() {
    index_then_pull(&Registry::ferry());
}

#[test]
fn index_create_then_pull_on_docker_registry() {
    let Some(registry) = Registry::distribution() else {
        return;
    };
    index_then_pull(&registry);
}

// ---------------------------------------------------------------------------
// pack --generic
// ---------------------------------------------------------------------------

/// Files of a generic artifact: nested, plus a hidden file skipped by default.
fn generic_files(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("b.txt"), "bee\n").unwrap();
    fs::write(dir.join("a.txt"), "ay\n").unwrap();
    write_random_file(&dir.join("sub/data.bin"), 200_000, 5);
    fs::write(dir.join(".hidden"), "secret\n").unwrap();
}

#[test]
fn pack_generic_is_reproducible_and_uses_the_empty_config() {
    let t = setup();
    let files = t.dir.path().join("generic");
    generic_files(&files);
    let reference = "localhost:5000/bundle:v1";
    let artifact_type = "application/vnd.example.bundle.v1";
    let pack = |ferry: &Ferry, reference: &str| {
        let stdout = ferry.ok(&[
            "pack",
            "--generic",
            s(&files),
            "-t",
            reference,
            "--artifact-type",
            artifact_type,
        ]);
        parse_pack_line(&stdout, reference)
    };
    let first = pack(&t.ferry, reference);
    let other_store = Ferry::new(t.dir.path().join("store2"));
    assert_eq!(
        pack(&other_store, reference),
        first,
        "same files, same digest"
    );
    assert_eq!(pack(&t.ferry, "localhost:5000/bundle:v2"), first);
    assert_eq!(
        t.ferry.manifest_bytes(reference),
        other_store.manifest_bytes(reference)
    );

    let manifest = t.ferry.manifest(reference);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
    assert_eq!(manifest["artifactType"], artifact_type);
    assert_eq!(
        manifest["config"],
        serde_json::json!({
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": EMPTY_DIGEST,
            "size": 2,
        })
    );
    assert_eq!(
        fs::read(blob_path(&t.ferry.store, EMPTY_DIGEST)).unwrap(),
        b"{}"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    let titles: Vec<&str> = layers
        .iter()
        .map(|l| text(&l["annotations"]["org.opencontainers.image.title"]))
        .collect();
    assert_eq!(titles, vec!["a.txt", "b.txt", "sub/data.bin"]);
    for (layer, title) in layers.iter().zip(&titles) {
        assert_eq!(layer["mediaType"], "application/octet-stream");
        assert_eq!(layer["digest"], sha256_file(&files.join(title)).as_str());
        assert_eq!(
            layer["size"],
            fs::metadata(files.join(title)).unwrap().len()
        );
    }
    // Canonical JSON: compact, keys sorted.
    let bytes = t.ferry.manifest_bytes(reference);
    let reserialized = serde_json::to_vec(&manifest).unwrap();
    assert_eq!(bytes, reserialized);

    let stderr = t
        .ferry
        .fails(&["pack", "--generic", s(&files), "-t", "localhost:5000/x:v1"]);
    error_line(&stderr, &["--artifact-type"]);
    let stderr = t.ferry.fails(&[
        "pack",
        "--generic",
        s(&files),
        "-t",
        "localhost:5000/x:v1",
        "--artifact-type",
        artifact_type,
        "--name",
        "m",
    ]);
    error_line(&stderr, &["--generic"]);
    assert!(!t.ferry.listed().contains_key("localhost:5000/x:v1"));
}

#[test]
fn wasm_module_with_config_in_a_platform_index() {
    let registry = Registry::ferry();
    let t = setup();
    let files = t.dir.path().join("wasm");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let config = files.join("module.json");
    fs::write(&config, "{\"architecture\":\"wasm\",\"os\":\"wasip1\"}").unwrap();
    let reference = registry.reference("wasm:v1");
    let layer_type = "application/vnd.wasm.content.layer.v1+wasm";
    let config_type = "application/vnd.wasm.config.v0+json";
    let packed = t.ferry.json(&[
        "pack",
        "--generic",
        s(&files),
        "-t",
        &reference,
        "--config",
        &format!("{}:{config_type}", s(&config)),
        "--artifact-type",
        layer_type,
        "--media-type",
        layer_type,
        "--json",
    ]);
    let digest = text(&packed["digest"]).to_string();
    let manifest = t.ferry.manifest(&reference);
    assert_eq!(manifest["config"]["mediaType"], config_type);
    assert_eq!(manifest["config"]["digest"], sha256_file(&config).as_str());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the config file is not also a layer");
    assert_eq!(layers[0]["mediaType"], layer_type);
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "module.wasm"
    );

    t.ferry.ok(&["push", &reference, "--plain-http", "-q"]);
    let index_ref = registry.reference("wasm:multi");
    t.ferry.ok(&[
        "index",
        "create",
        &index_ref,
        "--manifest",
        &reference,
        "--platform",
        "wasip1/wasm",
        "--plain-http",
    ]);
    let puller = Ferry::new(t.dir.path().join("pull"));
    let pulled = puller.json(&[
        "pull",
        &index_ref,
        "--platform",
        "wasip1/wasm",
        "--plain-http",
        "--json",
    ]);
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(
        fs::read(blob_path(&puller.store, &sha256_file(&config))).unwrap(),
        fs::read(&config).unwrap()
    );
    puller.fails(&[
        "pull",
        &index_ref,
        "--platform",
        "linux/amd64",
        "--plain-http",
    ]);
}
