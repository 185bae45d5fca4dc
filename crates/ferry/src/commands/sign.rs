//! `ferry key generate`, `ferry sign-model`, `ferry verify-model`: keys and
//! model signatures, through `ferry-sign`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_sign::model::{
    DEFAULT_SIGNATURE_NAME, HashOptions, hash_model, model_name, sign_model_manifest,
};
use ferry_sign::{PrivateKey, PublicKey};
use ferry_spec::durable::{self, PRIVATE_FILE_MODE, SHARED_FILE_MODE};

use crate::cli::{KeyGenerateArgs, SignModelArgs, VerifyModelArgs};
use crate::exit::{Exit, usage_error};
use crate::output::print_json;
use crate::report::{KeyGenerateReport, SignModelReport, VerifyModelReport};

/// Where cosign and ferry read the key password from.
const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";
/// Key files are a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

pub fn key_generate(args: &KeyGenerateArgs) -> anyhow::Result<Exit> {
    if !args.force {
        for path in [&args.output_key, &args.output_pub] {
            if path.exists() {
                bail!("{} exists (use --force to overwrite)", path.display());
            }
        }
    }
    let password = new_key_password()?;
    let pair = ferry_sign::generate()?;
    let private_pem = pair.to_encrypted_pem(password.as_bytes())?;
    write_key_files(args, private_pem.as_bytes(), pair.public_pem().as_bytes())?;
    let key = pair.public.description();
    if args.json {
        print_json(&KeyGenerateReport {
            private_key: args.output_key.clone(),
            public_key: args.output_pub.clone(),
            key,
        })?;
    } else {
        println!(
            "wrote {} (private, encrypted) and {} ({key})",
            args.output_key.display(),
            args.output_pub.display()
        );
    }
    Ok(Exit::Ok)
}

/// Both files are written to temp files first and installed together; the
/// private key is never readable by others, and without --force neither
/// replaces a file that appeared meanwhile.
fn write_key_files(args: &KeyGenerateArgs, private: &[u8], public: &[u8]) -> anyhow::Result<()> {
    let temp_for = |target: &Path, bytes: &[u8], mode: u32| -> anyhow::Result<_> {
        let dir = parent_dir(target);
        let mut temp = durable::temp_file_in(dir, mode)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        temp.write_all(bytes)
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("writing {}", target.display()))?;
        Ok(temp)
    };
    let install = |temp: tempfile::NamedTempFile, target: &Path| -> anyhow::Result<()> {
        let persisted = if args.force {
            temp.persist(target).map(drop)
        } else {
            temp.persist_noclobber(target).map(drop)
        };
        persisted
            .map_err(|e| e.error)
            .with_context(|| format!("writing {}", target.display()))?;
        durable::sync_dir(parent_dir(target))
            .with_context(|| format!("syncing {}", target.display()))
    };
    let private_temp = temp_for(&args.output_key, private, PRIVATE_FILE_MODE)?;
    let public_temp = temp_for(&args.output_pub, public, SHARED_FILE_MODE)?;
    install(private_temp, &args.output_key)?;
    if let Err(error) = install(public_temp, &args.output_pub) {
        // A private key without its public half is half a key pair.
        let _ = std::fs::remove_file(&args.output_key);
        return Err(error);
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

pub fn sign_model(args: &SignModelArgs) -> anyhow::Result<Exit> {
    let key = read_private_key(&args.key, "sign-model")?;
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_SIGNATURE_NAME));
    let mut options = HashOptions {
        ignore_paths: args.ignore.clone(),
    };
    options
        .ignore_paths
        .extend(relative_inside(&args.dir, &signature));
    let manifest = hash_model(&args.dir, &options)
        .with_context(|| format!("hashing the model in {}", args.dir.display()))?;
    let bundle = sign_model_manifest(&model_name(&args.dir), &manifest, &key, &options);
    durable::write_file(&signature, &bundle, None, SHARED_FILE_MODE)
        .with_context(|| format!("writing {}", signature.display()))?;
    let root_digest = manifest.root_digest_string();
    let key = key.public_key().description();
    if args.json {
        print_json(&SignModelReport {
            model: args.dir.clone(),
            signature,
            files: manifest.files.len(),
            root_digest,
            key,
        })?;
    } else {
        println!(
            "signed {} files of {} with {key}: wrote {}",
            manifest.files.len(),
            args.dir.display(),
            signature.display()
        );
    }
    Ok(Exit::Ok)
}

