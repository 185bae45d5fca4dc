//! `ferry sign` and `ferry verify` of artifacts: signed in the store before
//! the first push, carried by push, verified on the registry (by a store
//! that never had the artifact), signed on the registry; wrong keys,
//! annotations and replayed signatures refused with exit 1.

use std::ffi::OsStr;

use crate::common::*;
use crate::registry::Server;

fn serve() -> Server {
    Server::ferry_serve::<&str>(&[])
}

/// Runs ferry with the key password set; returns the output.
fn with_password<S: AsRef<OsStr>>(cli: &Cli, args: &[S]) -> std::process::Output {
    let mut cmd = cli.command(args);
    cmd.env("COSIGN_PASSWORD", "test password");
    run(&mut cmd)
}

fn keypair(cli: &Cli, name: &str) -> (String, String) {
    let key = cli.path(&format!("{name}.key"));
    let public = cli.path(&format!("{name}.pub"));
    let output = with_password(
        cli,
        &[
            "key",
            "generate",
            "--output-key",
            s(&key),
            "--output-pub",
            s(&public),
        ],
    );
    assert_success(&output, "key generate");
    (s(&key).to_string(), s(&public).to_string())
}

#[test]
fn signatures_made_before_the_first_push_verify_on_the_registry() {
    let registry = serve();
    let signer = Cli::new();
    tiny_model(&signer.path("model"), 11);
    let reference = registry.reference("models/m:v1");
    let digest = signer.ferry.pack(&signer.path("model"), &reference);
    let (key, public) = keypair(&signer, "release");
    let (_, stranger) = keypair(&signer, "stranger");

    // Signed in the store, before the registry has ever seen the artifact.
    let output = with_password(
        &signer,
        &[
            "sign",
            &reference,
            "--key",
            &key,
            "--format",
            "both",
            "-a",
            "stage=release",
            "--json",
        ],
    );
    assert_success(&output, "sign");
    let signed = parse_json(&output, &["sign"]);
    assert_eq!(signed["location"], "store");
    assert_eq!(signed["digest"], digest.as_str());
    assert_eq!(
        signed["signatures"].as_array().unwrap().len(),
        2,
        "{signed}"
    );
    let local = signer.json(&["verify", &reference, "--key", &public, "--json"]);
    assert_eq!(local["verified"], true, "{local}");

    signer.ok(&["push", &reference]);

    // Another machine: nothing in its store, everything from the registry.
    let consumer = Cli::new();
    let verified = consumer.json(&[
        "verify",
        &reference,
        "--key",
        &public,
        "-a",
        "stage=release",
        "--json",
    ]);
    assert_eq!(verified["location"], "registry");
    assert_eq!(verified["digest"], digest.as_str());
    assert_eq!(verified["verified"], true, "{verified}");
    let formats: Vec<&str> = verified["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["verified"] == true)
        .map(|s| s["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["bundle", "legacy"], "{verified}");
    let expected_identity = registry.reference("models/m");
    assert_eq!(
        verified["signatures"][0]["dockerReference"],
        expected_identity.as_str()
    );

    // Exit 1 with the reason: another key, another annotation.
    consumer.fails(
        &["verify", &reference, "--key", &stranger],
        &["no signature", "verifies"],
    );
    let output = consumer.run(&["verify", &reference, "--key", &public, "-a", "stage=test"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("stage"),
        "{}",
        show(&output)
    );
}

#[test]
fn signing_on_the_registry_and_refusing_what_is_unsigned_or_replayed() {
    let registry = serve();
    let cli = Cli::new();
    tiny_model(&cli.path("model"), 12);
    let reference = registry.reference("models/m:v1");
    let other = registry.reference("models/other:v1");
    cli.ferry.pack(&cli.path("model"), &reference);
    cli.ok(&["push", &reference]);
    // The same manifest in a second repository.
    cli.ok(&["copy", &reference, &other]);
    let (key, public) = keypair(&cli, "ops");

    // Unsigned: exit 1, saying there is nothing.
    cli.fails(
        &["verify", &reference, "--key", &public, "--remote"],
        &["no signatures"],
    );

    // Signed on the registry (the store does not have `other`).
    let output = with_password(
        &cli,
        &[
            "sign", &other, "--key", &key, "--format", "legacy", "--remote", "--json",
        ],
    );
    assert_success(&output, "sign --remote");
    assert_eq!(parse_json(&output, &["sign"])["location"], "registry");
    let verified = cli.json(&["verify", &other, "--key", &public, "--json"]);
    assert_eq!(verified["verified"], true, "{verified}");

    // The same content under another repository: the signature of `other`
    // copied to `m`'s .sig tag names the wrong repository.
    let digest = cli.ferry.resolve(&reference);
    let tag = format!("{}.sig", digest.replace(':', "-"));
    cli.ok(&[
        "copy",
        &registry.reference(&format!("models/other:{tag}")),
        &registry.reference(&format!("models/m:{tag}")),
    ]);
    let output = cli.run(&["verify", &reference, "--key", &public, "--remote", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verified"], false);
    assert!(
        report["signatures"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("another repository"),
        "{report}"
    );
}

#[test]
fn the_policy_refuses_unsigned_artifacts_before_anything_comes_in() {
    let registry = serve();
    let publisher = Cli::new();
    tiny_model(&publisher.path("model"), 13);
    let reference = registry.reference("models/m:v1");
    let digest = publisher.ferry.pack(&publisher.path("model"), &reference);
    publisher.ok(&["push", &reference]);
    let (key, public) = keypair(&publisher, "release");
    let policy = publisher.path("policy.json");
    let rules = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {registry.reference("models"): [{
            "type": "sigstoreSigned",
            "keyPath": public,
            "signedIdentity": {"type": "matchRepository"},
        }]}},
    });
    std::fs::write(&policy, rules.to_string()).unwrap();
    let policy = s(&policy).to_string();

    // Unsigned: pull, pull --extract, fetch and mount --pull all refuse,
    // naming the requirement, and leave nothing behind.
    let consumer = Cli::new();
    let out = consumer.path("out");
    let target = consumer.path("mnt");
    let attempts: [Vec<&str>; 4] = [
        vec!["pull", &reference, "--policy", &policy],
        vec![
            "pull",
            &reference,
            "--extract",
            s(&out),
            "--policy",
            &policy,
        ],
        vec![
            "fetch",
            &reference,
            "--include",
            "*",
            "-o",
            s(&out),
            "--policy",
            &policy,
        ],
        vec!["mount", &reference, s(&target), "--policy", &policy],
    ];
    for args in &attempts {
        let output = consumer.run(args);
        assert_eq!(output.status.code(), Some(1), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("sigstoreSigned") && stderr.contains("no signatures"),
            "{}: {stderr}",
            args.join(" ")
        );
    }
    assert!(!out.exists(), "files were extracted");
    assert!(
        consumer.ferry.listed().is_empty(),
        "the store named something"
    );

    // A copy out of the registry is held to the policy too.
    let layout = consumer.path("layout");
    let output = consumer.run(&[
        "copy",
        &reference,
        &format!("oci:{}", s(&layout)),
        "--policy",
        &policy,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(!layout.exists(), "the copy wrote a layout");

    // Anything else is rejected by `default`.
    let elsewhere = registry.reference("other/m:v1");
    publisher.ok(&["copy", &reference, &elsewhere]);
    consumer.fails(&["pull", &elsewhere, "--policy", &policy], &["reject"]);

    // Signed by the trusted key: accepted, and exactly that digest comes in.
    let output = with_password(&publisher, &["sign", &reference, "--key", &key, "--remote"]);
    assert_success(&output, "sign");
    let pulled = consumer.json(&["pull", &reference, "--policy", &policy, "--json"]);
    assert_eq!(pulled["digest"], digest.as_str());
    let fetched = consumer.json(&[
        "fetch",
        "--include",
        "*",
        &reference,
        "-o",
        s(&out),
        "--policy",
        &policy,
        "--json",
    ]);
    assert_eq!(fetched["digest"], digest.as_str());
}
