//! Artifacts other tools make, written here by hand from their published
//! formats (no kit or modctl binary): KitOps ModelKits and what `modctl
//! build` writes (default tar layers, `--raw`, and the legacy `vnd.cnai`
//! media types of older modctl). Each is pushed to distribution 2.8 as an
//! OCI layout, then pulled, inspected, extracted, mounted and converted.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;
use crate::registry::{Server, require_distribution};

/// The files every fixture carries, by path.
pub(crate) fn model_files() -> BTreeMap<&'static str, Vec<u8>> {
    let mut weights = Vec::new();
    let mut rng = Lcg::new(7);
    for _ in 0..40_000 {
        weights.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    BTreeMap::from([
        ("model/model.safetensors", weights),
        (
            "model/config.json",
            br#"{"model_type":"llama","torch_dtype":"bfloat16"}"#.to_vec(),
        ),
        ("model/tokenizer.json", br#"{"version":"1.0"}"#.to_vec()),
        ("src/train.py", b"print('training')\n".to_vec()),
        ("data/eval.csv", b"question,answer\n1+1,2\n".to_vec()),
        ("README.md", b"# tiny\nA model made by hand.\n".to_vec()),
        ("prompts/system.txt", b"You are terse.\n".to_vec()),
    ])
}

pub(crate) fn write_tree(root: &Path, files: &BTreeMap<&str, Vec<u8>>) {
    for (path, bytes) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

/// A tar of `paths` (files of `files`, with their directories), entries
/// named relative to the root, as KitOps and modctl write them.
pub(crate) fn tar_of(files: &BTreeMap<&str, Vec<u8>>, prefix: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with(prefix)) {
        if let Some((dir, _)) = path.rsplit_once('/')
            && dirs_done.insert(dir.to_string())
        {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{dir}/"), std::io::empty())
                .unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// A builder holding `tar`'s entries again, each header passed through
/// `edit` with its path first.
fn rewritten(tar: &[u8], mut edit: impl FnMut(&str, &mut tar::Header)) -> tar::Builder<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let path = entry.path().unwrap().into_owned();
        edit(&path.to_string_lossy(), &mut header);
        builder.append_data(&mut header, path, &mut entry).unwrap();
    }
    builder
}

/// `tar` with each regular file's mode set by `mode_of` its path.
fn with_modes(tar: &[u8], mode_of: fn(&str) -> u32) -> Vec<u8> {
    rewritten(tar, |path, header| {
        if header.entry_type().is_file() {
            header.set_mode(mode_of(path));
        }
    })
    .into_inner()
    .unwrap()
}

/// `tar` with an empty directory entry appended.
fn with_empty_dir(tar: &[u8], dir: &str) -> Vec<u8> {
    let mut builder = rewritten(tar, |_, _| {});
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    builder
        .append_data(&mut header, dir, std::io::empty())
        .unwrap();
    builder.into_inner().unwrap()
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// An OCI image layout written blob by blob.
pub(crate) struct HandLayout {
    dir: PathBuf,
}

impl HandLayout {
    pub(crate) fn new(dir: PathBuf) -> HandLayout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        HandLayout { dir }
    }

    /// Stores `bytes`; returns a descriptor of `media_type` for them.
    pub(crate) fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let hex = digest.strip_prefix("sha256:").unwrap();
        fs::write(self.dir.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    /// Stores the manifest and names it `tag` in index.json.
    pub(crate) fn manifest(&self, manifest: &Value, tag: &str) -> String {
        let bytes = serde_json::to_vec(manifest).unwrap();
        let mut descriptor = self.blob("application/vnd.oci.image.manifest.v1+json", &bytes);
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "manifests": [descriptor]});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        format!("oci:{}:{tag}", self.dir.display())
    }
}

/// A ModelKit as `kit pack` lays it out: one tar layer per Kitfile path
/// (here gzip, plain and zstd), the Kitfile as the config with each
/// entry's layer digest and diffId.
fn write_modelkit(layout: &HandLayout, files: &BTreeMap<&str, Vec<u8>>) -> String {
    let kit = "application/vnd.kitops.modelkit";
    let layer = |kind: &str, prefix: &str, encoding: &str| {
        let mut tar = tar_of(files, prefix);
        if kind == "model" {
            // An empty directory, which ModelPack cannot carry.
            tar = with_empty_dir(&tar, "model/cache/");
        }
        let bytes = match encoding {
            "tar+gzip" => gzip(&tar),
            "tar+zstd" => zstd(&tar),
            _ => tar.clone(),
        };
        let descriptor = layout.blob(&format!("{kit}.{kind}.v1.{encoding}"), &bytes);
        (descriptor, sha256(&tar))
    };
    let (model, model_diff) = layer("model", "model/", "tar+gzip");
    let (code, code_diff) = layer("code", "src/", "tar");
    let (dataset, dataset_diff) = layer("dataset", "data/", "tar+zstd");
    let (docs, docs_diff) = layer("docs", "README.md", "tar");
    let (prompts, prompts_diff) = layer("prompts", "prompts/", "tar+gzip");
    let kitfile = json!({
        "manifestVersion": "1.0.0",
        "package": {
            "name": "kit-tiny", "version": "1.2.0", "description": "A tiny ModelKit",
            "authors": ["Ada"], "license": "Apache-2.0"
        },
        "model": {
            "name": "tiny", "path": "model", "framework": "pytorch", "format": "safetensors",
            "parameters": {"temperature": 0.7},
            "digest": model["digest"], "diffId": model_diff
        },
        "code": [{"path": "src", "description": "training scripts",
                  "digest": code["digest"], "diffId": code_diff}],
        "datasets": [{"name": "eval", "path": "data", "license": "CC-BY-4.0",
                      "digest": dataset["digest"], "diffId": dataset_diff}],
        "docs": [{"path": "README.md", "digest": docs["digest"], "diffId": docs_diff}],
        "prompts": [{"path": "prompts", "digest": prompts["digest"], "diffId": prompts_diff}],
    });
    let config = layout.blob(
        "application/vnd.kitops.modelkit.config.v1+json",
        &serde_json::to_vec(&kitfile).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [model, code, dataset, docs, prompts],
        "annotations": {"ml.kitops.modelkit.cli-version": "1.5.0"},
    });
    layout.manifest(&manifest, "v1")
}

