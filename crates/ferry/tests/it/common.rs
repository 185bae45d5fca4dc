//! Shared helpers: running the `ferry` binary, making model directories,
//! snapshots of a store, comparing directory trees, mounts and child
//! processes that clean up after themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

/// The binary under test.
pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The unprivileged user (nobody) some tests run ferry as.
pub const NOBODY: u32 = 65534;

/// The reference most tests pack to.
pub const REF: &str = "localhost:5000/m:v1";

// ---------------------------------------------------------------------------
// Components a test needs
// ---------------------------------------------------------------------------

pub use ferry_testkit::{command_works, require, require_root, require_setpriv, require_skopeo};

// ---------------------------------------------------------------------------
// Running ferry
// ---------------------------------------------------------------------------

/// `ferry` bound to one store, optionally run as another user.
#[derive(Debug, Clone)]
pub struct Ferry {
    /// The `--store` directory.
    pub store: PathBuf,
    program: PathBuf,
    user: Option<u32>,
}

impl Ferry {
    /// ferry with `--store store`.
    pub fn new(store: impl Into<PathBuf>) -> Ferry {
        Ferry {
            store: store.into(),
            program: PathBuf::from(FERRY),
            user: None,
        }
    }

    /// The same store, with ferry run as uid/gid 65534 through `setpriv`.
    /// The binary is linked (or copied) into `scratch`, a directory every
    /// user can reach, since the build directory may not be (a hard link
    /// shares its owner with the original: never chown it).
    pub fn as_nobody(&self, scratch: &Path) -> Ferry {
        let program = scratch.join("ferry");
        if !program.exists() && fs::hard_link(FERRY, &program).is_err() {
            fs::copy(FERRY, &program).expect("copy the ferry binary");
        }
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755))
            .expect("chmod the ferry binary");
        Ferry {
            store: self.store.clone(),
            program,
            user: Some(NOBODY),
        }
    }

    /// A command for `ferry --store STORE args...` with a clean environment
    /// (no `SOURCE_DATE_EPOCH`, `FERRY_HOME` or `RUST_LOG` from outside).
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = match self.user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.arg("--store").arg(&self.store).args(args);
        cmd.env_remove("SOURCE_DATE_EPOCH")
            .env_remove("FERRY_HOME")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs ferry and returns its output.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run(&mut self.command(args))
    }

    /// Runs ferry, asserts it succeeded and returns stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let output = self.run(args);
        assert_success(&output, &describe(args));
        String::from_utf8(output.stdout).expect("stdout is UTF-8")
    }

    /// Runs ferry, asserts it succeeded and parses stdout as JSON.
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{} printed invalid JSON ({e}):\n{stdout}", describe(args)))
    }

    /// Runs ferry, asserts it failed and returns stderr.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let output = self.run(args);
        assert_failure(&output, &describe(args));
        String::from_utf8(output.stderr).expect("stderr is UTF-8")
    }

    /// `ferry pack DIR -t REFERENCE`; returns the digest it printed.
    pub fn pack(&self, dir: &Path, reference: &str) -> String {
        let stdout = self.ok(&[
            OsStr::new("pack"),
            dir.as_os_str(),
            "-t".as_ref(),
            reference.as_ref(),
        ]);
        parse_pack_line(&stdout, reference)
    }

    /// The stored manifest of `reference` (bytes exactly as in the blob).
    pub fn manifest_bytes(&self, reference: &str) -> Vec<u8> {
        let digest = self.resolve(reference);
        fs::read(blob_path(&self.store, &digest)).expect("manifest blob is readable")
    }

    /// The parsed manifest of `reference`.
    pub fn manifest(&self, reference: &str) -> serde_json::Value {
        serde_json::from_slice(&self.manifest_bytes(reference)).expect("manifest is JSON")
    }

    /// The digest `reference` names, from `ferry inspect --json`.
    pub fn resolve(&self, reference: &str) -> String {
        let value = self.json(&["inspect", reference, "--json"]);
        value["digest"]
            .as_str()
            .expect("inspect --json has a digest")
            .to_string()
    }

    /// `(reference, digest)` of every entry in `ferry ls --json`.
    pub fn listed(&self) -> BTreeMap<String, String> {
        let value = self.json(&["ls", "--json"]);
        value
            .as_array()
            .expect("ls --json is an array")
            .iter()
            .map(|row| {
                (
                    row["reference"].as_str().expect("reference").to_string(),
                    row["digest"].as_str().expect("digest").to_string(),
                )
            })
            .collect()
    }
}

/// Runs a command to completion, capturing stdout and stderr.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    format!("`ferry {}`", words.join(" "))
}

