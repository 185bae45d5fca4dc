//! Model signatures attached to artifacts: `ferry pack --sign-key` signs
//! the files it packs, `ferry verify` checks them against the artifact's
//! layers or `--files DIR`, `model_signing` accepts the attached signature
//! for an extracted copy, and a `modelSigned` policy decides what is pulled
//! and mounted.

use std::ffi::OsStr;
use std::fs;
use std::process::Command;

use crate::common::*;
use crate::registry::Server;

fn with_password<S: AsRef<OsStr>>(cli: &Cli, args: &[S]) -> std::process::Output {
    let mut cmd = cli.command(args);
    cmd.env("COSIGN_PASSWORD", "pw");
    run(&mut cmd)
}

fn keypair(cli: &Cli, name: &str) -> (String, String) {
    let key = s(&cli.path(&format!("{name}.key"))).to_string();
    let public = s(&cli.path(&format!("{name}.pub"))).to_string();
    let output = with_password(
        cli,
        &[
            "key",
            "generate",
            "--output-key",
            &key,
            "--output-pub",
            &public,
        ],
    );
    assert_success(&output, "key generate");
    (key, public)
}

/// A model with a nested directory and small files, packed with small files
/// bundled into tar layers so tar and raw layers are both signed.
fn model(cli: &Cli, seed: u64) -> std::path::PathBuf {
    model_at(cli.path("model"), seed)
}

fn model_at(dir: std::path::PathBuf, seed: u64) -> std::path::PathBuf {
    tiny_model(&dir, seed);
    fs::create_dir_all(dir.join("tokenizer")).unwrap();
    fs::write(dir.join("tokenizer/vocab.txt"), format!("a b c {seed}\n")).unwrap();
    fs::write(dir.join("tokenizer/merges.txt"), "a b\n").unwrap();
    dir
}

fn pack_signed(cli: &Cli, dir: &std::path::Path, reference: &str, key: &str) -> serde_json::Value {
    let output = with_password(
        cli,
        &[
            "pack",
            s(dir),
            "-t",
            reference,
            "--bundle-small",
            "1KiB",
            "--compress",
            "auto",
            "--sign-key",
            key,
            "--json",
        ],
    );
    assert_success(&output, "pack --sign-key");
    parse_json(&output, &["pack"])
}

