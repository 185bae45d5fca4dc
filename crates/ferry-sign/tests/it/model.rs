//! OpenSSF model signing: the shared vector, tampering, and both directions
//! of interop with the `model_signing` CLI.

use std::path::Path;
use std::process::Command;

use ferry_sign::model::{HashOptions, hash_model, sign_model, verify_model};
use ferry_sign::{PrivateKey, PublicKey, SignError, generate};

use crate::common::{openssl, require_openssl, vector};

fn vector_key() -> Option<(std::path::PathBuf, Vec<u8>, PublicKey)> {
    let dir = vector("model-signing-ec-key")?;
    let signature = std::fs::read(dir.join("model.sig")).unwrap();
    let key =
        PublicKey::from_pem(&std::fs::read_to_string(dir.join("signing-key-pub.pem")).unwrap())
            .unwrap();
    Some((dir, signature, key))
}

/// A writable copy of the vector's model.
fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_model_signing_vector_verifies() {
    let Some((dir, signature, key)) = vector_key() else {
        return;
    };
    let verified = verify_model(
        &dir.join("model"),
        &signature,
        std::slice::from_ref(&key),
        &HashOptions::default(),
    )
    .unwrap();
    assert_eq!(verified.files, 2);
    assert_eq!(verified.key, key.description());
    assert_eq!(verified.model_name, "v1.1.0-elliptic-key");
    assert!(verified.ignore_paths.contains(&"ignore-me".to_string()));
}

#[test]
fn a_changed_added_or_removed_file_fails_by_name() {
    let Some((dir, signature, key)) = vector_key() else {
        return;
    };
    let keys = [key];
    let temp = tempfile::tempdir().unwrap();
    let model = temp.path().join("model");
    copy_model(&dir.join("model"), &model);
    verify_model(&model, &signature, &keys, &HashOptions::default()).unwrap();

    std::fs::write(model.join("signme-1"), b"tampered").unwrap();
    let err = verify_model(&model, &signature, &keys, &HashOptions::default()).unwrap_err();
    let SignError::ModelMismatch {
        changed,
        added,
        removed,
    } = &err
    else {
        panic!("expected a mismatch, got {err}");
    };
    assert_eq!(
        (changed.as_slice(), added.len(), removed.len()),
        (&["signme-1".to_string()][..], 0, 0)
    );
    assert!(err.to_string().contains("changed: signme-1"), "{err}");

    copy_model(&dir.join("model"), &model);
    std::fs::create_dir(model.join("extra")).unwrap();
    std::fs::write(model.join("extra/weights.bin"), b"new").unwrap();
    std::fs::remove_file(model.join("signme-2")).unwrap();
    // The ignored file may change freely.
    std::fs::write(model.join("ignore-me"), b"anything").unwrap();
    let err = verify_model(&model, &signature, &keys, &HashOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model does not match its signature: added: extra/weights.bin; removed: signme-2"
    );
}

#[test]
fn hashing_sorts_by_components_and_skips_git_paths_and_ignores() {
    let temp = tempfile::tempdir().unwrap();
    let model = temp.path();
    for (name, content) in [
        ("a.txt", "1"),
        ("a/b", "2"),
        (".git/config", "3"),
        (".gitignore", "4"),
        (".gitkeep", "5"),
        ("model.sig", "6"),
        ("sub/skip/x", "7"),
    ] {
        let path = model.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let options = HashOptions {
        ignore_paths: vec!["model.sig".to_string(), "./sub/skip/".to_string()],
    };
    let manifest = hash_model(model, &options).unwrap();
    let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [".gitkeep", "a/b", "a.txt"]);
}

#[test]
fn symbolic_links_are_refused_by_name() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("weights"), b"w").unwrap();
    std::os::unix::fs::symlink("weights", temp.path().join("link")).unwrap();
    let err = hash_model(temp.path(), &HashOptions::default()).unwrap_err();
    assert!(matches!(err, SignError::ModelEntry { .. }), "{err}");
    assert!(
        err.to_string().contains("link: symbolic link refused"),
        "{err}"
    );
}

#[test]
fn ferry_signs_and_verifies_its_own_model_signatures() {
    let temp = tempfile::tempdir().unwrap();
    let model = temp.path().join("tiny-model");
    std::fs::create_dir_all(model.join("sub")).unwrap();
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    std::fs::write(model.join("sub/weights.safetensors"), vec![7u8; 3 << 20]).unwrap();
    let pair = generate().unwrap();
    let options = HashOptions {
        ignore_paths: vec!["model.sig".to_string()],
    };
    let signature = sign_model(&model, &pair.private, &options).unwrap();
    std::fs::write(model.join("model.sig"), &signature).unwrap();
    let verified = verify_model(
        &model,
        &signature,
        std::slice::from_ref(&pair.public),
        &HashOptions::default(),
    )
    .unwrap();
    assert_eq!(verified.files, 2);
    assert_eq!(verified.model_name, "tiny-model");
    let stranger = generate().unwrap().public;
    let err = verify_model(&model, &signature, &[stranger], &HashOptions::default()).unwrap_err();
    assert!(matches!(err, SignError::NoValidSignature { .. }), "{err}");
}

/// The model_signing CLI (PyPI model-signing 1.1.1).
fn require_model_signing() -> bool {
    ferry_testkit::require::require(
        "model_signing CLI (pip install model-signing==1.1.1)",
        ferry_testkit::require::command_works("model_signing", &["--version"]),
    )
}