/// Stdout and stderr of `output`, for failure messages.
pub fn show(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts `output` is from a successful run.
pub fn assert_success(output: &Output, what: &str) {
    assert!(output.status.success(), "{what} failed\n{}", show(output));
}

/// Asserts `output` is from a failed run (a non-zero exit, not a signal or panic).
pub fn assert_failure(output: &Output, what: &str) {
    let code = output.status.code();
    assert!(
        code.is_some_and(|c| c != 0),
        "{what} should have failed\n{}",
        show(output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{what} panicked\n{}",
        show(output)
    );
}

/// The single `error: ...` line of `stderr`, after checking it contains
/// every one of `needles`.
pub fn error_line(stderr: &str, needles: &[&str]) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one `error: ` line on stderr:\n{stderr}"
    );
    let line = errors[0];
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error line should mention {needle:?}: {line}"
        );
    }
    line.to_string()
}

/// Parses `REFERENCE DIGEST` printed by `ferry pack` (`reference` fully
/// qualified, so ferry prints it as given).
pub fn parse_pack_line(stdout: &str, reference: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "pack prints one line:\n{stdout}");
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(words.len(), 2, "pack prints `REFERENCE DIGEST`: {stdout}");
    assert_eq!(
        words[0], reference,
        "pack prints the (fully qualified) reference"
    );
    assert!(is_digest(words[1]), "pack prints a digest: {stdout}");
    words[1].to_string()
}

/// True for `sha256:` and 64 lowercase hex digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub use ferry_testkit::{sha256, sha256_file};

/// Where the store keeps the blob `digest`.
pub fn blob_path(store: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    store.join("artifacts/blobs/sha256").join(hex)
}

/// A path as `&str` (temp paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------------------
// Temporary directories and files
// ---------------------------------------------------------------------------

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("ferry-cli-it-")
        .tempdir()
        .expect("create temp dir")
}

/// Makes `dir` traversable by every user (temp dirs are created 0700).
pub fn open_to_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

/// Gives `path` (recursively) to uid/gid `uid`.
pub fn chown_recursive(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown -R {uid} {}", path.display());
}

pub use ferry_testkit::copy_tree;

/// Writes `len` pseudo-random bytes to `path` quickly: one megabyte from an
/// LCG, repeated with the chunk number stamped in, so no two chunks (and no
/// two seeds) are alike.
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    const CHUNK: usize = 1 << 20;
    let mut rng = Lcg::new(seed);
    let mut block = vec![0u8; CHUNK];
    for word in block.chunks_mut(8) {
        word.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let mut file = io::BufWriter::new(File::create(path).expect("create random file"));
    let mut written = 0u64;
    let mut chunk_number = 0u64;
    while written < len {
        block[..8].copy_from_slice(&(chunk_number ^ seed.rotate_left(32)).to_le_bytes());
        let n = (len - written).min(CHUNK as u64) as usize;
        file.write_all(&block[..n]).expect("write random file");
        written += n as u64;
        chunk_number += 1;
    }
    file.flush().expect("flush random file");
}

/// A small deterministic generator (Knuth's MMIX LCG), so tests need no
/// random-number crate and every run sees the same sequence.
pub struct Lcg(u64);

impl Lcg {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 bits (the high half of the state is the better half).
    pub fn next_u64(&mut self) -> u64 {
        let mut out = 0;
        for _ in 0..2 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            out = (out << 32) | (self.0 >> 32);
        }
        out
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// A tiny model made in Rust: `config.json`, a weight file and a README.
pub fn tiny_model(dir: &Path, seed: u64) {
    fs::create_dir_all(dir).expect("create model dir");
    fs::write(
        dir.join("config.json"),
        format!("{{\"model_type\":\"tiny\",\"seed\":{seed}}}\n"),
    )
    .expect("write config.json");
    write_random_file(&dir.join("weights.bin"), 64 * 1024, seed);
    fs::write(dir.join("README.md"), format!("# tiny model {seed}\n")).expect("write README");
}

// ---------------------------------------------------------------------------
// Synthetic Hugging Face models and directory trees
// ---------------------------------------------------------------------------

pub use ferry_testkit::{MIB, Node, assert_same_tree, file_sizes, files_only, tree};

/// A small (about 34 MB, the generator's smallest) synthetic Llama-style
/// model with `shards` weight files. Generated once per seed, shard count
/// and generator version into cargo's test temp dir and reused: treat it
/// as read-only (copy it to change it).
pub fn gen_model(seed: u64, shards: u32) -> PathBuf {
    gen_model_sized(10 * MIB, shards, seed)
}

/// A synthetic model of about `total_bytes` of weights, cached like [`gen_model`].
pub fn gen_model_sized(total_bytes: u64, shards: u32, seed: u64) -> PathBuf {
    let spec = ferry_testkit::ModelSpec::new(total_bytes)
        .shards(shards)
        .seed(seed);
    ferry_testkit::cached_model(env!("CARGO_TARGET_TMPDIR"), &spec)
}

// ---------------------------------------------------------------------------
// Store snapshots
// ---------------------------------------------------------------------------

/// What a store holds: index.json bytes and blob names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// index.json exactly.
    pub index: Vec<u8>,
    /// Names in artifacts/blobs/sha256.
    pub blobs: BTreeSet<String>,
}