#[test]
fn packed_files_are_signed_and_checked_against_the_artifact_and_a_copy() {
    let cli = Cli::new();
    let dir = model(&cli, 1);
    let (key, public) = keypair(&cli, "release");
    let (_, stranger) = keypair(&cli, "stranger");
    let packed = pack_signed(&cli, &dir, "localhost/m:1", &key);
    let referrer = packed["modelSignature"]
        .as_str()
        .expect("a referrer digest");

    let verified = cli.json(&["verify", "localhost/m:1", "--key", &public, "--json"]);
    assert_eq!(verified["verified"], true, "{verified}");
    let model = &verified["signatures"][0];
    assert_eq!(model["format"], "model");
    assert_eq!(model["digest"], referrer);
    assert_eq!(model["files"], 5, "{verified}");
    assert_eq!(model["checkedAgainst"], "the artifact");
    cli.fails(
        &["verify", "localhost/m:1", "--key", &stranger],
        &["no signature", "verifies"],
    );

    // What a user has in front of them: an extracted copy.
    let out = cli.path("out");
    cli.ok(&["extract", "localhost/m:1", s(&out)]);
    let copy = cli.json(&[
        "verify",
        "localhost/m:1",
        "--key",
        &public,
        "--files",
        s(&out),
        "--json",
    ]);
    assert_eq!(copy["verified"], true, "{copy}");
    assert_eq!(copy["signatures"][0]["checkedAgainst"], s(&out));

    // Changed, added and removed files are each named; exit 1.
    fs::write(out.join("tokenizer/vocab.txt"), "tampered\n").unwrap();
    fs::write(out.join("extra.py"), "import os\n").unwrap();
    fs::remove_file(out.join("README.md")).unwrap();
    let output = cli.run(&[
        "verify",
        "localhost/m:1",
        "--key",
        &public,
        "--files",
        s(&out),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for named in ["tokenizer/vocab.txt", "extra.py", "README.md"] {
        assert!(stdout.contains(named), "{named} not named: {stdout}");
    }

    // An artifact without a model signature: --files has nothing to check.
    cli.ferry.pack(&dir, "localhost/unsigned:1");
    cli.fails(
        &[
            "verify",
            "localhost/unsigned:1",
            "--key",
            &public,
            "--files",
            s(&dir),
        ],
        &["no model signatures"],
    );
}

/// Tar layers keep symbolic links (raw layers store their targets' bytes).
#[test]
fn a_symbolic_link_cannot_be_signed() {
    let cli = Cli::new();
    let dir = model(&cli, 2);
    std::os::unix::fs::symlink("config.json", dir.join("alias.json")).unwrap();
    let (key, _) = keypair(&cli, "release");
    let output = with_password(
        &cli,
        &[
            "pack",
            s(&dir),
            "-t",
            "localhost/m:1",
            "--layer-format",
            "tar",
            "--sign-key",
            &key,
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("alias.json"),
        "{}",
        show(&output)
    );
    assert!(
        cli.ferry.listed().is_empty(),
        "an unsigned artifact was stored"
    );
}

#[test]
fn model_signing_verifies_an_extracted_copy_with_the_attached_signature() {
    if !ferry_testkit::require::require(
        "model_signing CLI (pip install model-signing==1.1.1)",
        ferry_testkit::require::command_works("model_signing", &["--version"]),
    ) {
        return;
    }
    let cli = Cli::new();
    let dir = model(&cli, 3);
    let (key, public) = keypair(&cli, "release");
    let packed = pack_signed(&cli, &dir, "localhost/m:1", &key);
    let referrer = packed["modelSignature"].as_str().unwrap();

    // The referrer's one layer is the model.sig bundle.
    let blob = |digest: &str| fs::read(blob_path(&cli.ferry.store, digest)).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(referrer)).unwrap();
    assert_eq!(
        manifest["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://model_signing/signature/v1.0"
    );
    let signature = cli.path("model.sig");
    fs::write(
        &signature,
        blob(manifest["layers"][0]["digest"].as_str().unwrap()),
    )
    .unwrap();
    let out = cli.path("out");
    cli.ok(&["extract", "localhost/m:1", s(&out)]);
    let verify = |dir: &std::path::Path| {
        Command::new("model_signing")
            .args(["verify", "key", s(dir), "--signature", s(&signature)])
            .args(["--public_key", &public])
            .output()
            .unwrap()
    };
    let output = verify(&out);
    assert!(output.status.success(), "model_signing: {}", show(&output));
    fs::write(out.join("config.json"), "{}").unwrap();
    assert!(!verify(&out).status.success(), "a changed file verified");
}

#[test]
fn a_model_signed_policy_decides_what_is_pulled_and_mounted() {
    let registry = Server::ferry_serve::<&str>(&[]);
    let publisher = Cli::new();
    let dir = model(&publisher, 4);
    let (key, public) = keypair(&publisher, "release");
    let signed = registry.reference("models/signed:v1");
    let unsigned = registry.reference("models/unsigned:v1");
    pack_signed(&publisher, &dir, &signed, &key);
    fs::write(dir.join("README.md"), "# another model\n").unwrap();
    publisher.ferry.pack(&dir, &unsigned);
    publisher.ok(&["push", &signed]);
    publisher.ok(&["push", &unsigned]);

    let policy = publisher.path("policy.json");
    let rules = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {registry.reference("models"): [
            {"type": "modelSigned", "keyPath": public},
        ]}},
    });
    fs::write(&policy, rules.to_string()).unwrap();
    let policy = s(&policy).to_string();

    // Pulled with its signature: verified offline from the store after.
    let consumer = Cli::new();
    consumer.ok(&["pull", &signed, "--policy", &policy]);
    let local = consumer.json(&["verify", &signed, "--key", &public, "--json"]);
    assert_eq!(local["location"], "store", "{local}");
    assert_eq!(local["verified"], true, "{local}");

    // Unsigned: nothing comes in, the requirement is named.
    let output = consumer.run(&["pull", &unsigned, "--policy", &policy]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("modelSigned"),
        "{}",
        show(&output)
    );
    let listed = consumer.ferry.listed();
    assert!(listed.contains_key(&signed), "{listed:?}");
    assert!(!listed.contains_key(&unsigned), "{listed:?}");

    // Mount judges what is in the store, however it got there: the
    // unsigned artifact loaded from the registry without a policy is
    // refused, the signed one mounts.
    let open = consumer.path("open.json");
    fs::write(&open, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    consumer.ok(&["pull", &unsigned, "--policy", s(&open)]);
    let target = consumer.path("mnt");
    let output = consumer.run(&[
        "mount",
        &unsigned,
        s(&target),
        "--no-mount",
        "--policy",
        &policy,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("modelSigned"),
        "{}",
        show(&output)
    );
    assert!(!target.join("README.md").exists(), "something was mounted");
    consumer.ok(&[
        "mount",
        &signed,
        s(&target),
        "--no-mount",
        "--policy",
        &policy,
    ]);
    assert!(target.join("tokenizer/vocab.txt").is_file());
    consumer.ok(&["umount", s(&target)]);
}

#[test]
fn a_model_signature_of_other_files_does_not_satisfy_the_policy() {
    let registry = Server::ferry_serve::<&str>(&[]);
    let publisher = Cli::new();
    let dir = model(&publisher, 5);
    let (key, public) = keypair(&publisher, "release");
    let reference = registry.reference("models/m:v1");
    publisher.ferry.pack(&dir, &reference);
    publisher.ok(&["push", &reference]);
    // A valid signature of a directory that differs in one file, attached
    // to this artifact on the registry.
    let other = model_at(publisher.path("other"), 5);
    fs::write(other.join("config.json"), "{\"model_type\":\"other\"}\n").unwrap();
    let sig = publisher.path("model.sig");
    let output = with_password(
        &publisher,
        &[
            "sign-model",
            s(&other),
            "--key",
            &key,
            "--signature",
            s(&sig),
        ],
    );
    assert_success(&output, "sign-model");
    publisher.ok(&[
        "attach",
        &reference,
        "--artifact-type",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "--media-type",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "-a",
        "dev.sigstore.bundle.predicateType=https://model_signing/signature/v1.0",
        s(&sig),
    ]);

    let policy = publisher.path("policy.json");
    let rules = serde_json::json!({
        "default": [{"type": "modelSigned", "keyPath": public}],
    });
    fs::write(&policy, rules.to_string()).unwrap();
    let consumer = Cli::new();
    let output = consumer.run(&["pull", &reference, "--policy", s(&policy)]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config.json") && stderr.contains("changed"),
        "{stderr}"
    );
    assert!(consumer.ferry.listed().is_empty());
}
