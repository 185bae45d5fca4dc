//! `ferry copy` (registries, `oci:` layouts, `oci-archive:` tarballs),
//! `ferry pull --extract`, `ferry fetch` and `ferry pack --push`, against
//! `ferry serve` (and Debian's docker-registry 2.8, which has no referrers
//! API, where it is installed), with skopeo reading ferry's layouts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const SIGNATURE: &str = "application/vnd.example.signature.v1";

// ---------------------------------------------------------------------------
// Registries
// ---------------------------------------------------------------------------

/// A registry process on a free loopback port with its output in a log
/// file; killed and reaped when dropped.
struct Registry {
    /// `127.0.0.1:PORT`.
    addr: String,
    child: Child,
    log: PathBuf,
    /// Where `ferry serve` keeps blobs (`None` for docker-registry).
    storage: Option<PathBuf>,
    _dir: TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `ferry serve`, logging every request (tower_http at debug).
    fn ferry() -> Registry {
        Registry::start(true, |dir, addr| {
            let mut cmd = Command::new(FERRY);
            cmd.arg("serve")
                .arg("--root")
                .arg(dir.join("registry"))
                .arg("--addr")
                .arg(addr)
                .env("RUST_LOG", "warn,tower_http=debug")
                .env("NO_COLOR", "1");
            cmd
        })
    }

