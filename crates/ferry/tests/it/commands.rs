//! Every command's ordinary use: output formats, JSON fields, names.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::*;

const SUBCOMMANDS: [&str; 14] = [
    "init",
    "pack",
    "ls",
    "inspect",
    "tag",
    "rm",
    "prune",
    "fsck",
    "extract",
    "key",
    "sign-model",
    "verify-model",
    "sign",
    "verify",
];

#[test]
fn pack_prints_the_reference_and_the_manifest_digest() {
    let model = gen_model(1, 2);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    let stdout = ferry.ok(&["pack", s(&model), "-t", REF]);
    let digest = parse_pack_line(&stdout, REF);
    let manifest = fs::read(blob_path(&ferry.store, &digest)).expect("manifest blob exists");
    assert_eq!(
        sha256(&manifest),
        digest,
        "the printed digest names the manifest"
    );
    let index = fs::read_to_string(ferry.store.join("artifacts/index.json")).unwrap();
    assert!(
        index.contains(&digest) && index.contains(REF),
        "index.json: {index}"
    );
}

#[test]
fn json_outputs_have_the_expected_fields() {
    let model = gen_model(1, 2);
    let files = file_sizes(&model);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));

    // Uncompressed, so the stored size exceeds the files' size.
    let packed = ferry.json(&["pack", s(&model), "-t", REF, "--json", "--compress", "none"]);
    assert_eq!(
        keys(&packed),
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
    assert_eq!(
        packed["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert!(packed["sentBytes"].is_null(), "nothing is sent: {packed}");
    assert!(
        packed["modelSignature"].is_null(),
        "nothing signed: {packed}"
    );
    assert_eq!(packed["reference"], REF);
    let digest = packed["digest"].as_str().unwrap().to_string();
    assert!(is_digest(&digest), "{packed}");
    assert_eq!(packed["layers"], files.len(), "one layer per file");
    assert_eq!(packed["contentBytes"], files.values().sum::<u64>());
    assert!(packed["seconds"].as_f64().is_some_and(|t| t >= 0.0));

    let listed = ferry.json(&["ls", "--json"]);
    let rows = listed.as_array().expect("ls --json is an array");
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(keys(&rows[0]), ["created", "digest", "reference", "size"]);
    assert_eq!(rows[0]["reference"], REF);
    assert_eq!(rows[0]["digest"], digest.as_str());
    assert!(
        rows[0]["created"].is_null(),
        "no creation time unless asked"
    );
    assert!(rows[0]["size"].as_u64().unwrap() > files.values().sum::<u64>());

    let inspected = ferry.json(&["inspect", REF, "--json"]);
    assert_eq!(
        keys(&inspected),
        ["artifactType", "config", "digest", "layers", "reference"]
    );
    assert_eq!(inspected["digest"], digest.as_str());
    assert_eq!(inspected["reference"], REF);
    assert_eq!(
        inspected["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(inspected["config"]["config"]["precision"], "bfloat16");
    let layers = inspected["layers"].as_array().unwrap();
    let mut paths: Vec<&str> = layers.iter().map(|l| l["path"].as_str().unwrap()).collect();
    paths.sort_unstable();
    assert_eq!(paths, files.keys().map(String::as_str).collect::<Vec<_>>());
    for layer in layers {
        assert_eq!(
            keys(layer),
            [
                "category",
                "digest",
                "encoding",
                "mediaType",
                "path",
                "size",
                "untested"
            ]
        );
        assert_eq!(layer["size"], files[layer["path"].as_str().unwrap()]);
    }
    let weight = layers
        .iter()
        .find(|l| l["path"] == "model-00001-of-00002.safetensors")
        .unwrap();
    assert_eq!(weight["category"], "weight");
    assert_eq!(
        weight["mediaType"],
        "application/vnd.cncf.model.weight.v1.raw"
    );

    ferry.ok(&["tag", REF, "localhost:5000/m:copy"]);
    let removed = ferry.json(&["rm", "localhost:5000/m:copy", "--json"]);
    let rows = removed.as_array().expect("rm --json is an array");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        keys(&rows[0]),
        ["blobs", "entries", "freedBytes", "reference"]
    );
    assert_eq!(rows[0]["reference"], "localhost:5000/m:copy");
    assert_eq!(rows[0]["entries"], 1);
    assert_eq!(rows[0]["blobs"], 0, "the other name still needs every blob");

    let pruned = ferry.json(&["prune", "--json"]);
    assert_eq!(
        keys(&pruned),
        ["blobs", "dryRun", "freedBytes", "layerCache", "tempFiles"]
    );
    assert_eq!(pruned["layerCache"], Value::Array(vec![]));
    assert_eq!(pruned["dryRun"], false);
    assert_eq!(pruned["blobs"], Value::Array(vec![]));
    assert_eq!(pruned["tempFiles"], Value::Array(vec![]));

    let checked = ferry.json(&["fsck", "--json"]);
    assert_eq!(
        keys(&checked),
        [
            "checked",
            "checkedBytes",
            "clean",
            "corrupt",
            "damaged",
            "indexError",
            "leftovers",
            "missing",
            "repairs",
            "unreferenced"
        ]
    );
    assert_eq!(checked["clean"], true);
    let blobs = names(&ferry.store.join("artifacts/blobs/sha256")).len();
    assert_eq!(checked["checked"], blobs, "fsck re-hashes every blob");
    assert_eq!(blobs, files.len() + 2, "layers, config and manifest");

    let out = dir.path().join("out");
    let extracted = ferry.json(&["extract", REF, s(&out), "--json"]);
    assert_eq!(
        keys(&extracted),
        ["digest", "dir", "entries", "reference", "writtenBytes"]
    );
    assert_eq!(extracted["reference"], REF);
    assert_eq!(extracted["digest"], digest.as_str());
    assert_eq!(extracted["dir"], s(&out));
    assert_eq!(extracted["entries"], files.len());
    assert_eq!(extracted["writtenBytes"], files.values().sum::<u64>());
}

#[test]
fn inspect_manifest_and_config_print_the_stored_bytes() {
    let model = gen_model(1, 2);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    let digest = ferry.pack(&model, REF);

    let output = ferry.run(&["inspect", REF, "--manifest"]);
    assert_success(&output, "inspect --manifest");
    let printed = output
        .stdout
        .strip_suffix(b"\n")
        .expect("a trailing newline");
    assert_eq!(sha256(printed), digest, "stdout is the manifest itself");
    assert_eq!(printed, fs::read(blob_path(&ferry.store, &digest)).unwrap());

    // By digest too.
    let by_digest = ferry.run(&["inspect", &digest, "--manifest"]);
    assert_eq!(by_digest.stdout, output.stdout);

    let manifest: Value = serde_json::from_slice(printed).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let output = ferry.run(&["inspect", REF, "--config"]);
    assert_success(&output, "inspect --config");
    let config = output
        .stdout
        .strip_suffix(b"\n")
        .expect("a trailing newline");
    assert_eq!(sha256(config), config_digest);
    assert_eq!(
        config.len() as u64,
        manifest["config"]["size"].as_u64().unwrap()
    );
    let config: Value = serde_json::from_slice(config).unwrap();
    assert_eq!(config["config"]["format"], "safetensors");
    assert_eq!(config["modelfs"]["type"], "layers");
    assert_eq!(
        config["modelfs"]["diffIds"].as_array().unwrap().len(),
        manifest["layers"].as_array().unwrap().len()
    );

    // The human view names the reference, digest and every file.
    let text = ferry.ok(&["inspect", REF]);
    assert!(text.contains(&format!("Reference:    {REF}")), "{text}");
    assert!(text.contains(&format!("Digest:       {digest}")), "{text}");
    assert!(text.contains("model-00002-of-00002.safetensors"), "{text}");

    let stderr = ferry.fails(&["inspect", "localhost:5000/m:nope"]);
    error_line(&stderr, &["localhost:5000/m:nope", "not found"]);
}

#[test]
fn tag_adds_a_name_and_rm_removes_a_tag_or_a_digest() {
    let dir = tempdir();
    let model = dir.path().join("model");
    tiny_model(&model, 1);
    let ferry = Ferry::new(dir.path().join("store"));
    let digest = ferry.pack(&model, REF);
    let blobs = names(&ferry.store.join("artifacts/blobs/sha256"));

    let stdout = ferry.ok(&["tag", REF, "other:v2"]);
    assert_eq!(
        stdout.trim(),
        format!("docker.io/library/other:v2 {digest}")
    );
    let listed = ferry.listed();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[REF], digest);
    assert_eq!(listed["docker.io/library/other:v2"], digest);
    let table = ferry.ok(&["ls"]);
    assert!(
        table.contains(REF) && table.contains("docker.io/library/other:v2"),
        "{table}"
    );

    // rm by tag: the other name and every blob stay.
    ferry.ok(&["rm", "other:v2"]);
    assert_eq!(
        ferry.listed().into_iter().collect::<Vec<_>>(),
        [(REF.to_string(), digest.clone())]
    );
    assert_eq!(names(&ferry.store.join("artifacts/blobs/sha256")), blobs);
    let stderr = ferry.fails(&["rm", "other:v2"]);
    error_line(&stderr, &["other:v2", "not found"]);

    // rm by digest: both names and the blobs go.
    ferry.ok(&["tag", &digest, "localhost:5000/m:v2"]);
    assert_eq!(ferry.listed().len(), 2);
    let removed = ferry.json(&["rm", &digest, "--json"]);
    assert_eq!(removed[0]["entries"], 2, "{removed}");
    assert_eq!(removed[0]["blobs"], blobs.len(), "{removed}");
    assert!(ferry.listed().is_empty());
    assert!(names(&ferry.store.join("artifacts/blobs/sha256")).is_empty());
    ferry.fails(&["inspect", &digest]);

    let stderr = ferry.fails(&["tag", REF, "x:y"]);
    error_line(&stderr, &[REF, "not found"]);
}

#[test]
fn help_works_for_every_subcommand() {
    let top = run(Command::new(FERRY).arg("--help"));
    assert_success(&top, "ferry --help");
    let text = String::from_utf8_lossy(&top.stdout);
    // Every command `--help` lists, which must include the known ones.
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    for sub in SUBCOMMANDS {
        assert!(listed.contains(&sub), "--help lists {sub}:\n{text}");
    }
    for sub in listed {
        let output = run(Command::new(FERRY).args([sub, "--help"]));
        assert_success(&output, &format!("ferry {sub} --help"));
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains(&format!("Usage: ferry {sub}")), "{help}");
        assert!(help.contains("--store"), "global flags are listed: {help}");
    }
    let bad = run(Command::new(FERRY).arg("frobnicate"));
    assert_failure(&bad, "ferry frobnicate");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("frobnicate"));
}

