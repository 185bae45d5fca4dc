//! ModelKits that are not what `kit pack` writes, and conversions that
//! fail part way: `ferry convert` refuses them cleanly, ends, and leaves
//! the store as it was. No registry: the ModelKit is copied into the store
//! from an OCI layout.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::neighbours::{HandLayout, model_files, tar_of};

const KIT: &str = "application/vnd.kitops.modelkit";
const SOURCE: &str = "localhost/kits/hostile:v1";
const CONVERTED: &str = "localhost/converted/hostile:v1";

/// One layer: its kind, its tar.
type KitLayer<'a> = (&'a str, Vec<u8>);

/// Writes a ModelKit of `layers` (plain tar) and `kitfile` into a layout
/// and copies it into `ferry`'s store as [`SOURCE`].
fn store_modelkit(ferry: &Ferry, dir: &Path, layers: &[KitLayer], kitfile: &Value) {
    let layout = HandLayout::new(dir.join("layout"));
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|(kind, tar)| layout.blob(&format!("{KIT}.{kind}.v1.tar"), tar))
        .collect();
    let config = layout.blob(
        &format!("{KIT}.config.v1+json"),
        &serde_json::to_vec(kitfile).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descriptors,
    });
    let oci = layout.manifest(&manifest, "v1");
    let into_store = format!("oci:{}/artifacts:{SOURCE}", s(&ferry.store));
    ferry.ok(&["copy", &oci, &into_store]);
}

