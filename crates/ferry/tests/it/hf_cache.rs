//! `ferry pack` of Hugging Face hub cache snapshots: links followed into the
//! repository's blobs only, metadata from the cache path, `--from-hf-cache`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const CONFIG: &[u8] = br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama"}"#;
const TENSOR_HEADER: &[u8] = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
const TOKENIZER: &[u8] = b"{\"version\":\"1.0\"}";

/// A cache at `<home>/hf/hub` with `org/m` (three files, one in a
/// subdirectory) and `org/other`; returns the cache and `org/m`'s snapshot.
fn cache(cli: &Cli) -> (PathBuf, PathBuf) {
    let hub = cli.path("hf/hub");
    let weights = weights();
    let snapshot = hf_cache_repo(
        &hub,
        "models--org--m",
        HF_COMMIT,
        &[
            ("config.json", CONFIG),
            ("model.safetensors", &weights),
            ("sub/tokenizer.json", TOKENIZER),
        ],
    );
    hf_cache_repo(
        &hub,
        "models--org--other",
        HF_COMMIT,
        &[("secret.bin", b"another repo's bytes")],
    );
    (hub, snapshot)
}

/// A small safetensors file: header length, header, two floats.
fn weights() -> Vec<u8> {
    let mut bytes = (TENSOR_HEADER.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(TENSOR_HEADER);
    bytes.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
    bytes
}

/// `ferry ARGS` with no Hugging Face variables from outside, then `env`.
fn command(cli: &Cli, args: &[&str], env: &[(&str, &Path)]) -> Command {
    let mut cmd = cli.command(args);
    for name in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
        "XDG_CACHE_HOME",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("HOME", cli.path("nohome"));
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

fn ok(cli: &Cli, args: &[&str], env: &[(&str, &Path)]) -> String {
    let output = run(&mut command(cli, args, env));
    assert_success(&output, &words(args));
    String::from_utf8(output.stdout).unwrap()
}

fn fails(cli: &Cli, code: i32, args: &[&str], env: &[(&str, &Path)]) -> String {
    let output: Output = run(&mut command(cli, args, env));
    assert_eq!(
        output.status.code(),
        Some(code),
        "{} should exit {code}\n{}",
        words(args),
        show(&output)
    );
    String::from_utf8(output.stderr).unwrap()
}

fn pack_digest(stdout: &str, reference: &str) -> String {
    parse_pack_line(stdout, reference)
}

/// The blob a snapshot file links to.
fn blob_of(snapshot: &Path, rel: &str) -> PathBuf {
    fs::canonicalize(snapshot.join(rel)).unwrap()
}

/// Extracts `reference` and checks every file is a regular file holding
/// exactly its blob's bytes.
fn assert_extracts_blobs(cli: &Cli, reference: &str, snapshot: &Path, out: &Path) {
    cli.ok(&["extract", reference, s(out)]);
    for rel in ["config.json", "model.safetensors", "sub/tokenizer.json"] {
        let path = out.join(rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{rel} is a regular file, not a link");
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(blob_of(snapshot, rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn hf_cache_snapshot_round_trips_with_derived_metadata() {
    let cli = Cli::new();
    let (_hub, snapshot) = cache(&cli);
    // The loader reads the blob's mode; the link's own (0777) must not leak.
    fs::set_permissions(
        blob_of(&snapshot, "model.safetensors"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let reference = "localhost/hf/m:v1";
    let digest = pack_digest(
        &ok(&cli, &["pack", s(&snapshot), "-t", reference], &[]),
        reference,
    );

    let inspected = cli.json(&["inspect", reference, "--json"]);
    let descriptor = &inspected["config"]["descriptor"];
    assert_eq!(descriptor["name"], "org/m", "{inspected}");
    assert_eq!(descriptor["revision"], HF_COMMIT, "{inspected}");
    assert_eq!(descriptor["sourceURL"], "https://huggingface.co/org/m");
    let manifest = cli.ferry.manifest(reference);
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.revision"], HF_COMMIT);
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://huggingface.co/org/m"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let mut paths: Vec<&str> = layers
        .iter()
        .map(|l| {
            l["annotations"]["org.cncf.model.filepath"]
                .as_str()
                .unwrap()
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["config.json", "model.safetensors", "sub/tokenizer.json"]
    );
    let weights_layer = layers
        .iter()
        .find(|l| l["annotations"]["org.cncf.model.filepath"] == "model.safetensors")
        .unwrap();
    let metadata: serde_json::Value = serde_json::from_str(
        weights_layer["annotations"]["org.cncf.model.file.metadata+json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["mode"], 0o640, "{metadata}");
    assert_eq!(metadata["size"], weights().len(), "{metadata}");
    assert_eq!(metadata["typeflag"], b'0', "{metadata}");

    assert_extracts_blobs(&cli, reference, &snapshot, &cli.path("out"));

    // Tar layers hold the blobs as regular files too.
    let tar = "localhost/hf/m:tar";
    ok(
        &cli,
        &["pack", s(&snapshot), "-t", tar, "--layer-format", "tar"],
        &[],
    );
    assert_extracts_blobs(&cli, tar, &snapshot, &cli.path("out-tar"));

    // The same input packs to the same digest.
    let again = pack_digest(
        &ok(&cli, &["pack", s(&snapshot), "-t", reference], &[]),
        reference,
    );
    assert_eq!(again, digest);
}

#[test]
fn from_hf_cache_finds_the_snapshot_by_ref_hash_and_prefix() {
    let cli = Cli::new();
    let (hub, snapshot) = cache(&cli);
    let reference = "localhost/hf/m:v1";
    let expected = pack_digest(
        &ok(&cli, &["pack", s(&snapshot), "-t", reference], &[]),
        reference,
    );
    let hf_home = cli.path("hf");
    let prefix = format!("org/m@{}", &HF_COMMIT[..12]);
    let full = format!("org/m@{HF_COMMIT}");
    // HF_HOME/hub, and HF_HUB_CACHE winning over a wrong HF_HOME.
    let wrong = cli.path("wrong");
    let envs: [&[(&str, &Path)]; 2] = [
        &[("HF_HOME", &hf_home)],
        &[("HF_HUB_CACHE", &hub), ("HF_HOME", &wrong)],
    ];
    for env in envs {
        for request in ["org/m", "org/m@main", full.as_str(), prefix.as_str()] {
            let reference = "localhost/hf/from-cache:v1";
            let stdout = ok(
                &cli,
                &["pack", "--from-hf-cache", request, "-t", reference],
                env,
            );
            assert_eq!(pack_digest(&stdout, reference), expected, "{request}");
        }
    }
    // A ref name other than main.
    fs::create_dir_all(hub.join("models--org--m/refs/refs/pr")).unwrap();
    fs::write(hub.join("models--org--m/refs/refs/pr/1"), HF_COMMIT).unwrap();
    let stdout = ok(
        &cli,
        &[
            "pack",
            "--from-hf-cache",
            "org/m@refs/pr/1",
            "-t",
            reference,
        ],
        &[("HF_HUB_CACHE", &hub)],
    );
    assert_eq!(pack_digest(&stdout, reference), expected);
    assert_extracts_blobs(&cli, reference, &snapshot, &cli.path("out"));
}

#[test]
fn from_hf_cache_errors_name_the_path_and_what_is_there() {
    let cli = Cli::new();
    let (hub, snapshot_dir) = cache(&cli);
    let env: &[(&str, &Path)] = &[("HF_HUB_CACHE", &hub)];
    cli.ferry.pack(&snapshot_dir, "localhost/hf/m:v1");
    let before = snapshot(&cli.ferry.store);

    let stderr = fails(
        &cli,
        1,
        &[
            "pack",
            "--from-hf-cache",
            "org/absent",
            "-t",
            "localhost/x:1",
        ],
        env,
    );
    let missing = hub.join("models--org--absent");
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("org/m, org/other"),
        "{stderr}"
    );

    let stderr = fails(
        &cli,
        1,
        &["pack", "--from-hf-cache", "org/m@v9", "-t", "localhost/x:1"],
        env,
    );
    let ref_path = hub.join("models--org--m/refs/v9");
    assert!(
        stderr.contains(&ref_path.display().to_string())
            && stderr.contains("refs: main")
            && stderr.contains(HF_COMMIT),
        "{stderr}"
    );

    // A cache that is not there at all.
    let stderr = fails(
        &cli,
        1,
        &["pack", "--from-hf-cache", "org/m", "-t", "localhost/x:1"],
        &[("HF_HOME", &cli.path("empty"))],
    );
    assert!(
        stderr.contains(&cli.path("empty/hub").display().to_string())
            && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert_store_unchanged(&cli.ferry.store, &before);

    // Usage errors: neither source, both, a malformed id.
    let stderr = fails(&cli, 2, &["pack", "-t", "localhost/x:1"], env);
    assert!(stderr.contains("<DIR|--from-hf-cache"), "{stderr}");
    let stderr = fails(
        &cli,
        2,
        &[
            "pack",
            s(&hub),
            "--from-hf-cache",
            "org/m",
            "-t",
            "localhost/x:1",
        ],
        env,
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let stderr = fails(
        &cli,
        2,
        &["pack", "--from-hf-cache", "org/a--b", "-t", "localhost/x:1"],
        env,
    );
    assert!(stderr.contains("'--'"), "{stderr}");
}

#[test]
fn links_out_of_the_repo_blobs_are_refused_unless_follow_symlinks() {
    let cli = Cli::new();
    let (hub, snapshot) = cache(&cli);
    let secret = cli.path("secret.txt");
    fs::write(&secret, b"not model content").unwrap();
    let reference = "localhost/hf/m:v1";
    cli.ferry.pack(&snapshot, reference);
    let before = crate::common::snapshot(&cli.ferry.store);

    // Another repository's blob, then a file outside the cache.
    let link = snapshot.join("extra.bin");
    let other_blob = format!("../../../models--org--other/blobs/{:064x}", 0xb10b_0000u64);
    let outside = secret.display().to_string();
    for target in [other_blob.as_str(), outside.as_str()] {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let stderr = fails(&cli, 1, &["pack", s(&snapshot), "-t", reference], &[]);
        assert!(
            stderr.contains("points outside")
                && stderr.contains(&link.display().to_string())
                && stderr.contains("--follow-symlinks"),
            "{stderr}"
        );
        // The same through --from-hf-cache.
        fails(
            &cli,
            1,
            &["pack", "--from-hf-cache", "org/m", "-t", reference],
            &[("HF_HUB_CACHE", &hub)],
        );
        assert_store_unchanged(&cli.ferry.store, &before);
    }

    ok(
        &cli,
        &["pack", s(&snapshot), "-t", reference, "--follow-symlinks"],
        &[],
    );
    let out = cli.path("out");
    assert_extracts_blobs(&cli, reference, &snapshot, &out);
    assert_eq!(
        fs::read(out.join("extra.bin")).unwrap(),
        b"not model content"
    );
}

#[test]
fn user_metadata_wins_over_the_cache_path() {
    let cli = Cli::new();
    let (_hub, snapshot) = cache(&cli);
    let reference = "localhost/hf/m:v1";
    ok(
        &cli,
        &["pack", s(&snapshot), "-t", reference, "--name", "mine"],
        &[],
    );
    let descriptor = &cli.json(&["inspect", reference, "--json"])["config"]["descriptor"];
    assert_eq!(descriptor["name"], "mine");
    assert_eq!(
        descriptor["revision"], HF_COMMIT,
        "what --name does not give"
    );

    let modelfile = cli.path("Modelfile");
    fs::write(&modelfile, "NAME from-modelfile\n").unwrap();
    ok(
        &cli,
        &["pack", s(&snapshot), "-t", reference, "-f", s(&modelfile)],
        &[],
    );
    let descriptor = &cli.json(&["inspect", reference, "--json"])["config"]["descriptor"];
    assert_eq!(descriptor["name"], "from-modelfile");
}

#[test]
fn generic_pack_and_init_read_a_snapshot_too() {
    let cli = Cli::new();
    let (_hub, snapshot) = cache(&cli);
    let reference = "localhost/hf/generic:v1";
    ok(
        &cli,
        &[
            "pack",
            s(&snapshot),
            "-t",
            reference,
            "--generic",
            "--artifact-type",
            "application/vnd.example.thing",
        ],
        &[],
    );
    assert_extracts_blobs(&cli, reference, &snapshot, &cli.path("out"));

    // init writes its Modelfile elsewhere: the cache is not ours to change.
    let modelfile = cli.path("Modelfile");
    ok(&cli, &["init", s(&snapshot), "-o", s(&modelfile)], &[]);
    let text = fs::read_to_string(&modelfile).unwrap();
    assert!(
        text.contains("model.safetensors") && text.contains("sub/tokenizer.json"),
        "{text}"
    );
}

#[test]
fn the_scan_before_pack_judges_each_blob_under_its_snapshot_name() {
    let cli = Cli::new();
    let snapshot = hf_cache_repo(
        &cli.path("hub"),
        "models--org--evil",
        HF_COMMIT,
        &[
            ("config.json", CONFIG),
            ("sub/pytorch_model.bin", b"cposix\nsystem\n(S'id'\ntR."),
        ],
    );
    let stderr = fails(
        &cli,
        1,
        &["pack", s(&snapshot), "-t", "localhost/evil:1"],
        &[],
    );
    assert!(
        stderr.contains("sub/pytorch_model.bin is dangerous"),
        "{stderr}"
    );
    assert!(cli.ferry.listed().is_empty(), "nothing stored");
}

#[test]
fn pack_push_from_the_cache_matches_the_local_pack() {
    let cli = Cli::new();
    let (hub, snapshot) = cache(&cli);
    let local = pack_digest(
        &ok(
            &cli,
            &["pack", s(&snapshot), "-t", "localhost/hf/m:v1"],
            &[],
        ),
        "localhost/hf/m:v1",
    );
    let serve = crate::compression::Serve::start();
    let reference = format!("{}/hf/m:v1", serve.addr);
    let stdout = ok(
        &cli,
        &[
            "pack",
            "--from-hf-cache",
            "org/m",
            "-t",
            &reference,
            "--push",
            "--plain-http",
            "--json",
        ],
        &[("HF_HUB_CACHE", &hub)],
    );
    let pushed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pushed["digest"], local.as_str(), "{pushed}");
}

#[test]
fn a_blobs_link_widens_nothing_and_a_recipe_link_obeys_the_same_rule() {
    let cli = Cli::new();
    let (_hub, snapshot) = cache(&cli);
    let reference = "localhost/hf/m:v1";

    // A repository whose blobs/ is a link to a directory elsewhere: its
    // snapshot's links reach only what a real blobs/ would hold.
    let elsewhere = cli.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("secret.bin"), b"not model content").unwrap();
    let repo = cli.path("hf/hub/models--org--wide");
    let wide = repo.join("snapshots").join(HF_COMMIT);
    fs::create_dir_all(&wide).unwrap();
    std::os::unix::fs::symlink(&elsewhere, repo.join("blobs")).unwrap();
    std::os::unix::fs::symlink("../../blobs/secret.bin", wide.join("model.bin")).unwrap();
    let stderr = fails(&cli, 1, &["pack", s(&wide), "-t", reference], &[]);
    assert!(
        stderr.contains("points outside") && stderr.contains("model.bin"),
        "{stderr}"
    );

    // A Modelfile in the snapshot that links out of the repository is
    // refused like any other link (its text would go into the manifest).
    let outside = cli.path("Modelfile.outside");
    fs::write(&outside, "NAME from-outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, snapshot.join("Modelfile")).unwrap();
    let stderr = fails(&cli, 1, &["pack", s(&snapshot), "-t", reference], &[]);
    assert!(
        stderr.contains("points outside") && stderr.contains("Modelfile"),
        "{stderr}"
    );
    // One that is a blob of the repository (a repo that ships a Modelfile)
    // is read, and it names the model.
    fs::remove_file(snapshot.join("Modelfile")).unwrap();
    let blobs = snapshot.join("../../blobs");
    fs::write(blobs.join("modelfile-blob"), "NAME from-the-repo\n").unwrap();
    std::os::unix::fs::symlink("../../blobs/modelfile-blob", snapshot.join("Modelfile")).unwrap();
    ok(&cli, &["pack", s(&snapshot), "-t", reference], &[]);
    let config = cli.ferry.json(&["inspect", "--config", reference]);
    assert_eq!(config["descriptor"]["name"], "from-the-repo");
}

#[test]
fn a_ref_file_is_read_only_as_far_as_a_hash_goes() {
    let cli = Cli::new();
    let (hub, _snapshot) = cache(&cli);
    // refs/big holds 4 MiB: it is no hash, and only its start is read.
    let big = hub.join("models--org--m/refs/big");
    fs::write(&big, vec![b'a'; 4 << 20]).unwrap();
    let stderr = fails(
        &cli,
        1,
        &[
            "pack",
            "--from-hf-cache",
            "org/m@big",
            "-t",
            "localhost/hf/m:v1",
        ],
        &[("HF_HUB_CACHE", &hub)],
    );
    assert!(stderr.contains("refs/big"), "{stderr}");
    assert!(
        stderr.len() < 2000,
        "the error quotes a little of the ref: {stderr}"
    );
}

#[test]
fn a_kept_link_to_a_fifo_is_refused_not_waited_on() {
    let cli = Cli::new();
    let model = cli.path("model");
    fs::create_dir_all(&model).unwrap();
    fs::write(model.join("weights.bin"), b"weights").unwrap();
    // The fifo itself is hidden (skipped); the link to it is not.
    let fifo = model.join(".pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(".pipe", model.join("config.json")).unwrap();
    let cmd = command(
        &cli,
        &[
            "pack",
            s(&model),
            "-t",
            "localhost/fifo:v1",
            "--layer-format",
            "tar",
        ],
        &[],
    );
    let child = KillOnDrop::spawn(cmd);
    let output = child.wait_at_most(std::time::Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config.json") && stderr.contains("not a regular file or directory"),
        "{stderr}"
    );
}