pub fn verify_model(args: &VerifyModelArgs) -> anyhow::Result<Exit> {
    let keys = read_public_keys(&args.key)?;
    let signature = args
        .signature
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_SIGNATURE_NAME));
    let bundle = read_small_bytes(
        &signature,
        ferry_sign::bundle::MAX_BUNDLE_SIZE as u64,
        "signature",
    )?;
    let options = HashOptions {
        ignore_paths: relative_inside(&args.dir, &signature).into_iter().collect(),
    };
    let verified = ferry_sign::model::verify_model(&args.dir, &bundle, &keys, &options)
        .with_context(|| {
            format!(
                "verification of {} with {} failed",
                args.dir.display(),
                signature.display()
            )
        })?;
    if args.json {
        print_json(&VerifyModelReport {
            model: args.dir.clone(),
            signature,
            verified: true,
            model_name: verified.model_name,
            files: verified.files,
            root_digest: verified.root_digest,
            ignore_paths: verified.ignore_paths,
            key: verified.key,
        })?;
    } else {
        println!(
            "verified {}: {} files signed by {}",
            args.dir.display(),
            verified.files,
            verified.key
        );
    }
    Ok(Exit::Ok)
}

/// A private key file: cosign's encrypted format (its password from
/// COSIGN_PASSWORD or the terminal) or an unencrypted PEM.
pub(super) fn read_private_key(path: &Path, subcommand: &str) -> anyhow::Result<PrivateKey> {
    let text = read_small(path, MAX_KEY_FILE, "private key")?;
    let password = if ferry_sign::keys::is_encrypted_pem(&text) {
        existing_key_password(path, subcommand)?
    } else {
        String::new()
    };
    PrivateKey::from_pem(&text, password.as_bytes())
        .with_context(|| format!("reading the private key {}", path.display()))
}

/// Public key files (PEM), each refused by name when it is not one.
pub(super) fn read_public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|path| {
            let text = read_small(path, MAX_KEY_FILE, "public key")?;
            PublicKey::from_pem(&text)
                .with_context(|| format!("reading the public key {}", path.display()))
        })
        .collect()
}

/// `path` relative to `dir` when it lies inside it (so the signature file
/// is left out of what it signs).
fn relative_inside(dir: &Path, path: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let parent = std::fs::canonicalize(parent_dir(path)).ok()?;
    let full: PathBuf = parent.join(path.file_name()?);
    let relative = full.strip_prefix(&dir).ok()?;
    relative.to_str().map(str::to_string)
}

fn read_small(path: &Path, limit: u64, what: &str) -> anyhow::Result<String> {
    let bytes = read_small_bytes(path, limit, what)?;
    String::from_utf8(bytes).with_context(|| format!("{what} {} is not text", path.display()))
}

/// Reads at most `limit` bytes; a larger file is refused, never loaded.
fn read_small_bytes(path: &Path, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening the {what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!("the {what} {} is over {limit} bytes", path.display());
    }
    Ok(bytes)
}

/// The password for a new key: COSIGN_PASSWORD (may be empty, as cosign
/// allows), else asked twice on the terminal.
fn new_key_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_VARIABLE) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(no_password_source(&["key", "generate"]));
    }
    let first = rpassword::prompt_password("Password for the private key: ")
        .context("reading the password from the terminal")?;
    let again = rpassword::prompt_password("Enter it again: ")
        .context("reading the password from the terminal")?;
    if first != again {
        bail!("the passwords differ");
    }
    Ok(first)
}

/// The password of an encrypted key: COSIGN_PASSWORD, else asked once.
fn existing_key_password(key: &Path, subcommand: &str) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_VARIABLE) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(no_password_source(&[subcommand]));
    }
    rpassword::prompt_password(format!("Password for {}: ", key.display()))
        .context("reading the password from the terminal")
}

fn no_password_source(subcommand: &[&str]) -> anyhow::Error {
    usage_error(
        subcommand,
        format!("stdin is not a terminal to ask for the key password on: set {PASSWORD_VARIABLE}"),
    )
}
