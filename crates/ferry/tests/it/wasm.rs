//! `ferry pack --wasm`: Wasm modules and components as Wasm OCI artifacts
//! (CNCF TAG Runtime layout), read back by ferry, skopeo and oras-py, and
//! listed beside a native image in one multi-platform index.
//!
//! The fixtures are built here with `wasm-encoder`: a core module importing
//! `wasi_snapshot_preview1.fd_write`, one importing only from `env`, and a
//! component importing `wasi:cli/environment@0.2.0` and exporting
//! `wasi:cli/run@0.2.0`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tempfile::TempDir;
use wasm_encoder::{
    ComponentExportKind, ComponentExportSection, ComponentImportSection, ComponentTypeRef,
    ComponentTypeSection, EntityType, ImportSection, InstanceType, Module, TypeSection,
};

use crate::common::*;
use crate::registry::{Server, require_distribution, require_oras_py};

/// The layout's own layer type (wkg, oci-wasm and runwasi's shims read it).
const LAYER_TYPE: &str = "application/wasm";
/// wasm-to-oci's, with `--wasm-layer-type wasm-to-oci`.
const WASM_TO_OCI_LAYER_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
const CONFIG_TYPE: &str = "application/vnd.wasm.config.v0+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// A core module with one function import from `namespace`.
fn core_module(namespace: &str) -> Vec<u8> {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function(
        [wasm_encoder::ValType::I32; 4],
        [wasm_encoder::ValType::I32],
    );
    module.section(&types);
    let mut imports = ImportSection::new();
    imports.import(namespace, "fd_write", EntityType::Function(0));
    module.section(&imports);
    module.finish()
}

/// A component importing one WASI interface and exporting another.
fn component() -> Vec<u8> {
    let mut component = wasm_encoder::Component::new();
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    component.section(&types);
    let mut imports = ComponentImportSection::new();
    imports.import("wasi:cli/environment@0.2.0", ComponentTypeRef::Instance(0));
    component.section(&imports);
    let mut exports = ComponentExportSection::new();
    exports.export("wasi:cli/run@0.2.0", ComponentExportKind::Instance, 0, None);
    component.section(&exports);
    component.finish()
}

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
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("files").join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    /// `ferry pack --wasm FILE -t REF --json extra...`; returns the digest.
    fn pack_wasm(&self, file: &Path, reference: &str, extra: &[&str]) -> String {
        let mut args = vec!["pack", "--wasm", s(file), "-t", reference, "--json"];
        args.extend_from_slice(extra);
        let packed = self.ferry.json(&args);
        assert_eq!(packed["layers"], 1, "{packed}");
        packed["digest"].as_str().unwrap().to_string()
    }

    /// The config of `reference`, parsed.
    fn config(&self, reference: &str) -> Value {
        serde_json::from_str(&self.ferry.ok(&["inspect", "--config", reference])).unwrap()
    }
}

