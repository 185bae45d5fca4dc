//! The store is a real OCI layout (skopeo reads and copies it), and
//! extract gives back exactly what was packed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// `oci:<store>/artifacts:<reference>` for skopeo.
fn oci(store: &Path, reference: &str) -> String {
    format!("oci:{}/artifacts:{reference}", s(store))
}

#[test]
fn skopeo_reads_the_exact_manifest() {
    if !require_skopeo() {
        return;
    }
    let model = gen_model(3, 2);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    let digest = ferry.pack(&model, REF);
    let output = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(oci(&ferry.store, REF)));
    assert_success(&output, "skopeo inspect --raw");
    let blob = fs::read(blob_path(&ferry.store, &digest)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&blob)
    );
    assert_eq!(sha256(&output.stdout), digest);
}

#[test]
fn skopeo_copies_every_blob_byte_for_byte() {
    if !require_skopeo() {
        return;
    }
    let model = gen_model(3, 2);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    let digest = ferry.pack(&model, REF);
    let layout = dir.path().join("layout2");
    let output = run(Command::new("skopeo")
        .arg("copy")
        .arg(oci(&ferry.store, REF))
        .arg(format!("oci:{}:m", s(&layout))));
    assert_success(&output, "skopeo copy");

    let manifest = ferry.manifest(REF);
    let mut expected: Vec<String> = vec![
        digest.clone(),
        manifest["config"]["digest"].as_str().unwrap().to_string(),
    ];
    for layer in manifest["layers"].as_array().unwrap() {
        expected.push(layer["digest"].as_str().unwrap().to_string());
    }
    expected.sort();
    let copied = names(&layout.join("blobs/sha256"));
    let copied: Vec<String> = copied.into_iter().map(|n| format!("sha256:{n}")).collect();
    assert_eq!(
        copied, expected,
        "the copy holds exactly the artifact's blobs"
    );
    for digest in &expected {
        let ours = fs::read(blob_path(&ferry.store, digest)).unwrap();
        let hex = digest.trim_start_matches("sha256:");
        let theirs = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
        assert!(ours == theirs, "blob {digest} differs after skopeo copy");
    }
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], digest.as_str());
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "m"
    );
}

/// What a consumer that knows only the OCI layout and the title annotation
/// (CRI-O's image volumes, ORAS) sees: each layer's blob written as a file
/// named by its title.
fn read_layout_as_plain_files(layout: &Path, name: &str, out: &Path) {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .expect("the name is in index.json");
    let blob = |digest: &str| {
        fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let manifest: Value = serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let title = layer["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .expect("every layer has a title");
        let target = out.join(title);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, blob(layer["digest"].as_str().unwrap())).unwrap();
    }
}

#[test]
fn a_default_pack_is_raw_and_read_file_for_file_through_skopeo() {
    if !require_skopeo() {
        return;
    }
    let model = gen_model(3, 2);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    ferry.pack(&model, REF);
    let manifest = ferry.manifest(REF);
    for layer in manifest["layers"].as_array().unwrap() {
        let media_type = layer["mediaType"].as_str().unwrap();
        assert!(
            media_type.starts_with("application/vnd.cncf.model.")
                && media_type.ends_with(".v1.raw"),
            "a default pack writes raw layers only: {layer}"
        );
    }
    let layout = dir.path().join("layout");
    let output = run(Command::new("skopeo")
        .arg("copy")
        .arg(oci(&ferry.store, REF))
        .arg(format!("oci:{}:m", s(&layout))));
    assert_success(&output, "skopeo copy");
    let out = dir.path().join("plain");
    read_layout_as_plain_files(&layout, "m", &out);
    assert_eq!(contents(&model), contents(&out));
}