#[test]
fn a_closed_stdout_ends_ferry_without_a_panic() {
    let dir = tempdir();
    let model = dir.path().join("model");
    tiny_model(&model, 2);
    let ferry = Ferry::new(dir.path().join("store"));
    ferry.pack(&model, REF);
    for args in [["ls", "--json"], ["inspect", REF]] {
        // Close the read end before ferry writes (as `ferry ls | head -0`).
        let mut child = ferry
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "ferry {args:?}: {stderr}");
        assert!(
            output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
            "ferry {args:?} ends quietly: {:?} {stderr}",
            output.status
        );
    }
}

#[test]
fn init_writes_a_modelfile_that_pack_then_uses() {
    let generated = gen_model(1, 2);
    let dir = tempdir();
    let model = dir.path().join("llama-tiny");
    copy_tree(&generated, &model);
    let modelfile = model.join("Modelfile");
    let ferry = Ferry::new(dir.path().join("store"));

    let stdout = ferry.ok(&["init", s(&model)]);
    assert!(stdout.contains(s(&modelfile)), "{stdout}");
    let text = fs::read_to_string(&modelfile).expect("init wrote a Modelfile");
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        "NAME llama-tiny",
        "PRECISION bfloat16",
        "MODEL model-00001-of-00002.safetensors",
        "MODEL model-00002-of-00002.safetensors",
        "CONFIG config.json",
        "CONFIG tokenizer.json",
        "CONFIG generation_config.json",
        "CODE configuration_synthetic.py",
        "DOC README.md",
        "DOC LICENSE",
    ] {
        assert!(
            lines.contains(&expected),
            "Modelfile lacks {expected:?}:\n{text}"
        );
    }
    let param_size = lines
        .iter()
        .find_map(|l| l.strip_prefix("PARAMSIZE "))
        .unwrap_or_else(|| panic!("no PARAMSIZE:\n{text}"));
    assert!(
        param_size.ends_with('M') && param_size.len() > 1,
        "{param_size}"
    );
    assert!(!lines.contains(&"MODEL config.json"), "{text}");
    assert!(!lines.iter().any(|l| l.ends_with(" Modelfile")), "{text}");

    // A second init refuses to overwrite; --force does.
    fs::write(&modelfile, format!("{text}# edited by hand\n")).unwrap();
    let stderr = ferry.fails(&["init", s(&model)]);
    error_line(&stderr, &[s(&modelfile), "--force"]);
    assert!(
        fs::read_to_string(&modelfile)
            .unwrap()
            .ends_with("# edited by hand\n")
    );
    ferry.ok(&["init", s(&model), "--force"]);
    assert_eq!(fs::read_to_string(&modelfile).unwrap(), text);

    // pack reads it: recorded in the manifest, every layer classified by it,
    // and the Modelfile itself is not a layer.
    ferry.pack(&model, REF);
    let manifest = ferry.manifest(REF);
    assert_eq!(
        manifest["annotations"]["org.cncf.modctl.modelfile"],
        text.as_str()
    );
    let inspected = ferry.json(&["inspect", REF, "--json"]);
    let layers = inspected["layers"].as_array().unwrap();
    assert_eq!(layers.len(), file_sizes(&generated).len());
    for layer in layers {
        assert_eq!(layer["untested"], false, "{layer}");
        assert_ne!(layer["path"], "Modelfile");
    }
    assert_eq!(inspected["config"]["descriptor"]["name"], "llama-tiny");

    // Without a Modelfile the categories are guesses, marked untested.
    ferry.pack(&generated, "localhost:5000/m:guessed");
    let guessed = ferry.json(&["inspect", "localhost:5000/m:guessed", "--json"]);
    assert!(
        guessed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["untested"] == true),
        "{guessed}"
    );
    assert!(
        ferry.manifest("localhost:5000/m:guessed")["annotations"]["org.cncf.modctl.modelfile"]
            .is_null()
    );
}