#[test]
fn core_module_is_a_wasip1_artifact_with_one_titled_layer() {
    let t = setup();
    let bytes = core_module("wasi_snapshot_preview1");
    let module = t.write("hello.wasm", &bytes);
    let reference = "localhost/wasm/hello:v1";
    let digest = t.pack_wasm(&module, reference, &[]);

    let manifest = t.ferry.manifest(reference);
    assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
    // The layout leaves artifactType unset: the config media type says it.
    assert!(manifest.get("artifactType").is_none(), "{manifest}");
    assert_eq!(manifest["config"]["mediaType"], CONFIG_TYPE);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], LAYER_TYPE);
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "hello.wasm"
    );
    let layer_digest = sha256_file(&module);
    assert_eq!(layers[0]["digest"], layer_digest.as_str());
    assert_eq!(layers[0]["size"], bytes.len());
    assert_eq!(
        fs::read(blob_path(&t.ferry.store, &layer_digest)).unwrap(),
        bytes
    );

    let config = t.config(reference);
    assert_eq!(
        config,
        json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": "wasm",
            "os": "wasip1",
            "layerDigests": [layer_digest],
        })
    );

    // Same file, another store: the same digest (nothing depends on time).
    let again = Ferry::new(t.dir.path().join("store-2"));
    let stdout = again.ok(&["pack", "--wasm", s(&module), "-t", reference]);
    assert_eq!(parse_pack_line(&stdout, reference), digest);

    // --created and --author reach the config (and so the digest).
    let dated = "localhost/wasm/hello:dated";
    let dated_digest = t.pack_wasm(
        &module,
        dated,
        &["--created", "2024-05-01T12:00:00Z", "--author", "Ada"],
    );
    assert_ne!(dated_digest, digest);
    let config = t.config(dated);
    assert_eq!(config["created"], "2024-05-01T12:00:00Z");
    assert_eq!(config["author"], "Ada");

    let shown = t.ferry.ok(&["inspect", reference]);
    assert!(shown.contains("Platform:     wasip1/wasm"), "{shown}");
    assert!(shown.contains(LAYER_TYPE), "{shown}");

    // Named through a link: the file it leads to is packed, titled with
    // the name given.
    let link = t.dir.path().join("linked.wasm");
    std::os::unix::fs::symlink(&module, &link).unwrap();
    t.pack_wasm(&link, "localhost/wasm/hello:linked", &[]);
    let manifest = t.ferry.manifest("localhost/wasm/hello:linked");
    assert_eq!(manifest["layers"][0]["digest"], layer_digest.as_str());
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "linked.wasm"
    );

    // wasm-to-oci's layer type on request: the same bytes and config.
    let legacy = "localhost/wasm/hello:wasm-to-oci";
    t.pack_wasm(&module, legacy, &["--wasm-layer-type", "wasm-to-oci"]);
    let manifest = t.ferry.manifest(legacy);
    assert_eq!(manifest["layers"][0]["mediaType"], WASM_TO_OCI_LAYER_TYPE);
    assert_eq!(manifest["layers"][0]["digest"], layer_digest.as_str());
    assert_eq!(t.config(legacy), t.config(reference));
    // The store stays consistent: every referenced blob is present and intact.
    t.ferry.ok(&["fsck"]);
}

#[test]
fn component_is_a_wasip2_artifact_listing_its_interfaces() {
    let t = setup();
    let file = t.write("cli.wasm", &component());
    let reference = "localhost/wasm/cli:v1";
    let output = t.ferry.run(&["pack", "--wasm", s(&file), "-t", reference]);
    assert_success(&output, "pack --wasm of a component");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wasip2/wasm"), "{stderr}");

    let config = t.config(reference);
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(
        config["component"],
        json!({
            "imports": ["wasi:cli/environment@0.2.0"],
            "exports": ["wasi:cli/run@0.2.0"],
        })
    );
    assert_eq!(config["layerDigests"], json!([sha256_file(&file)]));
    let shown = t.ferry.ok(&["inspect", reference]);
    assert!(shown.contains("Platform:     wasip2/wasm"), "{shown}");
    assert!(
        shown.contains("Imports:      wasi:cli/environment@0.2.0"),
        "{shown}"
    );
}

#[test]
fn module_without_wasi_is_plain_wasm_filed_as_wasip1_with_a_note() {
    let t = setup();
    let file = t.write("plain.wasm", &core_module("env"));
    let output = t
        .ferry
        .run(&["pack", "--wasm", s(&file), "-t", "localhost/wasm/plain:v1"]);
    assert_success(&output, "pack --wasm of a module without WASI imports");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("note:"), "{stderr}");
    assert!(stderr.contains("WASI"), "{stderr}");
    assert_eq!(t.config("localhost/wasm/plain:v1")["os"], "wasip1");
}