/// The mode a modctl fixture gives a file: scripts are executable.
fn modctl_mode(path: &str) -> u32 {
    if path.ends_with(".py") { 0o755 } else { 0o644 }
}

/// What `modctl build` writes: one layer per file, `tar` (default) or
/// `raw` (`--raw`), annotated with the file path and its metadata (the
/// mode a raw layer's file gets); `legacy` uses the `vnd.cnai` media types
/// and `org.cnai` annotations of modctl before v0.2.0 (which modctl pins
/// again since 2026 for registries that know only those).
fn write_modctl(
    layout: &HandLayout,
    files: &BTreeMap<&str, Vec<u8>>,
    raw: bool,
    legacy: bool,
) -> String {
    let (prefix, path_key, metadata_key) = if legacy {
        (
            "application/vnd.cnai.model",
            "org.cnai.model.filepath",
            "org.cnai.model.file.metadata+json",
        )
    } else {
        (
            "application/vnd.cncf.model",
            "org.cncf.model.filepath",
            "org.cncf.model.file.metadata+json",
        )
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (path, bytes) in files {
        let category = match *path {
            p if p.ends_with(".safetensors") => "weight",
            p if p.ends_with(".json") => "weight.config",
            p if p.ends_with(".py") => "code",
            p if p.ends_with(".csv") => "dataset",
            _ => "doc",
        };
        let mode = modctl_mode(path);
        let (encoding, blob) = if raw {
            ("raw", bytes.clone())
        } else {
            ("tar", with_modes(&tar_of(files, path), modctl_mode))
        };
        let mut descriptor = layout.blob(&format!("{prefix}.{category}.v1.{encoding}"), &blob);
        let metadata = json!({
            "name": path.rsplit('/').next().unwrap(), "mode": mode, "uid": 0, "gid": 0,
            "size": bytes.len(), "mtime": "2024-01-01T00:00:00Z", "typeflag": 48
        });
        descriptor["annotations"] = json!({
            path_key: path,
            metadata_key: metadata.to_string(),
            "org.cncf.model.file.mediatype.untested": "false",
        });
        diff_ids.push(sha256(&blob));
        layers.push(descriptor);
    }
    let config_type = format!("{prefix}.config.v1+json");
    let config = json!({
        "descriptor": {"createdAt": "2024-01-01T00:00:00Z", "family": "llama", "name": "tiny"},
        "config": {"architecture": "transformer", "format": "safetensors", "precision": "bfloat16"},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    });
    let config = layout.blob(&config_type, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": format!("{prefix}.manifest.v1+json"),
        "config": config,
        "layers": layers,
        "annotations": {"org.cncf.modctl.modelfile": "NAME tiny\nMODEL model/*.safetensors\n"},
    });
    layout.manifest(&manifest, "v1")
}

