//! `ferry scan` of files, directories, stored artifacts (raw and tar
//! layers) and registry artifacts, with picklescan's exit codes; `ferry
//! pack` refusing a dangerous file unless `--allow-unsafe`.

use std::fs;

use crate::common::*;
use crate::registry::Server;

/// `os.system("id")` as a protocol 0 pickle.
const EVIL: &[u8] = b"cos\nsystem\n(S'id'\ntR.";
/// A user's own class: not known safe, not known dangerous.
const UNKNOWN: &[u8] = b"\x80\x02cmyproject.models\nNet\nq\x00)\x81q\x01.";

fn model_with(cli: &Cli, extra: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir = cli.path("model");
    tiny_model(&dir, 5);
    for (name, bytes) in extra {
        fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn scan_judges_files_and_directories_with_picklescans_exit_codes() {
    let cli = Cli::new();
    let clean = model_with(&cli, &[]);
    let output = cli.exits(0, &["scan", s(&clean)]);
    assert!(
        String::from_utf8_lossy(&output.stdout).trim().is_empty(),
        "{}",
        show(&output)
    );

    fs::write(clean.join("training_state.pkl"), EVIL).unwrap();
    let output = cli.exits(1, &["scan", s(&clean)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("training_state.pkl: dangerous") && stdout.contains("os.system"),
        "{stdout}"
    );
    let report = parse_json(&cli.exits(1, &["scan", s(&clean), "--json"]), &["scan"]);
    assert_eq!(report["verdict"], "dangerous");
    assert_eq!(report["counts"]["dangerous"], 1);
    let finding = &report["files"][0]["findings"][0];
    assert_eq!(finding["global"], "os.system");
    assert_eq!(finding["opcode"], "GLOBAL");
    assert_eq!(finding["offset"], 0);

    let unknown = cli.path("unknown.pkl");
    fs::write(&unknown, UNKNOWN).unwrap();
    cli.exits(0, &["scan", s(&unknown)]);
    cli.exits(1, &["scan", s(&unknown), "--strict"]);
    cli.exits(2, &["scan", "/nonexistent/model.pkl"]);
}

#[test]
fn pack_refuses_a_dangerous_file_unless_allowed() {
    let cli = Cli::new();
    let dir = model_with(&cli, &[("optimizer.pt", EVIL), ("net.pkl", UNKNOWN)]);
    let output = cli.run(&["pack", s(&dir), "-t", "localhost/m:1"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("optimizer.pt is dangerous"), "{stderr}");
    assert!(
        stderr.contains("net.pkl is suspicious"),
        "a warning: {stderr}"
    );
    assert!(cli.ferry.listed().is_empty(), "nothing is stored");
    cli.ok(&["pack", s(&dir), "-t", "localhost/m:1", "--allow-unsafe"]);
    assert!(cli.ferry.listed().contains_key("localhost/m:1"));
}

#[test]
fn stored_and_registry_artifacts_are_scanned_layer_by_layer() {
    let registry = Server::ferry_serve::<&str>(&[]);
    let cli = Cli::new();
    let dir = model_with(&cli, &[]);
    fs::create_dir_all(dir.join("extra")).unwrap();
    fs::write(dir.join("extra/state.pkl"), EVIL).unwrap();
    let reference = registry.reference("models/m:v1");
    // Tar layers: the file is found inside the archive.
    cli.ok(&[
        "pack",
        s(&dir),
        "-t",
        &reference,
        "--layer-format",
        "tar",
        "--allow-unsafe",
    ]);
    let report = parse_json(&cli.exits(1, &["scan", &reference, "--json"]), &["scan"]);
    assert_eq!(report["files"][0]["path"], "extra/state.pkl", "{report}");
    cli.ok(&["push", &reference]);

    // Another machine scans it on the registry; nothing stays in its store.
    let other = Cli::new();
    let output = other.exits(1, &["scan", &reference]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("extra/state.pkl: dangerous"));
    assert!(
        other.ferry.listed().is_empty(),
        "the scratch store was kept"
    );
}

#[test]
fn a_signed_scan_report_is_verified_and_demanded_by_the_policy() {
    let cli = Cli::new();
    let clean = model_with(&cli, &[]);
    cli.ferry.pack(&clean, "localhost/clean:1");
    fs::write(clean.join("state.pkl"), EVIL).unwrap();
    cli.ok(&[
        "pack",
        s(&clean),
        "-t",
        "localhost/evil:1",
        "--allow-unsafe",
    ]);
    let (key, public) = (cli.path("k.key"), cli.path("k.pub"));
    let mut generate = cli.command(&[
        "key",
        "generate",
        "--output-key",
        s(&key),
        "--output-pub",
        s(&public),
    ]);
    generate.env("COSIGN_PASSWORD", "");
    assert_success(&run(&mut generate), "key generate");
    let attach = |reference: &str| {
        let mut cmd = cli.command(&["scan", reference, "--attach", "--key", s(&key)]);
        cmd.env("COSIGN_PASSWORD", "");
        run(&mut cmd)
    };
    assert_eq!(attach("localhost/clean:1").status.code(), Some(0));
    assert_eq!(
        attach("localhost/evil:1").status.code(),
        Some(1),
        "findings still exit 1"
    );

    let verified = cli.json(&["verify", "localhost/clean:1", "--key", s(&public), "--json"]);
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["signatures"][0]["format"], "scan");
    let output = cli.run(&["verify", "localhost/evil:1", "--key", s(&public)]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("found dangerous files"));

    let policy = cli.path("policy.json");
    fs::write(
        &policy,
        serde_json::json!({"default": [{"type": "scanned", "keyPath": public}]}).to_string(),
    )
    .unwrap();
    let target = cli.path("mnt");
    cli.ok(&[
        "mount",
        "localhost/clean:1",
        s(&target),
        "--no-mount",
        "--policy",
        s(&policy),
    ]);
    cli.ok(&["umount", s(&target)]);
    let output = cli.run(&[
        "mount",
        "localhost/evil:1",
        s(&target),
        "--no-mount",
        "--policy",
        s(&policy),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("scanned") && stderr.contains("dangerous"),
        "{stderr}"
    );
    assert!(!target.exists(), "nothing was mounted");
}

#[test]
fn links_are_judged_under_their_own_names() {
    let cli = Cli::new();
    // A Hugging Face cache snapshot: every file a link into ../../blobs.
    let snapshot = hf_cache_repo(
        &cli.path("hub"),
        "models--org--m",
        HF_COMMIT,
        &[
            ("pytorch_model.bin", b"cposix\nsystem\n(S'id'\ntR."),
            ("config.json", b"{}"),
        ],
    );
    std::os::unix::fs::symlink("../../blobs/gone", snapshot.join("dangling.pkl")).unwrap();
    let report = parse_json(&cli.exits(1, &["scan", s(&snapshot), "--json"]), &["scan"]);
    let verdicts: std::collections::BTreeMap<String, String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(verdicts["pytorch_model.bin"], "dangerous", "{report}");
    assert_eq!(verdicts["dangling.pkl"], "suspicious", "{report}");
    // The path given may be a link itself.
    let link = cli.path("model-link");
    std::os::unix::fs::symlink(&snapshot, &link).unwrap();
    cli.exits(1, &["scan", s(&link)]);
}