#[test]
fn what_is_not_wasm_is_refused_and_the_store_is_left_alone() {
    let t = setup();
    let good = t.write("good.wasm", &core_module("wasi_snapshot_preview1"));
    t.pack_wasm(&good, "localhost/wasm/good:v1", &[]);
    let before = snapshot(&t.ferry.store);

    let module = core_module("wasi_snapshot_preview1");
    let truncated = t.write("truncated.wasm", &module[..module.len() - 3]);
    let text = t.write("script.wasm", b"#!/bin/sh\necho not wasm\n");
    let empty = t.write("empty.wasm", b"");
    let directory = t.dir.path().join("files");
    let missing = t.dir.path().join("missing.wasm");
    for (file, needle) in [
        (&truncated, "not a valid wasm binary"),
        (&text, "not a valid wasm binary"),
        (&empty, "not a valid wasm binary"),
        (&directory, "not a regular file"),
        (&missing, "missing.wasm"),
    ] {
        let output = t
            .ferry
            .run(&["pack", "--wasm", s(file), "-t", "localhost/wasm/bad:v1"]);
        assert_eq!(output.status.code(), Some(1), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = error_line(&stderr, &[needle]);
        assert!(
            line.contains(file.file_name().unwrap().to_str().unwrap()),
            "the error names the file: {line}"
        );
        assert_store_unchanged(&t.ferry.store, &before);
    }
    assert!(!t.ferry.listed().contains_key("localhost/wasm/bad:v1"));
}

#[test]
fn wasm_mode_usage_errors_exit_2() {
    let t = setup();
    let good = t.write("good.wasm", &core_module("wasi_snapshot_preview1"));
    let dir = t.dir.path().join("files");
    for args in [
        // Neither DIR nor --wasm.
        vec!["pack", "-t", "localhost/wasm/x:v1"],
        // Both.
        vec![
            "pack",
            s(&dir),
            "--wasm",
            s(&good),
            "-t",
            "localhost/wasm/x:v1",
        ],
        vec![
            "pack",
            "--wasm",
            s(&good),
            "--generic",
            "-t",
            "localhost/wasm/x:v1",
        ],
        vec![
            "pack",
            "--wasm",
            s(&good),
            "--name",
            "m",
            "-t",
            "localhost/wasm/x:v1",
        ],
        vec![
            "pack",
            "--wasm",
            s(&good),
            "--push",
            "-t",
            "localhost/wasm/x:v1",
        ],
        vec![
            "pack",
            "--wasm",
            s(&good),
            "--author",
            "a",
            "--author",
            "b",
            "-t",
            "localhost/wasm/x:v1",
        ],
        // A layer type is for --wasm only, and one of two.
        vec![
            "pack",
            s(&dir),
            "--wasm-layer-type",
            "wasm",
            "-t",
            "localhost/wasm/x:v1",
        ],
    ] {
        let output = t.ferry.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("Usage: ferry pack"),
            "{args:?}: {}",
            show(&output)
        );
    }
}

#[test]
fn an_unknown_wasm_layer_type_is_a_usage_error_naming_the_choices() {
    let t = setup();
    let good = t.write("good.wasm", &core_module("wasi_snapshot_preview1"));
    let output = t.ferry.run(&[
        "pack",
        "--wasm",
        s(&good),
        "--wasm-layer-type",
        "wasm-to-oci-v2",
        "-t",
        "localhost/wasm/x:v1",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--wasm-layer-type") && stderr.contains("wasm-to-oci"),
        "{stderr}"
    );
}

/// Packs and pushes a linux/amd64 image (an OCI image config and one tar
/// layer) with `pack --generic`; returns its digest.
fn push_native_image(t: &Setup, reference: &str) -> String {
    let files = t.dir.path().join("native");
    fs::create_dir_all(&files).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let content = b"#!/bin/sh\necho native\n";
    header.set_size(content.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder
        .append_data(&mut header, "hello", &content[..])
        .unwrap();
    let layer = files.join("layer.tar");
    fs::write(&layer, builder.into_inner().unwrap()).unwrap();
    let config = t.dir.path().join("image-config.json");
    let image_config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_file(&layer)]},
        "config": {"Entrypoint": ["/hello"]},
    });
    fs::write(&config, image_config.to_string()).unwrap();
    let packed = t.ferry.json(&[
        "pack",
        "--generic",
        s(&files),
        "-t",
        reference,
        "--config",
        &format!("{}:application/vnd.oci.image.config.v1+json", s(&config)),
        "--media-type",
        "application/vnd.oci.image.layer.v1.tar",
        "--json",
    ]);
    t.ferry.ok(&["push", reference, "--plain-http", "-q"]);
    packed["digest"].as_str().unwrap().to_string()
}