/// Takes a snapshot of `store`.
pub fn snapshot(store: &Path) -> Snapshot {
    Snapshot {
        index: fs::read(store.join("artifacts/index.json")).expect("read index.json"),
        blobs: names(&store.join("artifacts/blobs/sha256")),
    }
}

/// The names in a directory (empty when it does not exist).
pub fn names(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    }
}

/// Asserts a failed command left the store as it was: same index, no new
/// blobs, nothing in tmp/.
pub fn assert_store_unchanged(store: &Path, before: &Snapshot) {
    let after = snapshot(store);
    assert_eq!(
        String::from_utf8_lossy(&before.index),
        String::from_utf8_lossy(&after.index),
        "index.json changed"
    );
    let new: Vec<_> = after.blobs.difference(&before.blobs).collect();
    let gone: Vec<_> = before.blobs.difference(&after.blobs).collect();
    assert!(new.is_empty(), "new blobs in the store: {new:?}");
    assert!(gone.is_empty(), "blobs vanished from the store: {gone:?}");
    assert_tmp_empty(store);
}

/// Asserts `<store>/tmp` holds nothing.
pub fn assert_tmp_empty(store: &Path) {
    let leftovers = names(&store.join("tmp"));
    assert!(leftovers.is_empty(), "leftovers in tmp/: {leftovers:?}");
}

// ---------------------------------------------------------------------------
// Mounts and child processes
// ---------------------------------------------------------------------------

/// A mount that is unmounted when dropped (also when a test panics).
#[derive(Debug)]
pub struct Mount {
    path: PathBuf,
}

impl Mount {
    /// `mount -t tmpfs -o OPTIONS tmpfs PATH` (PATH is created).
    pub fn tmpfs(path: &Path, options: &str) -> Mount {
        fs::create_dir_all(path).expect("create mount point");
        mount(&["-t", "tmpfs", "-o", options, "tmpfs", s(path)]);
        Mount {
            path: path.to_path_buf(),
        }
    }

