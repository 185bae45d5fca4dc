//! The same model gives the same digest, whoever packs it, wherever and
//! whenever; a creation time changes it only when asked for.

use std::process::Command;

use crate::common::*;

#[test]
fn the_same_directory_packs_to_the_same_digest_in_two_stores() {
    let model = gen_model(2, 2);
    let dir = tempdir();
    let first = Ferry::new(dir.path().join("store-1")).pack(&model, REF);
    let second = Ferry::new(dir.path().join("store-2")).pack(&model, REF);
    assert_eq!(first, second);
    // Another tag is another index entry, not another manifest (the
    // repository is not: it names the model when nothing else does).
    let third = Ferry::new(dir.path().join("store-3")).pack(&model, "localhost:5000/m:v9");
    assert_eq!(first, third);
}

#[test]
fn touching_or_copying_the_files_keeps_the_digest() {
    let model = gen_model(2, 2);
    let dir = tempdir();
    let expected = Ferry::new(dir.path().join("store-0")).pack(&model, REF);

    let touched = dir.path().join("touched");
    copy_tree(&model, &touched);
    let status = Command::new("find")
        .arg(&touched)
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "@2000000000",
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert_ne!(
        std::fs::metadata(touched.join("config.json"))
            .unwrap()
            .modified()
            .unwrap(),
        std::fs::metadata(model.join("config.json"))
            .unwrap()
            .modified()
            .unwrap()
    );
    assert_eq!(
        Ferry::new(dir.path().join("store-1")).pack(&touched, REF),
        expected,
        "after touch"
    );

    // `cp -r` (no -p): new inode numbers, new times, another path.
    let copied = dir.path().join("elsewhere/deeper/copy");
    std::fs::create_dir_all(copied.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(&model)
        .arg(&copied)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        Ferry::new(dir.path().join("store-2")).pack(&copied, REF),
        expected,
        "after cp -r"
    );
}

#[test]
fn another_user_packs_the_same_digest() {
    if !require_setpriv() {
        return;
    }
    let model = gen_model(2, 2);
    let dir = tempdir();
    open_to_all(dir.path());
    let expected = Ferry::new(dir.path().join("root-store")).pack(&model, REF);
    let theirs = dir.path().join("nobody");
    std::fs::create_dir(&theirs).unwrap();
    copy_tree(&model, &theirs.join("model"));
    std::fs::create_dir(theirs.join("store")).unwrap();
    chown_recursive(&theirs, NOBODY);
    let nobody = Ferry::new(theirs.join("store")).as_nobody(dir.path());
    assert_eq!(nobody.pack(&theirs.join("model"), REF), expected);
    // The blobs really were written by that user.
    let manifest = blob_path(&theirs.join("store"), &expected);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(manifest).unwrap().uid(), NOBODY);
}

#[test]
fn source_date_epoch_sets_a_reproducible_creation_time() {
    let model = gen_model(2, 2);
    let dir = tempdir();
    let plain = Ferry::new(dir.path().join("plain")).pack(&model, REF);
    let with_epoch = |store: &str| {
        let ferry = Ferry::new(dir.path().join(store));
        let output = run(ferry
            .command(&["pack", s(&model), "-t", REF])
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        assert_success(&output, "pack with SOURCE_DATE_EPOCH");
        let digest = parse_pack_line(&String::from_utf8(output.stdout).unwrap(), REF);
        (ferry, digest)
    };
    let (ferry, first) = with_epoch("epoch-1");
    let (_, second) = with_epoch("epoch-2");
    assert_ne!(first, plain, "a creation time is part of the manifest");
    assert_eq!(first, second, "the same epoch gives the same digest");
    let manifest = ferry.manifest(REF);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    let config = ferry.json(&["inspect", REF, "--json"]);
    assert_eq!(
        config["config"]["descriptor"]["createdAt"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(ferry.listed()[REF], first);

    let output = run(Ferry::new(dir.path().join("bad"))
        .command(&["pack", s(&model), "-t", REF])
        .env("SOURCE_DATE_EPOCH", "yesterday"));
    assert_failure(&output, "pack with SOURCE_DATE_EPOCH=yesterday");
    error_line(
        &String::from_utf8_lossy(&output.stderr),
        &["SOURCE_DATE_EPOCH", "yesterday"],
    );
}

#[test]
fn created_flag_is_recorded_in_the_manifest() {
    let model = gen_model(2, 2);
    let dir = tempdir();
    let ferry = Ferry::new(dir.path().join("store"));
    let stdout = ferry.ok(&[
        "pack",
        s(&model),
        "-t",
        REF,
        "--created",
        "2024-01-01T00:00:00Z",
    ]);
    let digest = parse_pack_line(&stdout, REF);
    let printed = ferry.ok(&["inspect", REF, "--manifest"]);
    assert!(
        printed.contains(r#""org.opencontainers.image.created":"2024-01-01T00:00:00Z""#),
        "{printed}"
    );
    assert_eq!(sha256(printed.trim_end_matches('\n').as_bytes()), digest);
    let again = Ferry::new(dir.path().join("store-2")).ok(&[
        "pack",
        s(&model),
        "-t",
        REF,
        "--created",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(parse_pack_line(&again, REF), digest);
    let listed = ferry.json(&["ls", "--json"]);
    assert_eq!(listed[0]["created"], "2024-01-01T00:00:00Z");

    let stderr = ferry.fails(&["pack", s(&model), "-t", REF, "--created", "last tuesday"]);
    error_line(&stderr, &["--created", "last tuesday"]);
}