fn model_signing(args: &[&str]) -> std::process::Output {
    Command::new("model_signing").args(args).output().unwrap()
}

fn tiny_model(root: &Path) -> std::path::PathBuf {
    let model = root.join("model");
    std::fs::create_dir_all(model.join("nested")).unwrap();
    std::fs::write(model.join("config.json"), b"{\"a\":1}").unwrap();
    std::fs::write(model.join("nested/weights.bin"), vec![1u8; 100_000]).unwrap();
    std::fs::write(model.join("nested.txt"), b"sorts after nested/").unwrap();
    model
}

/// An openssl key pair on `curve`: (private SEC1 PEM path, public PEM path).
fn openssl_key(dir: &Path, curve: &str) -> (String, String) {
    let private = dir
        .join(format!("{curve}.pem"))
        .to_str()
        .unwrap()
        .to_string();
    let public = dir
        .join(format!("{curve}.pub"))
        .to_str()
        .unwrap()
        .to_string();
    openssl(&[
        "ecparam", "-name", curve, "-genkey", "-noout", "-out", &private,
    ]);
    openssl(&["ec", "-in", &private, "-pubout", "-out", &public]);
    (private, public)
}

#[test]
fn model_signing_verifies_what_ferry_signs() {
    if !require_model_signing() || !require_openssl() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let model = tiny_model(temp.path());
    let signature_path = temp.path().join("model.sig");
    // P-256 made by ferry (cosign format), P-384 made by openssl.
    let pair = generate().unwrap();
    let ferry_pub = temp.path().join("ferry.pub");
    std::fs::write(&ferry_pub, pair.public_pem()).unwrap();
    let (p384_private, p384_public) = openssl_key(temp.path(), "secp384r1");
    let p384 = PrivateKey::from_pem(&std::fs::read_to_string(&p384_private).unwrap(), b"").unwrap();
    for (key, public) in [
        (&pair.private, ferry_pub.to_str().unwrap()),
        (&p384, p384_public.as_str()),
    ] {
        let signature = sign_model(&model, key, &HashOptions::default()).unwrap();
        std::fs::write(&signature_path, &signature).unwrap();
        let out = model_signing(&[
            "verify",
            "key",
            model.to_str().unwrap(),
            "--signature",
            signature_path.to_str().unwrap(),
            "--public_key",
            public,
        ]);
        assert!(
            out.status.success(),
            "model_signing refused ferry's {:?} signature: {}{}",
            key.curve(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And notices a change (the check above could not pass vacuously).
    std::fs::write(model.join("config.json"), b"{\"a\":2}").unwrap();
    let out = model_signing(&[
        "verify",
        "key",
        model.to_str().unwrap(),
        "--signature",
        signature_path.to_str().unwrap(),
        "--public_key",
        &p384_public,
    ]);
    assert!(!out.status.success());
}

#[test]
fn ferry_verifies_what_model_signing_signs() {
    if !require_model_signing() || !require_openssl() {
        return;
    }
    for curve in ["prime256v1", "secp384r1", "secp521r1"] {
        let temp = tempfile::tempdir().unwrap();
        let model = tiny_model(temp.path());
        let (private, public) = openssl_key(temp.path(), curve);
        let signature_path = temp.path().join("model.sig");
        let out = model_signing(&[
            "sign",
            "key",
            model.to_str().unwrap(),
            "--private_key",
            &private,
            "--signature",
            signature_path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "model_signing sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let signature = std::fs::read(&signature_path).unwrap();
        let key = PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
        let verified = verify_model(&model, &signature, &[key], &HashOptions::default()).unwrap();
        assert_eq!(verified.files, 3, "{curve}");
        std::fs::write(model.join("nested/weights.bin"), b"swapped").unwrap();
        let err = verify_model(
            &model,
            &signature,
            &[PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap()],
            &HashOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("changed: nested/weights.bin"),
            "{err}"
        );
    }
}

/// The vector's signature compared with a file list (an artifact's, read
/// from its layers): the signer's ignore paths and `.git*` are left out,
/// any other difference is named.
#[test]
fn a_signed_model_matches_a_file_list_without_the_ignored_paths() {
    let Some((dir, signature, key)) = vector_key() else {
        return;
    };
    let signed = ferry_sign::model::SignedModel::verify(&signature, &[key]).unwrap();
    let actual = hash_model(
        &dir.join("model"),
        &HashOptions {
            ignore_paths: signed.ignore_paths().to_vec(),
        },
    )
    .unwrap();
    let mut listed: Vec<(String, [u8; 32])> = actual
        .files
        .iter()
        .map(|e| (e.name.clone(), e.sha256))
        .collect();
    listed.push(("ignore-me".into(), [1; 32]));
    listed.push((".gitattributes".into(), [2; 32]));
    let check = |files: &[(String, [u8; 32])]| {
        signed.matches_files(files.iter().map(|(n, d)| (n.as_str(), *d)))
    };
    check(&listed).unwrap();

    listed.push(("extra.bin".into(), [3; 32]));
    let error = check(&listed).unwrap_err().to_string();
    assert!(error.contains("added: extra.bin"), "{error}");
    listed.pop();
    listed[0].1 = [4; 32];
    let error = check(&listed).unwrap_err().to_string();
    assert!(
        error.contains(&format!("changed: {}", listed[0].0)),
        "{error}"
    );
}