#[test]
fn wasm_on_docker_registry_reads_with_skopeo_and_oras_py() {
    if !require_distribution() || !require_skopeo() || !require_oras_py() {
        return;
    }
    let registry = Server::distribution();
    let t = setup();
    let bytes = core_module("wasi_snapshot_preview1");
    let module = t.write("hello.wasm", &bytes);
    let reference = registry.reference("wasm/hello:v1");
    let digest = t.pack_wasm(&module, &reference, &[]);
    t.ferry.ok(&["push", &reference, "--plain-http", "-q"]);

    // skopeo reads the exact manifest.
    let docker = format!("docker://{reference}");
    let output =
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &docker]));
    assert_success(&output, "skopeo inspect --raw");
    assert_eq!(sha256(&output.stdout), digest);
    assert_eq!(output.stdout, t.ferry.manifest_bytes(&reference));
    // `skopeo inspect` without --raw answers only for image configs
    // (containers/image refuses "image-specific operations" on artifacts),
    // so the platform is read from a copy: skopeo copies every blob of
    // the artifact into an OCI layout, the config with it.
    let layout = t.dir.path().join("skopeo-layout");
    let output = run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &docker,
        &format!("oci:{}:v1", s(&layout)),
    ]));
    assert_success(&output, "skopeo copy to an OCI layout");
    let manifest: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap())
            .unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &fs::read(layout.join("blobs/sha256").join(&config_digest[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(
        fs::read(layout.join("blobs/sha256").join(&sha256(&bytes)[7..])).unwrap(),
        bytes
    );

    // oras-py writes the layer as a file named by its title.
    let out = t.dir.path().join("oras-out");
    let script = "import sys, oras.client\n\
                  oras.client.OrasClient(insecure=True).pull(target=sys.argv[1], outdir=sys.argv[2])\n";
    let output = run(Command::new("python3").args(["-c", script, &reference, s(&out)]));
    assert_success(&output, "oras-py pull");
    assert_eq!(fs::read(out.join("hello.wasm")).unwrap(), bytes);
}

#[test]
fn index_create_lists_wasm_beside_a_native_image() {
    if !require_distribution() {
        return;
    }
    let registry = Server::distribution();
    let t = setup();
    let native = push_native_image(&t, &registry.reference("app:native"));
    let module = t.write("app.wasm", &core_module("wasi_snapshot_preview1"));
    let wasip1 = t.pack_wasm(&module, &registry.reference("app:wasip1"), &[]);
    t.ferry.ok(&[
        "push",
        &registry.reference("app:wasip1"),
        "--plain-http",
        "-q",
    ]);
    let file = t.write("app-component.wasm", &component());
    let wasip2 = t.pack_wasm(&file, &registry.reference("app:wasip2"), &[]);
    t.ferry.ok(&[
        "push",
        &registry.reference("app:wasip2"),
        "--plain-http",
        "-q",
    ]);

    let index_ref = registry.reference("app:multi");
    let created = t.ferry.json(&[
        "index",
        "create",
        &index_ref,
        "-m",
        &registry.reference("app:wasip1"),
        "-m",
        &registry.reference("app:native"),
        "-m",
        &registry.reference("app:wasip2"),
        "--plain-http",
        "--json",
    ]);
    let listed: Vec<(&str, &str)> = created["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap(),
                m["platform"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (wasip1.as_str(), "wasip1/wasm"),
            (native.as_str(), "linux/amd64"),
            (wasip2.as_str(), "wasip2/wasm"),
        ]
    );

    let (status, body) = http_get(&registry.addr, "/v2/app/manifests/multi", INDEX_TYPE)
        .expect("the registry answers");
    assert_eq!(status, 200);
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["mediaType"], INDEX_TYPE);
    let platforms: Vec<(Value, Value)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["os"].clone(),
                m["platform"]["architecture"].clone(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        vec![
            (json!("wasip1"), json!("wasm")),
            (json!("linux"), json!("amd64")),
            (json!("wasip2"), json!("wasm")),
        ]
    );

    // A runtime asking for wasip1/wasm gets the module.
    let puller = Ferry::new(t.dir.path().join("pull"));
    let pulled = puller.json(&[
        "pull",
        &index_ref,
        "--platform",
        "wasip1/wasm",
        "--plain-http",
        "--json",
    ]);
    assert_eq!(pulled["digest"], wasip1.as_str());
}
