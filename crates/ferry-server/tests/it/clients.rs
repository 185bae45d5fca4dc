//! Real clients against the server: skopeo and the Python oras client.
//! Missing tools fail the test under `CI=true` and skip it elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// Runs a command off the async runtime; panics with its output on failure.
async fn run(program: &str, args: Vec<String>, dir: Option<PathBuf>) -> String {
    let program = program.to_string();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(&program);
        command.args(&args).stdin(Stdio::null());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------
// A hand-built OCI layout: ustar + stored-deflate gzip, no tools needed.
// ---------------------------------------------------------------------------

fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        header[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| b as u32).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// gzip with stored (uncompressed) deflate blocks: valid, deterministic.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let blocks: Vec<&[u8]> = bytes.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    if blocks.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    out.extend_from_slice(&crc32(bytes).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({"digest": digest, "size": bytes.len()})
    }

    fn descriptor(&self, media_type: &str, bytes: &[u8]) -> Value {
        let mut d = self.blob(bytes);
        d["mediaType"] = json!(media_type);
        d
    }

    /// An image with two gzip layers; returns its descriptor.
    fn image(&self, arch: &str, seed: u64) -> Value {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for n in 0..2 {
            let content = random_bytes(20_000 + n * 777, seed + n as u64);
            let text = format!("{arch} layer {n}\n");
            let tar = tar(&[
                (&format!("data-{n}.bin"), &content[..]),
                (&format!("note-{n}.txt"), text.as_bytes()),
            ]);
            diff_ids.push(sha256(&tar));
            layers.push(self.descriptor(LAYER, &gzip(&tar)));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": self.descriptor(CONFIG, &config),
            "layers": layers,
            "annotations": {"org.example.arch": arch},
        }))
        .unwrap();
        let mut d = self.descriptor(MANIFEST, &manifest);
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    }

    fn write_index(&self, refs: &[(&str, Value)]) {
        let manifests: Vec<Value> = refs
            .iter()
            .map(|(name, d)| {
                let mut d = d.clone();
                d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// Every blob in the layout by digest.
    fn blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for alg in std::fs::read_dir(dir.join("blobs")).unwrap() {
            let alg = alg.unwrap();
            for entry in std::fs::read_dir(alg.path()).unwrap() {
                let entry = entry.unwrap();
                out.insert(
                    format!(
                        "{}:{}",
                        alg.file_name().to_string_lossy(),
                        entry.file_name().to_string_lossy()
                    ),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
        out
    }

    fn ref_digest(dir: &Path, name: &str) -> String {
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {index}"))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_in_and_out_byte_identical() {
    if !require("skopeo", command_works("skopeo", &["--version"])) {
        return;
    }
    let server = Server::start().await;
    let work = tempfile::tempdir().unwrap();
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let src = work.path().join("src");
    let layout = Layout::new(&src);
    let amd64 = layout.image("amd64", 1300);
    let arm64 = layout.image("arm64", 1310);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": INDEX,
        "manifests": [amd64.clone(), arm64.clone()],
    }))
    .unwrap();
    let index_desc = layout.descriptor(INDEX, &index);
    layout.write_index(&[("v1", amd64.clone()), ("multi", index_desc.clone())]);

    let host = server.addr.to_string();
    let skopeo = |args: &[&str]| {
        let mut all = vec!["--policy".to_string(), policy.display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let oci = |dir: &Path, name: &str| format!("oci:{}:{name}", dir.display());

    // Push the single image and the index (all platforms).
    run(
        "skopeo",
        skopeo(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &oci(&src, "v1"),
            &format!("docker://{host}/skopeo/img:v1"),
        ]),
        None,
    )
    .await;
    run(
        "skopeo",
        skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &oci(&src, "multi"),
            &format!("docker://{host}/skopeo/img:multi"),
        ]),
        None,
    )
    .await;

    // What the registry holds is byte-identical to the layout.
    let source_blobs = Layout::blobs(&src);
    let response = server.get("/v2/skopeo/img/manifests/v1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), MANIFEST);
    assert_eq!(
        response.bytes().await.unwrap(),
        source_blobs[amd64["digest"].as_str().unwrap()]
    );
    let response = server.get("/v2/skopeo/img/manifests/multi").await;
    assert_eq!(header(&response, "content-type"), INDEX);
    assert_eq!(response.bytes().await.unwrap(), index);
    let raw = run(
        "skopeo",
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/skopeo/img:multi"),
        ]),
        None,
    )
    .await;
    assert_eq!(raw.as_bytes(), index);
    let tags = run(
        "skopeo",
        skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{host}/skopeo/img"),
        ]),
        None,
    )
    .await;
    let tags: Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"], json!(["multi", "v1"]));

    // Registry to registry (blob mounts), then back out to a new layout.
    run(
        "skopeo",
        skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{host}/skopeo/img:multi"),
            &format!("docker://{host}/skopeo/copy:multi"),
        ]),
        None,
    )
    .await;
    let dst = work.path().join("dst");
    for (repo, name) in [("img", "v1"), ("copy", "multi")] {
        let mut args = vec!["copy", "--preserve-digests", "--src-tls-verify=false"];
        if name == "multi" {
            args.push("--all");
        }
        let from = format!("docker://{host}/skopeo/{repo}:{name}");
        let to = oci(&dst, name);
        args.push(&from);
        args.push(&to);
        run("skopeo", skopeo(&args), None).await;
    }
    assert_eq!(Layout::blobs(&dst), source_blobs);
    assert_eq!(
        Layout::ref_digest(&dst, "v1"),
        amd64["digest"].as_str().unwrap()
    );
    assert_eq!(
        Layout::ref_digest(&dst, "multi"),
        index_desc["digest"].as_str().unwrap()
    );

    // skopeo delete removes the manifest (by digest).
    run(
        "skopeo",
        skopeo(&[
            "delete",
            "--tls-verify=false",
            &format!("docker://{host}/skopeo/copy:multi"),
        ]),
        None,
    )
    .await;
    assert_eq!(
        server.get("/v2/skopeo/copy/manifests/multi").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/v2/skopeo/img/manifests/multi").await.status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------
// oras-py
// ---------------------------------------------------------------------------

const ORAS_SCRIPT: &str = r#"
import json, sys
import oras.client, oras.oci
host, mode = sys.argv[1], sys.argv[2]
c = oras.client.OrasClient(hostname=host, insecure=True)
out = {}
if mode == "push":
    r = c.push(target=f"{host}/oras/artifact:v1", files=["hello.txt", "data.bin"],
               manifest_annotations={"org.example.k": "v"})
    out["push"] = r.status_code
    r = c.push(target=f"{host}/oras/chunked:v1", files=["big.bin"],
               do_chunked=True, chunk_size=65536)
    out["chunked"] = r.status_code
    out["pulled"] = sorted(c.pull(target=f"{host}/oras/artifact:v1", outdir="out1"))
    out["pulled_chunked"] = sorted(c.pull(target=f"{host}/oras/chunked:v1", outdir="out2"))
    out["tags"] = c.get_tags(f"{host}/oras/artifact")
elif mode == "attach":
    subject = oras.oci.Subject(mediaType=sys.argv[3], digest=sys.argv[4], size=int(sys.argv[5]))
    r = c.push(target=f"{host}/oras/artifact:sig", files=["sig.txt"],
               manifest_annotations={"org.example.sig": "yes"}, subject=subject)
    out["attach"] = r.status_code
    out["tags"] = c.get_tags(f"{host}/oras/artifact")
elif mode == "delete":
    out["deleted"] = c.delete_tag(f"{host}/oras/artifact", "sig")
    out["tags"] = c.get_tags(f"{host}/oras/artifact")
print(json.dumps(out))
"#;

async fn oras(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["-c".to_string(), ORAS_SCRIPT.to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let stdout = run("python3", all, Some(dir.to_path_buf())).await;
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn oras_py_pushes_pulls_and_attaches() {
    if !require(
        "python3 with the oras package",
        command_works("python3", &["-c", "import oras.client, oras.oci"]),
    ) {
        return;
    }
    let server = Server::start().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let files: [(&str, Vec<u8>); 3] = [
        ("hello.txt", b"hello from oras\n".to_vec()),
        ("data.bin", random_bytes(200_000, 1400)),
        ("big.bin", random_bytes(300_000, 1401)),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("sig.txt"), "signature\n").unwrap();
    let host = server.addr.to_string();

    let out = oras(dir, &[&host, "push"]).await;
    assert_eq!(out["push"], 201, "{out}");
    assert_eq!(out["chunked"], 201, "{out}");
    assert_eq!(out["tags"], json!(["v1"]));
    for (key, outdir, names) in [
        ("pulled", "out1", &["data.bin", "hello.txt"][..]),
        ("pulled_chunked", "out2", &["big.bin"][..]),
    ] {
        assert_eq!(out[key].as_array().unwrap().len(), names.len(), "{out}");
        for name in names {
            let pulled = std::fs::read(dir.join(outdir).join(name)).unwrap();
            let original = &files.iter().find(|(n, _)| n == name).unwrap().1;
            assert!(pulled == *original, "{name} differs after the round trip");
        }
    }

    // Attach: oras-py's push takes `subject=` (oras.oci.Subject).
    let response = server.get("/v2/oras/artifact/manifests/v1").await;
    let media_type = header(&response, "content-type");
    let subject = response.bytes().await.unwrap();
    let subject_digest = sha256(&subject);
    let size = subject.len().to_string();
    let out = oras(dir, &[&host, "attach", &media_type, &subject_digest, &size]).await;
    assert_eq!(out["attach"], 201, "{out}");
    assert_eq!(out["tags"], json!(["sig", "v1"]));

    // Discover over HTTP (oras-py has no referrers API).
    let response = server
        .get(&format!("/v2/oras/artifact/referrers/{subject_digest}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), INDEX);
    let body: Value = response.json().await.unwrap();
    let list = body["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    let sig = server.get("/v2/oras/artifact/manifests/sig").await;
    let sig_digest = header(&sig, "docker-content-digest");
    let sig_manifest: Value = sig.json().await.unwrap();
    assert_eq!(list[0]["digest"], sig_digest.as_str());
    assert_eq!(list[0]["annotations"], json!({"org.example.sig": "yes"}));
    // No artifactType in oras-py manifests: the config media type stands in.
    assert_eq!(list[0]["artifactType"], sig_manifest["config"]["mediaType"]);
    assert_eq!(sig_manifest["subject"]["digest"], subject_digest.as_str());

    // oras-py's delete_tag deletes the manifest by digest; the referrer goes.
    let out = oras(dir, &[&host, "delete"]).await;
    assert_eq!(out["deleted"], true, "{out}");
    assert_eq!(out["tags"], json!(["v1"]));
    let body: Value = server
        .get(&format!("/v2/oras/artifact/referrers/{subject_digest}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["manifests"], json!([]));
}