/// A generated model plus what real model directories also have: a nested
/// folder, a symlink, an executable script and a private file.
fn rich_model(dir: &Path, generated: &Path) {
    copy_tree(generated, dir);
    fs::create_dir(dir.join("1_Pooling")).unwrap();
    fs::write(
        dir.join("1_Pooling/config.json"),
        "{\"word_embedding_dimension\": 256, \"pooling_mode_mean_tokens\": true}\n",
    )
    .unwrap();
    symlink("LICENSE", dir.join("LICENSE.link")).unwrap();
    let script = dir.join("run.sh");
    fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let private = dir.join("notes.txt");
    fs::write(&private, "keep this to the group\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
}

#[test]
fn extract_gives_back_identical_files_and_modes() {
    let generated = gen_model(3, 2);
    let dir = tempdir();
    let model = dir.path().join("model");
    rich_model(&model, &generated);
    let ferry = Ferry::new(dir.path().join("store"));
    let source = tree(&model);
    assert!(matches!(source["run.sh"], Node::File { mode: 0o755, .. }));
    assert!(matches!(source["LICENSE.link"], Node::Link { .. }));

    // Raw layers (the default) hold file bytes: the link arrives as a copy
    // of its target, with the target's content and mode.
    ferry.pack(&model, REF);
    let out = dir.path().join("out-raw");
    ferry.ok(&["extract", REF, s(&out)]);
    let mut followed: BTreeMap<String, Node> = source.clone();
    followed.insert("LICENSE.link".into(), source["LICENSE"].clone());
    let followed = files_only(followed);
    assert_same_tree(&followed, &files_only(tree(&out)));
    assert!(out.join("1_Pooling").is_dir());

    // Tar layers keep the link as a link.
    ferry.ok(&[
        "pack",
        s(&model),
        "-t",
        "localhost:5000/m:tar",
        "--layer-format",
        "tar",
    ]);
    let out = dir.path().join("out-tar");
    ferry.ok(&["extract", "localhost:5000/m:tar", s(&out)]);
    let extracted = tree(&out);
    assert_eq!(
        extracted["LICENSE.link"],
        Node::Link {
            target: "LICENSE".into()
        }
    );
    assert_same_tree(&files_only(source.clone()), &files_only(extracted));

    // Small files bundled into one tar per category come back the same way
    // (with raw layers for the rest, links are followed).
    ferry.ok(&[
        "pack",
        s(&model),
        "-t",
        "localhost:5000/m:bundled",
        "--bundle-small",
        "64KiB",
    ]);
    let bundled = ferry.json(&["inspect", "localhost:5000/m:bundled", "--json"]);
    assert!(
        bundled["layers"].as_array().unwrap().len() < source.len() - 2,
        "small files share layers: {bundled}"
    );
    let out = dir.path().join("out-bundled");
    ferry.ok(&["extract", "localhost:5000/m:bundled", s(&out)]);
    assert_same_tree(&followed, &files_only(tree(&out)));
}

#[test]
fn extract_into_a_non_empty_directory_needs_force() {
    let dir = tempdir();
    let model = dir.path().join("model");
    tiny_model(&model, 21);
    let ferry = Ferry::new(dir.path().join("store"));
    ferry.pack(&model, REF);

    let target = dir.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("config.json"), "stale").unwrap();
    fs::write(target.join("keep.txt"), "mine").unwrap();
    let before = tree(&target);
    let stderr = ferry.fails(&["extract", REF, s(&target)]);
    error_line(&stderr, &[s(&target), "--force"]);
    assert_eq!(tree(&target), before, "nothing was written");
    let leftovers: Vec<_> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with(".ferry-extract-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    ferry.ok(&["extract", REF, s(&target), "--force"]);
    let mut expected = tree(&model);
    expected.insert("keep.txt".into(), before["keep.txt"].clone());
    assert_same_tree(&files_only(expected), &files_only(tree(&target)));

    // A file where the directory should be is refused even with --force.
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let stderr = ferry.fails(&["extract", REF, s(&file), "--force"]);
    error_line(&stderr, &[s(&file)]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
}