/// Mounts `reference` (with root), compares the view with `expected`,
/// and unmounts.
fn assert_mount_shows(ferry: &Ferry, reference: &str, target: &Path, expected: &Path) {
    if !require_root("to mount a volume") {
        return;
    }
    ferry.ok(&["mount", reference, s(target)]);
    let shown = contents(target);
    let unmounted = ferry.run(&["umount", s(target)]);
    if !unmounted.status.success() {
        let _ = Command::new("umount").arg("-l").arg(target).status();
    }
    assert_eq!(shown, contents(expected), "the volume of {reference}");
    assert_success(&unmounted, "umount");
}

#[test]
fn kitops_modelkits_pull_inspect_extract_mount_and_convert() {
    if !require_distribution() {
        return;
    }
    let t = tempdir();
    let files = model_files();
    let source = t.path().join("source");
    write_tree(&source, &files);
    let layout = HandLayout::new(t.path().join("layout"));
    let oci = write_modelkit(&layout, &files);
    let registry = Server::distribution();
    let reference = registry.reference("kits/tiny:v1");
    let ferry = Ferry::new(t.path().join("store"));
    ferry.ok(&["copy", "--plain-http", &oci, &reference]);
    ferry.ok(&["pull", "--plain-http", &reference]);

    let inspected = ferry.json(&["inspect", "--json", &reference]);
    assert_eq!(
        inspected["artifactType"],
        "application/vnd.kitops.modelkit.config.v1+json"
    );
    assert_eq!(inspected["config"]["package"]["name"], "kit-tiny");
    let rows: Vec<(&str, &str)> = inspected["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["path"].as_str().unwrap(), l["category"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("model", "model"),
            ("src", "code"),
            ("data", "dataset"),
            ("README.md", "docs"),
            ("prompts", "prompts")
        ],
        "the Kitfile names each layer"
    );
    let text = ferry.ok(&["inspect", &reference]);
    assert!(text.contains("Name:         kit-tiny"), "{text}");
    assert!(text.contains("Framework:    pytorch"), "{text}");
    assert!(text.contains("model.v1.tar+gzip"), "{text}");

    let extracted = t.path().join("extracted");
    ferry.ok(&["extract", &reference, s(&extracted)]);
    assert_eq!(contents(&extracted), contents(&source));
    assert_mount_shows(&ferry, &reference, &t.path().join("mnt"), &source);

    // ModelKit -> ModelPack: the Kitfile's metadata in the config, every
    // file a raw layer of its category, the Kitfile kept whole.
    let converted = "localhost/converted/tiny:v1";
    let report = ferry.json(&["convert", "--json", &reference, converted]);
    assert_eq!(report["sourceKind"], "KitOps ModelKit");
    let mut by_path: BTreeMap<String, Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    let empty = by_path
        .remove("model/cache/")
        .expect("the empty directory is reported");
    assert!(
        empty["action"]
            .as_str()
            .unwrap()
            .contains("not carried over"),
        "{empty}"
    );
    assert_eq!(
        by_path.keys().map(String::as_str).collect::<Vec<_>>(),
        files.keys().copied().collect::<Vec<_>>()
    );
    let weights = &by_path["model/model.safetensors"];
    assert_eq!(
        weights["from"],
        "application/vnd.kitops.modelkit.model.v1.tar+gzip"
    );
    assert_eq!(weights["to"], "application/vnd.cncf.model.weight.v1.raw");
    assert_eq!(weights["action"], "gunzipped and unpacked");
    assert_eq!(
        by_path["model/config.json"]["to"],
        "application/vnd.cncf.model.weight.config.v1.raw"
    );
    assert_eq!(
        by_path["src/train.py"]["to"],
        "application/vnd.cncf.model.code.v1.raw"
    );
    assert_eq!(
        by_path["data/eval.csv"]["to"],
        "application/vnd.cncf.model.dataset.v1.raw"
    );
    assert_eq!(
        by_path["prompts/system.txt"]["to"],
        "application/vnd.cncf.model.doc.v1.raw"
    );
    let kept: Vec<&str> = report["keptInAnnotation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(kept.contains(&"model.framework"), "{kept:?}");
    assert!(kept.contains(&"model.parameters"), "{kept:?}");
    assert!(kept.contains(&"code[0].description"), "{kept:?}");

    let config = ferry.json(&["inspect", "--config", converted]);
    assert_eq!(config["descriptor"]["name"], "kit-tiny");
    assert_eq!(config["descriptor"]["title"], "tiny");
    assert_eq!(config["descriptor"]["version"], "1.2.0");
    assert_eq!(config["descriptor"]["description"], "A tiny ModelKit");
    assert_eq!(config["descriptor"]["authors"], json!(["Ada"]));
    assert_eq!(
        config["descriptor"]["licenses"],
        json!(["Apache-2.0", "CC-BY-4.0"])
    );
    assert_eq!(config["config"]["format"], "safetensors");
    let manifest = ferry.manifest(converted);
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    let kitfile: Value = serde_json::from_str(
        manifest["annotations"]["ml.kitops.modelkit.kitfile"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(kitfile["model"]["framework"], "pytorch");
    assert_eq!(kitfile["model"]["parameters"]["temperature"], 0.7);
    let converted_out = t.path().join("converted");
    ferry.ok(&["extract", converted, s(&converted_out)]);
    assert_eq!(contents(&converted_out), contents(&source));
    let fsck = ferry.json(&["fsck", "--json"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert_tmp_empty(&t.path().join("store"));

    // Any artifact -> a plain directory, each file reported.
    let plain = t.path().join("plain");
    let stdout = ferry.ok(&["convert", &reference, &format!("dir:{}", s(&plain))]);
    assert_eq!(contents(&plain), contents(&source));
    assert!(
        stdout.lines().any(|l| l.starts_with("data/eval.csv")
            && l.contains("zstd-decompressed and unpacked")),
        "{stdout}"
    );

    // The same project packed from a Kitfile on disk (YAML, as `kit pack`
    // reads it) gives the same files and metadata.
    let kitfile = t.path().join("Kitfile");
    fs::write(
        &kitfile,
        "manifestVersion: 1.0.0\npackage:\n  name: kit-tiny\n  version: 1.2.0\nmodel:\n  name: tiny\n  path: ./model\n  format: safetensors\n  framework: pytorch\ncode:\n  - path: src\ndatasets:\n  - path: data\ndocs:\n  - path: README.md\nprompts:\n  - path: prompts\n",
    )
    .unwrap();
    let packed = "localhost/packed/tiny:v1";
    ferry.ok(&["pack", "-f", s(&kitfile), s(&source), "-t", packed]);
    let config = ferry.json(&["inspect", "--config", packed]);
    assert_eq!(config["descriptor"]["name"], "kit-tiny");
    assert_eq!(config["config"]["format"], "safetensors");
    let packed_out = t.path().join("packed");
    ferry.ok(&["extract", packed, s(&packed_out)]);
    assert_eq!(contents(&packed_out), contents(&source));

    // A ModelPack artifact is not a ModelKit to convert.
    let stderr = ferry.fails(&["convert", converted, "localhost/again:v1"]);
    error_line(&stderr, &["is a ModelPack, not a KitOps ModelKit"]);
}

#[test]
fn modctl_artifacts_default_raw_and_legacy_pull_extract_and_mount() {
    if !require_distribution() {
        return;
    }
    let t = tempdir();
    let files = model_files();
    let source = t.path().join("source");
    write_tree(&source, &files);
    let registry = Server::distribution();
    let ferry = Ferry::new(t.path().join("store"));
    for (name, raw, legacy) in [
        ("default", false, false),
        ("raw", true, false),
        ("legacy", false, true),
        ("legacy-raw", true, true),
    ] {
        let layout = HandLayout::new(t.path().join(format!("layout-{name}")));
        let oci = write_modctl(&layout, &files, raw, legacy);
        let reference = registry.reference(&format!("modctl/{name}:v1"));
        ferry.ok(&["copy", "--plain-http", &oci, &reference]);
        ferry.ok(&["pull", "--plain-http", &reference]);

        let inspected = ferry.json(&["inspect", "--json", &reference]);
        let layers = inspected["layers"].as_array().unwrap();
        assert_eq!(layers.len(), files.len(), "{name}");
        let weights = layers
            .iter()
            .find(|l| l["path"] == "model/model.safetensors")
            .unwrap_or_else(|| panic!("{name}: the weights by path: {inspected}"));
        assert_eq!(weights["category"], "weight", "{name}");

        let out = t.path().join(format!("out-{name}"));
        ferry.ok(&["extract", &reference, s(&out)]);
        assert_eq!(contents(&out), contents(&source), "{name}");
        // The mode comes from the tar entry, or for a raw layer from the
        // file metadata annotation under either spelling.
        for path in files.keys() {
            let mode = fs::metadata(out.join(path)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, modctl_mode(path), "{name}: {path} has mode {mode:o}");
        }
        let pulled_out = t.path().join(format!("pulled-{name}"));
        ferry.ok(&[
            "pull",
            "--plain-http",
            &reference,
            "--extract",
            s(&pulled_out),
        ]);
        assert_eq!(contents(&pulled_out), contents(&source), "{name}");
        assert_mount_shows(
            &ferry,
            &reference,
            &t.path().join(format!("mnt-{name}")),
            &source,
        );
        let plain = t.path().join(format!("plain-{name}"));
        let stdout = ferry.ok(&["convert", &reference, &format!("dir:{}", s(&plain))]);
        assert_eq!(contents(&plain), contents(&source), "{name}");
        let expected = if raw {
            "copied from a raw layer"
        } else {
            "unpacked from a tar layer"
        };
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("README.md") && l.contains(expected)),
            "{name}: {stdout}"
        );
    }
}

/// modctl's Modelfile directives (`pkg/modelfile/command`): any other word
/// fails its parser.
const MODCTL_DIRECTIVES: [&str; 12] = [
    "CONFIG",
    "MODEL",
    "CODE",
    "DATASET",
    "DOC",
    "NAME",
    "ARCH",
    "FAMILY",
    "FORMAT",
    "PARAMSIZE",
    "PRECISION",
    "QUANTIZATION",
];

#[test]
fn init_writes_a_modelfile_modctl_reads_as_ferry_does() {
    let t = tempdir();
    let model = t.path().join("awkward model");
    let files = [
        "model-00001-of-00002.bin",
        "weights [v2] {final}.bin",
        "two  spaces.bin",
        "notes #1.md",
        "sub dir/config.json",
        "run*.py",
    ];
    for (i, name) in files.iter().enumerate() {
        let path = model.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("file {i}\n")).unwrap();
    }
    let ferry = Ferry::new(t.path().join("store"));
    ferry.ok(&["init", s(&model)]);
    let text = fs::read_to_string(model.join("Modelfile")).unwrap();
    let mut declared = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // modctl: the first word is a directive it knows, the value is the
        // other words joined by single spaces, with no quotes.
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words.len() >= 2, "{line}");
        assert!(MODCTL_DIRECTIVES.contains(&words[0]), "{line}");
        let value = words[1..].join(" ");
        assert!(!value.starts_with('"'), "modctl keeps quotes: {line}");
        declared.push((words[0].to_string(), value));
    }
    let globs: Vec<&(String, String)> = declared
        .iter()
        .filter(|(d, _)| ["CONFIG", "MODEL", "CODE", "DOC", "DATASET"].contains(&d.as_str()))
        .collect();
    assert_eq!(globs.len(), files.len(), "one exact glob per file:\n{text}");
    assert!(
        globs.contains(&&("DOC".to_string(), "notes [#]1.md".to_string())),
        "{text}"
    );
    assert!(
        globs.contains(&&(
            "MODEL".to_string(),
            r"weights \[v2\] \{final\}.bin".to_string()
        )),
        "{text}"
    );
    assert!(
        globs.contains(&&("CODE".to_string(), r"run\*.py".to_string())),
        "{text}"
    );

    // ferry reads the same Modelfile: every file is declared, none guessed.
    ferry.pack(&model, "localhost/awkward:v1");
    let manifest = ferry.manifest("localhost/awkward:v1");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), files.len());
    for layer in layers {
        assert!(
            layer["annotations"]
                .get("org.cncf.model.file.mediatype.untested")
                .is_none(),
            "{layer}"
        );
    }
    assert_eq!(
        manifest["annotations"]["org.cncf.modctl.modelfile"].as_str(),
        Some(text.as_str())
    );
}