    /// A read-only bind mount of `source` at `path` (PATH is created).
    pub fn bind_read_only(source: &Path, path: &Path) -> Mount {
        fs::create_dir_all(path).expect("create mount point");
        mount(&["--bind", s(source), s(path)]);
        let guard = Mount {
            path: path.to_path_buf(),
        };
        mount(&["-o", "remount,bind,ro", s(path)]);
        guard
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn mount(args: &[&str]) {
    let output = run(Command::new("mount").args(args));
    assert_success(&output, &format!("mount {}", args.join(" ")));
}

impl Drop for Mount {
    fn drop(&mut self) {
        for _ in 0..50 {
            let ok = Command::new("umount")
                .arg(&self.path)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // Still busy: detach it so nothing stays mounted after the test.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A child process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Spawns `cmd` with stdout and stderr captured.
    pub fn spawn(mut cmd: Command) -> KillOnDrop {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        KillOnDrop(Some(
            cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
        ))
    }

    /// Waits for the child and returns its output.
    pub fn wait(mut self) -> Output {
        let child = self.0.take().expect("child is running");
        child.wait_with_output().expect("wait for child")
    }

    /// Waits up to `limit` for the child to end (output small enough for
    /// the pipes); panics, after killing it, when it is still running.
    pub fn wait_at_most(mut self, limit: std::time::Duration) -> Output {
        let deadline = std::time::Instant::now() + limit;
        let child = self.0.as_mut().expect("child is running");
        while child.try_wait().expect("poll child").is_none() {
            if std::time::Instant::now() > deadline {
                let output = self.kill();
                panic!("still running after {limit:?}: {}", show(&output));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.wait()
    }

    /// Sends SIGTERM and waits for the child to stop on its own.
    pub fn terminate(mut self) -> Output {
        let child = self.0.take().expect("child is running");
        let pid = i32::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid, which is not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        child.wait_with_output().expect("wait for child")
    }

    /// Sends SIGKILL (if it still runs) and reaps it; returns its output.
    pub fn kill(mut self) -> Output {
        let mut child = self.0.take().expect("child is running");
        let _ = child.kill();
        child.wait_with_output().expect("wait for killed child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A minimal HTTP/1.0 GET (the test crate has no HTTP client): status and body.
pub fn http_get(addr: &str, path: &str, accept: &str) -> Option<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response[split + 4..].to_vec()))
}

/// Every regular file under `dir`: relative path -> (size, digest).
pub fn contents(dir: &Path) -> BTreeMap<String, (u64, String)> {
    tree(dir)
        .into_iter()
        .filter_map(|(path, node)| match node {
            Node::File { size, digest, .. } => Some((path, (size, digest))),
            _ => None,
        })
        .collect()
}

/// The keys of a JSON object, sorted.
pub fn keys(value: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `` `ferry ARGS` `` for messages.
pub fn words<S: AsRef<OsStr>>(args: &[S]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    format!("`ferry {}`", words.join(" "))
}

/// What ferry printed on stdout, as JSON.
pub fn parse_json<S: AsRef<OsStr>>(output: &Output, args: &[S]) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed invalid JSON ({e})\n{}",
            words(args),
            show(output)
        )
    })
}

/// ferry with its own store, Docker config directory and XDG config home, so
/// no credentials or registries.toml leak in from the machine.
pub struct Cli {
    /// The ferry binary on a private store.
    pub ferry: Ferry,
    /// Holds the store, `docker/` and `xdg/`.
    pub home: TempDir,
}

impl Cli {
    pub fn new() -> Cli {
        let home = tempdir();
        let ferry = Ferry::new(home.path().join("store"));
        Cli { ferry, home }
    }

    /// A path in the private home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// `$DOCKER_CONFIG`.
    pub fn docker_config(&self) -> PathBuf {
        self.path("docker")
    }

    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = self.ferry.command(args);
        cmd.env("DOCKER_CONFIG", self.docker_config())
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("NO_PROGRESS", "1");
        cmd
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run(&mut self.command(args))
    }

    /// Runs ferry expecting exit `code`; returns the output.
    pub fn exits<S: AsRef<OsStr>>(&self, code: i32, args: &[S]) -> Output {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{} should exit {code}\n{}",
            words(args),
            show(&output)
        );
        output
    }

    /// Runs ferry expecting success; returns its stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let output = self.run(args);
        assert_success(&output, &words(args));
        String::from_utf8(output.stdout).expect("stdout is UTF-8")
    }

    /// Runs ferry expecting success and parses its stdout as JSON.
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> serde_json::Value {
        parse_json(&self.exits(0, args), args)
    }

    /// Runs ferry, asserts it failed and returns its single `error:` line
    /// after checking it mentions every one of `needles`.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S], needles: &[&str]) -> String {
        let output = self.run(args);
        assert_failure(&output, &words(args));
        error_line(&String::from_utf8_lossy(&output.stderr), needles)
    }

    /// `ferry login REGISTRY -u USER --password-stdin` with `password` on stdin.
    pub fn login(&self, registry: &str, user: &str, password: &str) -> Output {
        let mut cmd = self.command(&["login", registry, "-u", user, "--password-stdin"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ferry login");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write the password");
        child.wait_with_output().expect("wait for ferry login")
    }
}

// ---------------------------------------------------------------------------
// Hugging Face hub cache
// ---------------------------------------------------------------------------

/// The commit the cache fixtures' snapshots are named by.
pub const HF_COMMIT: &str = "8d5c1e6a0b2f4c3d9e7f6a5b4c3d2e1f0a9b8c7d";

/// Builds a repository of the Hugging Face hub cache under `cache` as the
/// hub client lays it out: `blobs/<sha256-like hex>` holding each file's
/// bytes, `snapshots/<commit>/<path>` a relative link into `../../blobs`
/// (one `..` more per subdirectory) and `refs/main` naming the commit.
/// Returns the snapshot directory.
pub fn hf_cache_repo(cache: &Path, folder: &str, commit: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let repo = cache.join(folder);
    let snapshot = repo.join("snapshots").join(commit);
    fs::create_dir_all(repo.join("blobs")).unwrap();
    fs::create_dir_all(repo.join("refs")).unwrap();
    fs::write(repo.join("refs/main"), commit).unwrap();
    for (i, (path, bytes)) in files.iter().enumerate() {
        let blob = format!("{:064x}", 0xb10b_0000 + i);
        fs::write(repo.join("blobs").join(&blob), bytes).unwrap();
        let link = snapshot.join(path);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        let up = "../".repeat(path.matches('/').count() + 2);
        std::os::unix::fs::symlink(format!("{up}blobs/{blob}"), &link).unwrap();
    }
    snapshot
}