/// A tar of exactly `entries` (path, bytes, mode).
fn tar_with(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, path, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `ferry convert SOURCE CONVERTED`, which must end within a minute.
fn convert(ferry: &Ferry) -> std::process::Output {
    KillOnDrop::spawn(ferry.command(&["convert", SOURCE, CONVERTED]))
        .wait_at_most(Duration::from_secs(60))
}

fn kitfile(model_path: &str, code: &[&str]) -> Value {
    json!({
        "manifestVersion": "1.0.0",
        "package": {"name": "hostile"},
        "model": {"name": "m", "path": model_path},
        "code": code.iter().map(|p| json!({"path": p})).collect::<Vec<_>>(),
    })
}

#[test]
fn layers_that_stray_overlap_or_are_unlisted_are_refused() {
    let t = tempdir();
    let files = model_files();
    let weights: &[u8] = &files["model/model.safetensors"];
    let cases: [(&str, Vec<KitLayer>, Value, &[&str]); 3] = [
        (
            "a code layer placing weights under the model's path",
            vec![
                ("model", tar_of(&files, "model/")),
                (
                    "code",
                    tar_with(&[
                        ("src/train.py", b"print()\n", 0o644),
                        ("model/evil.safetensors", weights, 0o644),
                    ]),
                ),
            ],
            kitfile("model", &["src"]),
            &["code[0]", "\"model/evil.safetensors\"", "outside that path"],
        ),
        (
            "two layers holding one file",
            vec![
                ("model", tar_with(&[("src/train.py", b"one\n", 0o644)])),
                ("code", tar_with(&[("src/train.py", b"two\n", 0o644)])),
            ],
            kitfile(".", &["src"]),
            &["both hold", "\"src/train.py\""],
        ),
        (
            "a layer no Kitfile entry names",
            vec![
                ("model", tar_of(&files, "model/")),
                ("code", tar_with(&[("src/a.py", b"a\n", 0o644)])),
                ("code", tar_with(&[("tools/b.py", b"b\n", 0o644)])),
            ],
            kitfile("model", &["src"]),
            &["named by no Kitfile entry"],
        ),
    ];
    for (i, (what, layers, kit, needles)) in cases.into_iter().enumerate() {
        let ferry = Ferry::new(t.path().join(format!("store{i}")));
        store_modelkit(&ferry, &t.path().join(format!("case{i}")), &layers, &kit);
        let before = snapshot(&ferry.store);
        let output = convert(&ferry);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", show(&output));
        error_line(&String::from_utf8_lossy(&output.stderr), needles);
        assert_store_unchanged(&ferry.store, &before);
        // The ModelKit itself still extracts: only the conversion, which
        // would sort files by the Kitfile, refuses it.
        ferry.ok(&["extract", SOURCE, s(&t.path().join(format!("out{i}")))]);
    }
}

#[test]
fn a_convert_that_fails_while_writing_ends_and_removes_what_it_added() {
    let t = tempdir();
    let files = model_files();
    let ferry = Ferry::new(t.path().join("store"));
    let layers = [
        ("model", tar_of(&files, "model/")),
        ("code", tar_of(&files, "src/")),
    ];
    store_modelkit(&ferry, t.path(), &layers, &kitfile("model", &["src"]));
    // The blob of src/train.py cannot be installed: a directory holds its name.
    let blocked = blob_path(&ferry.store, &sha256(&files["src/train.py"]));
    fs::create_dir_all(blocked.join("in-the-way")).unwrap();
    let before = snapshot(&ferry.store);

    let output = convert(&ferry);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    error_line(
        &String::from_utf8_lossy(&output.stderr),
        &["installing blob"],
    );
    // The weights and configs it did write are gone again; nothing named.
    assert_store_unchanged(&ferry.store, &before);
    assert!(!ferry.listed().contains_key(CONVERTED));

    fs::remove_dir_all(&blocked).unwrap();
    let report = ferry.ok(&["convert", SOURCE, CONVERTED]);
    assert!(report.contains("src/train.py"), "{report}");
    let fsck = ferry.json(&["fsck", "--json"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
}

#[test]
fn converted_blobs_are_not_writable_by_group_or_others() {
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    // A ModelKit whose tar asks for world-writable files.
    let weights = b"weights that must not change under their digest";
    let layers = [(
        "model",
        tar_with(&[
            ("model/w.bin", weights, 0o666),
            ("model/run.sh", b"#!/bin/sh\n", 0o777),
        ]),
    )];
    store_modelkit(&ferry, t.path(), &layers, &kitfile("model", &[]));
    ferry.ok(&["convert", SOURCE, CONVERTED]);
    for bytes in [&weights[..], b"#!/bin/sh\n"] {
        let blob = blob_path(&ferry.store, &sha256(bytes));
        let mode = fs::metadata(&blob).unwrap().permissions().mode();
        assert_eq!(mode & 0o022, 0, "{} has mode {mode:o}", blob.display());
    }
    let fsck = ferry.json(&["fsck", "--json"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
}

#[test]
fn pack_with_a_kitfile_takes_hidden_files_and_honours_kitignore() {
    let t = tempdir();
    let project = t.path().join("project");
    let files: BTreeMap<&str, &[u8]> = BTreeMap::from([
        ("model/w.bin", &b"weights"[..]),
        ("model/.cache/meta.json", b"{}"),
        ("src/.env.example", b"KEY=\n"),
        ("src/train.py", b"print()\n"),
        ("src/scratch.tmp", b"scratch"),
        ("src/keep.tmp", b"kept"),
        ("notes.txt", b"not listed"),
    ]);
    for (path, bytes) in &files {
        let path = project.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    fs::write(
        project.join(".kitignore"),
        "# scratch\n*.tmp\n**/*.tmp\n!src/keep.tmp\n",
    )
    .unwrap();
    // Trees no listed path reaches are not walked at all: a virtualenv's
    // links out of the project (hidden or not) do not fail the pack.
    for venv in [".venv", "venv"] {
        fs::create_dir_all(project.join(venv).join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", project.join(venv).join("bin/python"))
            .unwrap();
    }
    fs::write(
        project.join("Kitfile"),
        "manifestVersion: 1.0.0\nmodel:\n  path: model\ncode:\n  - path: src\n",
    )
    .unwrap();
    let ferry = Ferry::new(t.path().join("store"));
    ferry.ok(&["pack", s(&project), "-t", "localhost/kitfile:v1"]);
    let out = t.path().join("out");
    ferry.ok(&["extract", "localhost/kitfile:v1", s(&out)]);
    let extracted: Vec<String> = contents(&out).into_keys().collect();
    assert_eq!(
        extracted,
        [
            "model/.cache/meta.json",
            "model/w.bin",
            "src/.env.example",
            "src/keep.tmp",
            "src/train.py"
        ],
        "hidden files below listed paths are packed (as kit pack does), \
         .kitignore's are not, and neither are the Kitfile and .kitignore"
    );

    // A .kitignore that links out of the project is refused like any link.
    let elsewhere = t.path().join("elsewhere.kitignore");
    fs::write(&elsewhere, "*.bin\n").unwrap();
    fs::remove_file(project.join(".kitignore")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, project.join(".kitignore")).unwrap();
    let stderr = ferry.fails(&["pack", s(&project), "-t", "localhost/kitfile:v2"]);
    error_line(&stderr, &[".kitignore", "points outside"]);
}

#[test]
fn convert_keeps_a_modelkits_kitignore_as_a_file() {
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    // What kit pack chose is what the ModelKit holds: a .kitignore inside
    // it is a file like any other, not a rule for the conversion.
    let layers = [(
        "model",
        tar_with(&[
            ("w.bin", b"weights", 0o644),
            (".kitignore", b"*.bin\n", 0o644),
        ]),
    )];
    store_modelkit(&ferry, t.path(), &layers, &kitfile(".", &[]));
    let report = ferry.ok(&["convert", SOURCE, CONVERTED]);
    assert!(!report.contains("not carried over"), "{report}");
    let out = t.path().join("out");
    ferry.ok(&["extract", CONVERTED, s(&out)]);
    let extracted: Vec<String> = contents(&out).into_keys().collect();
    assert_eq!(extracted, [".kitignore", "w.bin"]);
}