    /// docker-registry; `None` (after a note) when it is not installed,
    /// except under `CI=true`.
    fn distribution() -> Option<Registry> {
        if !require(
            "docker-registry (Debian's distribution 2.8)",
            Path::new(DOCKER_REGISTRY).is_file(),
        ) {
            return None;
        }
        Some(Registry::start(false, |dir, addr| {
            let config = dir.join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                    s(&dir.join("storage"))
                ),
            )
            .expect("write docker-registry config");
            let mut cmd = Command::new(DOCKER_REGISTRY);
            cmd.arg("serve").arg(&config);
            cmd
        }))
    }

    fn start(ferry: bool, make: impl Fn(&Path, &str) -> Command) -> Registry {
        for _ in 0..5 {
            let dir = tempdir();
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let log = dir.path().join("registry.log");
            let file = File::create(&log).expect("create registry log");
            let mut cmd = make(dir.path(), &addr);
            cmd.stdin(Stdio::null())
                .stdout(file.try_clone().expect("clone log handle"))
                .stderr(file);
            let child = cmd.spawn().expect("start the registry");
            let mut registry = Registry {
                addr,
                child,
                log,
                storage: ferry.then(|| dir.path().join("registry")),
                _dir: dir,
            };
            if registry.wait_ready() {
                return registry;
            }
            eprintln!("registry did not start:\n{}", registry.log_text());
        }
        panic!("the registry did not start on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if http_get(&self.addr, "/v2/", "*/*").is_some_and(|(status, _)| status == 200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ADDR/rest`.
    fn reference(&self, rest: &str) -> String {
        format!("{}/{rest}", self.addr)
    }

    /// Requests `ferry serve` has logged whose line contains every needle.
    fn logged_requests(&self, needles: &[&str]) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("started processing request"))
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// A manifest or index as JSON; `None` on 404.
    fn document(&self, repository: &str, reference: &str) -> Option<Value> {
        let (status, body) = http_get(
            &self.addr,
            &format!("/v2/{repository}/manifests/{reference}"),
            &format!("{MANIFEST_TYPE}, {INDEX_TYPE}"),
        )
        .expect("the registry answers");
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        Some(serde_json::from_slice(&body).expect("JSON"))
    }

    /// Digests the referrers API lists for `subject`.
    fn referrers(&self, repository: &str, subject: &str) -> BTreeSet<String> {
        let (status, body) = http_get(
            &self.addr,
            &format!("/v2/{repository}/referrers/{subject}"),
            INDEX_TYPE,
        )
        .expect("the registry answers");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let index: Value = serde_json::from_slice(&body).expect("JSON");
        digests_of(&index["manifests"])
    }

    /// Where `ferry serve` keeps the content of `digest`.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let storage = self.storage.as_ref().expect("a ferry serve registry");
        storage
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn digests_of(entries: &Value) -> BTreeSet<String> {
    entries
        .as_array()
        .expect("an array of descriptors")
        .iter()
        .map(|e| e["digest"].as_str().expect("a digest").to_string())
        .collect()
}

/// A model with what round trips must keep: nested folders, an executable
/// script, a private file, a weight file and a config.
fn model(dir: &Path, seed: u64) {
    tiny_model(dir, seed);
    fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    fs::write(
        dir.join("1_Pooling/config.json"),
        format!("{{\"pooling\":{seed}}}\n"),
    )
    .unwrap();
    let script = dir.join("run.sh");
    fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let private = dir.join("notes.txt");
    fs::write(&private, "keep this to the group\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
}

/// One test's scratch space: a store, a model packed and pushed.
struct Setup {
    dir: TempDir,
    ferry: Ferry,
    model: PathBuf,
}

impl Setup {
    fn new(seed: u64) -> Setup {
        let dir = tempdir();
        let ferry = Ferry::new(dir.path().join("store"));
        let model_dir = dir.path().join("model");
        model(&model_dir, seed);
        Setup {
            dir,
            ferry,
            model: model_dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Packs the model as `reference` and pushes it; returns its digest.
    fn push(&self, reference: &str) -> String {
        let digest = self.ferry.pack(&self.model, reference);
        self.ferry.ok(&["push", reference, "--plain-http", "-q"]);
        digest
    }

    /// `ferry copy SRC DST --json` plus `extra`.
    fn copy(&self, source: &str, destination: &str, extra: &[&str]) -> Value {
        let mut args = vec!["copy", source, destination, "--plain-http", "--json"];
        args.extend_from_slice(extra);
        self.ferry.json(&args)
    }

    /// Every blob of the packed artifact `reference`: manifest, config, layers.
    fn artifact_blobs(&self, reference: &str) -> BTreeSet<String> {
        let manifest = self.ferry.manifest(reference);
        let mut blobs = BTreeSet::from([self.ferry.resolve(reference)]);
        blobs.insert(manifest["config"]["digest"].as_str().unwrap().to_string());
        for layer in manifest["layers"].as_array().unwrap() {
            blobs.insert(layer["digest"].as_str().unwrap().to_string());
        }
        blobs
    }

    /// The digest of the layer whose file path is `path`.
    fn layer_digest(&self, reference: &str, path: &str) -> String {
        let manifest = self.ferry.manifest(reference);
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["annotations"]["org.cncf.model.filepath"] == path)
            .unwrap_or_else(|| panic!("no layer for {path}"))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// `sha256:<name>` of every blob file in a layout.
fn layout_blobs(layout: &Path) -> BTreeSet<String> {
    names(&layout.join("blobs/sha256"))
        .into_iter()
        .map(|n| format!("sha256:{n}"))
        .collect()
}

fn layout_index(layout: &Path) -> Value {
    serde_json::from_slice(&fs::read(layout.join("index.json")).expect("read index.json"))
        .expect("index.json is JSON")
}

/// Replaces a file's bytes with others of the same length.
fn corrupt(path: &Path) {
    let mut bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for b in bytes.iter_mut().take(16) {
        *b ^= 0xff;
    }
    let mode = fs::metadata(path).unwrap().permissions();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(path, &bytes).unwrap();
    fs::set_permissions(path, mode).unwrap();
}

/// Entries in `dir` whose name starts with `prefix`.
fn leftovers(dir: &Path, prefix: &str) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

// ---------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------

#[test]
fn copy_round_trips_through_a_layout_and_an_archive() {
    let registry = Registry::ferry();
    let t = Setup::new(31);
    let source_ref = registry.reference("m:v1");
    let digest = t.push(&source_ref);
    let blobs = t.artifact_blobs(&source_ref);

    // registry -> oci:DIR:TAG
    let layout = t.path("layout");
    let target = format!("oci:{}:v1", s(&layout));
    let copied = t.copy(&source_ref, &target, &[]);
    assert_eq!(copied["digest"], digest.as_str());
    assert_eq!(copied["destination"], target.as_str());
    assert_eq!(copied["blobs"]["sent"], blobs.len() - 1, "{copied}");
    assert_eq!(
        layout_blobs(&layout),
        blobs,
        "the layout holds exactly the artifact"
    );
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = layout_index(&layout);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let leftover: Vec<String> = names(&layout)
        .into_iter()
        .filter(|n| !["blobs", "index.json", "oci-layout"].contains(&n.as_str()))
        .collect();
    assert!(
        leftover.is_empty(),
        "temporary or lock files left: {leftover:?}"
    );
    for blob in &blobs {
        let ours = fs::read(blob_path(&t.ferry.store, blob)).unwrap();
        let copied = fs::read(layout.join("blobs/sha256").join(&blob[7..])).unwrap();
        assert!(ours == copied, "blob {blob} differs in the layout");
    }

    // oci:DIR:TAG -> oci-archive:FILE
    let archive = t.path("out/m.tar");
    let copied = t.copy(&target, &format!("oci-archive:{}", s(&archive)), &[]);
    assert_eq!(copied["digest"], digest.as_str());
    assert!(archive.is_file());
    assert!(
        leftovers(archive.parent().unwrap(), ".ferry-archive-").is_empty(),
        "no temporary archive remains"
    );
    let listing = run(Command::new("tar").arg("-tf").arg(&archive));
    assert_success(&listing, "tar -tf");
    let listed: BTreeSet<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        listed.contains("oci-layout") && listed.contains("index.json"),
        "{listed:?}"
    );
    for blob in &blobs {
        assert!(
            listed.contains(&format!("blobs/sha256/{}", &blob[7..])),
            "{blob} in {listed:?}"
        );
    }

    // oci-archive:FILE:TAG -> another repository; then pull and extract.
    let other_ref = registry.reference("other/m:v2");
    let copied = t.copy(&format!("oci-archive:{}:v1", s(&archive)), &other_ref, &[]);
    assert_eq!(copied["digest"], digest.as_str());
    let fresh = Ferry::new(t.path("fresh-store"));
    let pulled = fresh.json(&["pull", &other_ref, "--plain-http", "--json"]);
    assert_eq!(pulled["digest"], digest.as_str());
    let out = t.path("extracted");
    fresh.ok(&["extract", &other_ref, s(&out)]);
    assert_same_tree(&files_only(tree(&t.model)), &files_only(tree(&out)));

    // An archive imported into a store (its layout, its locks) is usable there.
    let importer = Ferry::new(t.path("import-store"));
    importer.ok(&["ls"]);
    let imported_ref = registry.reference("imported/m:v1");
    t.copy(
        &format!("oci-archive:{}:v1", s(&archive)),
        &format!("oci:{}/artifacts:{imported_ref}", s(&importer.store)),
        &[],
    );
    assert_eq!(importer.listed()[&imported_ref], digest);
    assert!(!importer.store.join("artifacts/index.lock").exists());
    let out = t.path("imported");
    importer.ok(&["extract", &imported_ref, s(&out)]);
    assert_same_tree(&files_only(tree(&t.model)), &files_only(tree(&out)));
    importer.ok(&["fsck"]);

    // ferry's own store is a layout whose names are full references.
    let from_store = format!("oci:{}/artifacts:{source_ref}", s(&t.ferry.store));
    let layout2 = t.path("layout2");
    let copied = t.copy(&from_store, &format!("oci:{}", s(&layout2)), &[]);
    assert_eq!(copied["digest"], digest.as_str());
    let index = layout_index(&layout2);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        source_ref.as_str(),
        "without a tag, the source's name is kept"
    );
}

#[test]
fn skopeo_reads_what_copy_writes() {
    if !require_skopeo() {
        return;
    }
    let registry = Registry::ferry();
    let t = Setup::new(32);
    let source_ref = registry.reference("m:v1");
    let digest = t.push(&source_ref);
    let manifest = t.ferry.manifest_bytes(&source_ref);

    let layout = t.path("layout");
    t.copy(&source_ref, &format!("oci:{}:v1", s(&layout)), &[]);
    let archive = t.path("m.tar");
    t.copy(
        &format!("oci:{}:v1", s(&layout)),
        &format!("oci-archive:{}", s(&archive)),
        &[],
    );
    for location in [
        format!("oci:{}:v1", s(&layout)),
        format!("oci-archive:{}:v1", s(&archive)),
    ] {
        let output = run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(&location));
        assert_success(&output, &format!("skopeo inspect --raw {location}"));
        assert!(
            output.stdout == manifest,
            "skopeo sees other bytes at {location}"
        );
        assert_eq!(sha256(&output.stdout), digest);
    }
    // skopeo can copy every blob out of ferry's layout.
    let theirs = t.path("skopeo-layout");
    let output = run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:v1", s(&layout)))
        .arg(format!("oci:{}:m", s(&theirs))));
    assert_success(&output, "skopeo copy");
    assert_eq!(layout_blobs(&theirs), layout_blobs(&layout));
}

#[test]
fn copy_between_repositories_of_one_registry_mounts_every_blob() {
    let registry = Registry::ferry();
    let t = Setup::new(33);
    let source_ref = registry.reference("team/m:v1");
    let digest = t.push(&source_ref);
    let blob_count = t.artifact_blobs(&source_ref).len() - 1;

    let target_ref = registry.reference("other/m:v1");
    let copied = t.copy(&source_ref, &target_ref, &[]);
    assert_eq!(copied["digest"], digest.as_str());
    assert_eq!(copied["blobs"]["mounted"], blob_count, "{copied}");
    assert_eq!(copied["blobs"]["sent"], 0, "{copied}");
    assert_eq!(copied["sentBytes"], 0, "{copied}");
    assert_eq!(
        registry.logged_requests(&["method=PATCH", "uri=/v2/other/m/"]),
        0,
        "no bytes were uploaded to the target repository"
    );
    assert_eq!(
        registry.logged_requests(&["method=POST", "uri=/v2/other/m/blobs/uploads/?mount="]),
        blob_count
    );
    let manifest = registry
        .document("other/m", "v1")
        .expect("the copy is tagged");
    assert_eq!(
        manifest["layers"],
        t.ferry.manifest(&source_ref)["layers"],
        "the same layers"
    );

    // A second copy finds everything there.
    let again = t.copy(&source_ref, &target_ref, &[]);
    assert_eq!(again["blobs"]["present"], blob_count, "{again}");
}

#[test]
fn recursive_copy_brings_referrers_along() {
    let registry = Registry::ferry();
    let t = Setup::new(34);
    let source_ref = registry.reference("m:v1");
    let digest = t.push(&source_ref);
    let signature = t.path("model.sig");
    fs::write(&signature, "signature bytes\n").unwrap();
    let attached = t.ferry.json(&[
        "attach",
        &source_ref,
        s(&signature),
        "--artifact-type",
        SIGNATURE,
        "--plain-http",
        "--json",
    ]);
    let referrer = attached["digest"].as_str().unwrap().to_string();

    // Without --recursive, only the artifact moves.
    let plain = t.copy(&source_ref, &registry.reference("plain:v1"), &[]);
    assert_eq!(plain["referrers"], 0);
    assert!(registry.referrers("plain", &digest).is_empty());

    // registry -> registry
    let deep = t.copy(
        &source_ref,
        &registry.reference("deep:v1"),
        &["--recursive"],
    );
    assert_eq!(deep["referrers"], 1, "{deep}");
    assert_eq!(
        registry.referrers("deep", &digest),
        BTreeSet::from([referrer.clone()])
    );

    // registry -> layout: the referrer is an unnamed entry of index.json.
    let layout = t.path("layout");
    t.copy(&source_ref, &format!("oci:{}:v1", s(&layout)), &["-r"]);
    let index = layout_index(&layout);
    assert_eq!(
        digests_of(&index["manifests"]),
        BTreeSet::from([digest.clone(), referrer.clone()])
    );
    let unnamed: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["annotations"]["org.opencontainers.image.ref.name"].is_null())
        .collect();
    assert_eq!(unnamed.len(), 1);
    assert_eq!(unnamed[0]["digest"], referrer.as_str());
    assert_eq!(unnamed[0]["artifactType"], SIGNATURE);
    // The signature's own blob came along.
    let signature_blob = sha256(b"signature bytes\n");
    assert!(layout_blobs(&layout).contains(&signature_blob));

    // layout -> archive -> registry keeps it.
    let archive = t.path("m.tar");
    t.copy(
        &format!("oci:{}:v1", s(&layout)),
        &format!("oci-archive:{}", s(&archive)),
        &["-r"],
    );
    let back = t.copy(
        &format!("oci-archive:{}:v1", s(&archive)),
        &registry.reference("back:v1"),
        &["--recursive"],
    );
    assert_eq!(back["referrers"], 1, "{back}");
    assert_eq!(
        registry.referrers("back", &digest),
        BTreeSet::from([referrer.clone()])
    );

    // A registry without the referrers API gets the fallback tag.
    let Some(distribution) = Registry::distribution() else {
        return;
    };
    let copied = t.copy(&source_ref, &distribution.reference("m:v1"), &["-r"]);
    assert_eq!(copied["referrers"], 1, "{copied}");
    let fallback = distribution
        .document("m", &digest.replacen(':', "-", 1))
        .expect("the fallback tag exists");
    assert_eq!(fallback["mediaType"], INDEX_TYPE);
    assert_eq!(
        digests_of(&fallback["manifests"]),
        BTreeSet::from([referrer.clone()])
    );
    // And a copy back out of it finds the referrer through that tag.
    let round = t.copy(
        &distribution.reference("m:v1"),
        &registry.reference("round:v1"),
        &["-r"],
    );
    assert_eq!(round["referrers"], 1, "{round}");
    assert_eq!(
        registry.referrers("round", &digest),
        BTreeSet::from([referrer])
    );
}

#[test]
fn copy_refuses_corrupt_sources_and_leaves_nothing_behind() {
    let registry = Registry::ferry();
    let t = Setup::new(35);
    let source_ref = registry.reference("m:v1");
    t.push(&source_ref);
    let layout = t.path("layout");
    t.copy(&source_ref, &format!("oci:{}:v1", s(&layout)), &[]);
    let weights = t.layer_digest(&source_ref, "weights.bin");
    corrupt(&layout.join("blobs/sha256").join(&weights[7..]));

    // Into an archive: no archive, no temporary file.
    let out = t.path("out");
    fs::create_dir(&out).unwrap();
    let archive = out.join("m.tar");
    let stderr = t.ferry.fails(&[
        "copy",
        &format!("oci:{}:v1", s(&layout)),
        &format!("oci-archive:{}", s(&archive)),
    ]);
    error_line(&stderr, &[&weights, "hashes to"]);
    assert!(
        names(&out).is_empty(),
        "left in {}: {:?}",
        out.display(),
        names(&out)
    );

    // Into another layout: the bad blob never lands.
    let layout2 = t.path("layout2");
    let stderr = t.ferry.fails(&[
        "copy",
        &format!("oci:{}:v1", s(&layout)),
        &format!("oci:{}:v1", s(&layout2)),
        "--concurrency",
        "1",
    ]);
    error_line(&stderr, &[&weights]);
    assert!(!layout_blobs(&layout2).contains(&weights));
    assert!(
        leftovers(&layout2, "blob-").is_empty(),
        "temporary blobs left"
    );
    let index = layout_index(&layout2);
    assert!(
        index["manifests"].as_array().unwrap().is_empty(),
        "nothing named"
    );

    // Into a registry: the tag never appears.
    let stderr = t.ferry.fails(&[
        "copy",
        &format!("oci:{}:v1", s(&layout)),
        &registry.reference("bad:v1"),
        "--plain-http",
    ]);
    error_line(&stderr, &[&weights]);
    assert!(registry.document("bad", "v1").is_none());

    // Names that are not there: nothing is created at the destination.
    let nowhere = t.path("nowhere");
    let target = format!("oci:{}", s(&nowhere));
    let stderr = t
        .ferry
        .fails(&["copy", &format!("oci:{}:nope", s(&layout)), &target]);
    error_line(&stderr, &["nope", "v1"]);
    let stderr = t
        .ferry
        .fails(&["copy", &format!("oci:{}", s(&t.path("missing"))), &target]);
    error_line(&stderr, &["missing"]);
    let not_tar = t.path("not.tar");
    fs::write(&not_tar, "plain text").unwrap();
    let stderr = t
        .ferry
        .fails(&["copy", &format!("oci-archive:{}", s(&not_tar)), &target]);
    error_line(&stderr, &["not.tar", "OCI layout archive"]);
    assert!(
        !nowhere.exists(),
        "a failed copy created {}",
        nowhere.display()
    );
}

#[test]
fn copy_carries_an_index_with_its_manifests() {
    let registry = Registry::ferry();
    let t = Setup::new(39);
    let amd = registry.reference("m:amd64");
    let first = t.push(&amd);
    fs::write(t.model.join("README.md"), "# another build\n").unwrap();
    let arm = registry.reference("m:arm64");
    let second = t.push(&arm);
    assert_ne!(first, second);
    let multi = registry.reference("m:multi");
    let created = t.ferry.json(&[
        "index",
        "create",
        &multi,
        "-m",
        &amd,
        "-m",
        &arm,
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--plain-http",
        "--json",
    ]);
    let index_digest = created["digest"].as_str().unwrap().to_string();
    let mut expected = t.artifact_blobs(&amd);
    expected.extend(t.artifact_blobs(&arm));
    expected.insert(index_digest.clone());

    let layout = t.path("layout");
    let copied = t.copy(&multi, &format!("oci:{}:multi", s(&layout)), &[]);
    assert_eq!(copied["digest"], index_digest.as_str());
    assert_eq!(copied["mediaType"], INDEX_TYPE);
    assert_eq!(
        copied["manifests"], 3,
        "the index and both manifests: {copied}"
    );
    assert_eq!(layout_blobs(&layout), expected);
    let index = layout_index(&layout);
    assert_eq!(index["manifests"][0]["mediaType"], INDEX_TYPE);
    assert_eq!(index["manifests"][0]["digest"], index_digest.as_str());

    // Back to another repository: each child manifest is there by digest.
    let copied = t.copy(
        &format!("oci:{}:multi", s(&layout)),
        &registry.reference("copy:multi"),
        &[],
    );
    assert_eq!(copied["digest"], index_digest.as_str());
    for digest in [&first, &second] {
        let manifest = registry
            .document("copy", digest)
            .unwrap_or_else(|| panic!("child {digest} was copied"));
        assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
    }
    let served = registry
        .document("copy", "multi")
        .expect("the index is tagged");
    assert_eq!(
        digests_of(&served["manifests"]),
        BTreeSet::from([first, second])
    );
}

// ---------------------------------------------------------------------------
// pull --extract and fetch
// ---------------------------------------------------------------------------

#[test]
fn pull_extract_writes_files_with_modes_and_stores_nothing() {
    let registry = Registry::ferry();
    let t = Setup::new(36);
    let reference = registry.reference("m:v1");
    let digest = t.push(&reference);

    let store = t.path("untouched-store");
    let puller = Ferry::new(&store);
    let out = t.path("out");
    let pulled = puller.json(&[
        "pull",
        &reference,
        "--extract",
        s(&out),
        "--plain-http",
        "--json",
    ]);
    assert_eq!(pulled["digest"], digest.as_str());
    let expected = files_only(tree(&t.model));
    assert!(matches!(expected["run.sh"], Node::File { mode: 0o755, .. }));
    assert!(matches!(
        expected["notes.txt"],
        Node::File { mode: 0o640, .. }
    ));
    assert_same_tree(&expected, &files_only(tree(&out)));
    assert!(
        !store.exists(),
        "pull --extract created {}",
        store.display()
    );

    // A non-empty target needs --force.
    let stderr = puller.fails(&["pull", &reference, "--extract", s(&out), "--plain-http"]);
    error_line(&stderr, &[s(&out), "--force"]);
    puller.ok(&[
        "pull",
        &reference,
        "--extract",
        s(&out),
        "--force",
        "--plain-http",
        "-q",
    ]);
    assert_same_tree(&expected, &files_only(tree(&out)));

    // Content that does not match its digest leaves nothing.
    let weights = t.layer_digest(&reference, "weights.bin");
    corrupt(&registry.blob_file(&weights));
    let bad = t.path("bad");
    let stderr = puller.fails(&["pull", &reference, "--extract", s(&bad), "--plain-http"]);
    error_line(&stderr, &[&weights]);
    assert!(
        !bad.exists(),
        "a failed pull --extract created {}",
        bad.display()
    );
    assert!(leftovers(t.dir.path(), ".ferry-extract-").is_empty());
    assert!(!store.exists());
}

#[test]
fn fetch_downloads_only_the_layers_asked_for() {
    let registry = Registry::ferry();
    let t = Setup::new(37);
    let reference = registry.reference("m:v1");
    t.push(&reference);
    let layers = t.ferry.manifest(&reference)["layers"]
        .as_array()
        .unwrap()
        .len();
    assert!(layers >= 5, "the model has several layers");
    let blob_gets =
        |registry: &Registry| registry.logged_requests(&["method=GET", "uri=/v2/m/blobs/"]);
    let before = blob_gets(&registry);

    let out = t.path("one");
    let fetched = t.ferry.json(&[
        "fetch",
        &reference,
        "--include",
        "weights.bin",
        "-o",
        s(&out),
        "--plain-http",
        "--json",
    ]);
    assert_eq!(fetched["layers"], serde_json::json!(["weights.bin"]));
    assert_eq!(fetched["skippedLayers"], layers - 1);
    assert_eq!(
        files_only(tree(&out)),
        BTreeMap::from([(
            "weights.bin".to_string(),
            tree(&t.model)["weights.bin"].clone()
        )])
    );
    assert_eq!(
        blob_gets(&registry) - before,
        2,
        "exactly the layer asked for and the config (for its diffIds) were downloaded"
    );

    // A glob without '/' matches names at any depth; `**` crosses folders.
    let out = t.path("json");
    let fetched = t.ferry.json(&[
        "fetch",
        &reference,
        "--include",
        "*.json",
        "-o",
        s(&out),
        "--plain-http",
        "--json",
    ]);
    let got: BTreeSet<String> = files_only(tree(&out)).into_keys().collect();
    assert_eq!(
        got,
        BTreeSet::from([
            "config.json".to_string(),
            "1_Pooling/config.json".to_string()
        ]),
        "{fetched}"
    );

    // By category.
    let out = t.path("docs");
    t.ferry.ok(&[
        "fetch",
        &reference,
        "--category",
        "doc",
        "-o",
        s(&out),
        "--plain-http",
        "-q",
    ]);
    let got: BTreeSet<String> = files_only(tree(&out)).into_keys().collect();
    assert!(got.contains("README.md"), "{got:?}");
    assert!(!got.contains("weights.bin"), "{got:?}");

    // The filters add up: files matching either come (the README's example).
    let out = t.path("either");
    t.ferry.ok(&[
        "fetch",
        &reference,
        "--include",
        "*.json",
        "--category",
        "weight",
        "-o",
        s(&out),
        "--plain-http",
        "-q",
    ]);
    let got: BTreeSet<String> = files_only(tree(&out)).into_keys().collect();
    assert!(
        got.contains("config.json") && got.contains("weights.bin"),
        "{got:?}"
    );
    assert!(!got.contains("README.md"), "{got:?}");

    // Nothing matching is an error, and writes nothing.
    let none = t.path("none");
    let stderr = t.ferry.fails(&[
        "fetch",
        &reference,
        "--include",
        "*.nothing",
        "--category",
        "dataset",
        "-o",
        s(&none),
        "--plain-http",
    ]);
    error_line(&stderr, &["*.nothing", "dataset"]);
    assert!(!none.exists());
    // A filter is required.
    let stderr = t.ferry.fails(&["fetch", &reference, "-o", s(&none)]);
    assert!(stderr.contains("--include"), "{stderr}");
}

// ---------------------------------------------------------------------------
// pack --push
// ---------------------------------------------------------------------------

#[test]
fn pack_push_gives_the_digest_local_pack_gives() {
    let registry = Registry::ferry();
    let t = Setup::new(38);
    // Larger than a few channel chunks, so the upload streams under backpressure.
    write_random_file(&t.model.join("model.safetensors"), 5 * 1024 * 1024 + 17, 38);
    let pusher = Ferry::new(t.path("push-store"));
    for (tag, extra) in [
        ("raw", vec![]),
        ("tar", vec!["--layer-format", "tar"]),
        ("bundled", vec!["--bundle-small", "1KiB"]),
    ] {
        let reference = registry.reference(&format!("m:{tag}"));
        let mut local_args = vec!["pack", s(&t.model), "-t", &reference];
        local_args.extend_from_slice(&extra);
        let local = parse_pack_line(&t.ferry.ok(&local_args), &reference);

        let mut push_args = vec![
            "pack",
            s(&t.model),
            "-t",
            &reference,
            "--push",
            "--plain-http",
            "--json",
        ];
        push_args.extend_from_slice(&extra);
        let pushed = pusher.json(&push_args);
        assert_eq!(pushed["digest"], local.as_str(), "{tag}: {pushed}");
        assert!(!pusher.store.exists(), "pack --push stored something");

        // The registry serves exactly the bytes of the local pack.
        let served = registry
            .document("m", tag)
            .unwrap_or_else(|| panic!("{tag} was pushed"));
        assert_eq!(served, t.ferry.manifest(&reference), "{tag}");
        let (status, bytes) = http_get(
            &registry.addr,
            &format!("/v2/m/manifests/{local}"),
            MANIFEST_TYPE,
        )
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(sha256(&bytes), local);
        for blob in t.artifact_blobs(&reference) {
            let (status, bytes) =
                http_get(&registry.addr, &format!("/v2/m/blobs/{blob}"), "*/*").unwrap();
            assert_eq!(status, 200, "{tag}: blob {blob}");
            assert_eq!(
                bytes,
                fs::read(blob_path(&t.ferry.store, &blob)).unwrap(),
                "{tag}: blob {blob}"
            );
        }
    }
    // And it extracts to the model.
    let out = t.path("out");
    pusher.ok(&[
        "pull",
        &registry.reference("m:tar"),
        "--extract",
        s(&out),
        "--plain-http",
        "-q",
    ]);
    assert_same_tree(&files_only(tree(&t.model)), &files_only(tree(&out)));
    assert!(!pusher.store.exists());
}

#[test]
fn new_commands_explain_themselves() {
    let ferry = Ferry::new(tempdir().path().join("store"));
    for (command, needles) in [
        (
            "copy",
            vec![
                "oci:PATH",
                "oci-archive:FILE",
                "--recursive",
                "--plain-http",
                "--json",
            ],
        ),
        (
            "fetch",
            vec!["--include", "--category", "--output", "--json"],
        ),
        ("pull", vec!["--extract", "--force"]),
        ("pack", vec!["--push", "--concurrency"]),
    ] {
        let help = ferry.ok(&[command, "--help"]);
        for needle in needles {
            assert!(
                help.contains(needle),
                "`ferry {command} --help` lacks {needle}:\n{help}"
            );
        }
    }
}
