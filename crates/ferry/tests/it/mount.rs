//! `ferry mount`, `umount` and `mounts`, and how `rm` and `prune` treat
//! mounted content. Real mounts need root; the tests skip with a note
//! without it (and fail under `CI=true`).

use std::ffi::OsStr;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Unmounts a volume (through ferry, else lazily) when dropped.
struct Volume {
    ferry: Ferry,
    target: PathBuf,
}

impl Volume {
    fn mount(ferry: &Ferry, args: &[&OsStr], target: &Path) -> (Volume, String) {
        let mut all: Vec<&OsStr> = vec![OsStr::new("mount")];
        all.extend_from_slice(args);
        all.push(target.as_os_str());
        let volume = Volume {
            ferry: ferry.clone(),
            target: target.to_path_buf(),
        };
        let stdout = ferry.ok(&all);
        (volume, stdout)
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = self
            .ferry
            .command(&[OsStr::new("umount"), self.target.as_os_str()])
            .output();
        if mounted_at(&self.target) {
            let _ = Command::new("umount").arg("-l").arg(&self.target).status();
        }
    }
}

fn mounted_at(path: &Path) -> bool {
    let Ok(canonical) = fs::canonicalize(path) else {
        return false;
    };
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(s(&canonical)))
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

/// The files of a tree with write bits removed (a read-only volume's view
/// of an extracted tree).
fn read_only_files(root: &Path) -> std::collections::BTreeMap<String, Node> {
    files_only(tree(root))
        .into_iter()
        .map(|(k, n)| match n {
            Node::File { mode, size, digest } => (
                k,
                Node::File {
                    mode: mode & 0o7555,
                    size,
                    digest,
                },
            ),
            other => (k, other),
        })
        .collect()
}

#[test]
fn mount_lists_and_unmounts_a_read_only_volume() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("model"), 1);
    ferry.pack(&t.path().join("model"), REF);
    let target = t.path().join("mnt");
    let (volume, stdout) = Volume::mount(&ferry, &[os(REF)], &target);
    assert_eq!(
        stdout.trim(),
        format!("mounted {REF} at {} (ro, overlay)", target.display())
    );
    assert!(mounted_at(&target));

    let extracted = t.path().join("extracted");
    ferry.ok(&[os("extract"), os(REF), extracted.as_os_str()]);
    assert_eq!(read_only_files(&target), read_only_files(&extracted));
    let err = fs::write(target.join("README.md"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "EROFS: {err}");
    assert_eq!(
        fs::File::create(target.join("new"))
            .unwrap_err()
            .raw_os_error(),
        Some(30)
    );

    let listed = ferry.json(&["mounts", "--json"]);
    let rows = listed.as_array().expect("an array");
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["target"], s(&target));
    assert_eq!(rows[0]["access"], "ro");
    assert_eq!(rows[0]["method"], "overlay");
    assert_eq!(rows[0]["artifacts"][0]["reference"], REF);
    assert_eq!(rows[0]["artifacts"][0]["digest"], ferry.resolve(REF));
    let table = ferry.ok(&["mounts"]);
    assert!(
        table.contains(s(&target)) && table.contains(" ro "),
        "{table}"
    );

    assert_eq!(
        ferry.ok(&[os("umount"), target.as_os_str()]).trim(),
        format!("unmounted {}", target.display())
    );
    drop(volume);
    assert!(!target.exists(), "the mount point ferry created is removed");
    assert_eq!(ferry.json(&["mounts", "--json"]), serde_json::json!([]));
    let stderr = ferry.fails(&[os("umount"), target.as_os_str()]);
    error_line(&stderr, &["no ferry mount at"]);
}

#[test]
fn rm_and_prune_keep_mounted_content_unless_forced() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("v1"), 1);
    let v1 = ferry.pack(&t.path().join("v1"), REF);
    let target = t.path().join("mnt");
    let (_volume, _) = Volume::mount(&ferry, &[os(REF)], &target);

    let stderr = ferry.fails(&["rm", REF]);
    error_line(&stderr, &[REF, "in use by the mount at", s(&target)]);
    assert!(stderr.contains("hint: unmount it first"), "{stderr}");
    assert_eq!(ferry.resolve(REF), v1);

    // The tag moves to other content: v1 is reachable only from the mount.
    tiny_model(&t.path().join("v2"), 2);
    ferry.pack(&t.path().join("v2"), REF);
    ferry.ok(&["prune"]);
    assert!(
        blob_path(&ferry.store, &v1).is_file(),
        "prune keeps the mounted manifest"
    );
    assert_eq!(
        fs::read(target.join("README.md")).unwrap(),
        b"# tiny model 1\n"
    );

    let pruned = ferry.json(&["prune", "--force", "--json"]);
    assert!(
        pruned["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == &serde_json::json!(v1)),
        "{pruned}"
    );
    assert!(!blob_path(&ferry.store, &v1).exists());
    // The volume reads the layer cache, which a live mount keeps.
    assert_eq!(
        fs::read(target.join("README.md")).unwrap(),
        b"# tiny model 1\n"
    );
    assert!(
        pruned["layerCache"].as_array().unwrap().is_empty(),
        "{pruned}"
    );

    ferry.ok(&[os("umount"), target.as_os_str()]);
    let pruned = ferry.json(&["prune", "--json"]);
    assert_eq!(
        pruned["layerCache"].as_array().unwrap().len(),
        3,
        "v1's cache entries go: {pruned}"
    );
    let fsck = ferry.json(&["fsck", "--json"]);
    assert_eq!(fsck["clean"], true, "{fsck}");

    // `rm --force` removes a mounted artifact outright.
    let (_again, _) = Volume::mount(&ferry, &[os(REF)], &target);
    ferry.fails(&["rm", REF]);
    ferry.ok(&["rm", "--force", REF]);
    assert!(ferry.listed().is_empty());
    assert_eq!(
        fs::read(target.join("README.md")).unwrap(),
        b"# tiny model 2\n"
    );
}

#[test]
fn subpaths_and_stacks_from_the_command_line() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("base"), 1);
    ferry.pack(&t.path().join("base"), REF);
    let top = t.path().join("top");
    fs::create_dir_all(top.join("extra")).unwrap();
    fs::write(top.join("README.md"), b"# adapter\n").unwrap();
    fs::write(top.join("extra/notes.md"), b"notes\n").unwrap();
    ferry.ok(&[
        os("pack"),
        os("--generic"),
        top.as_os_str(),
        os("-t"),
        os("localhost:5000/adapter:v1"),
        os("--artifact-type"),
        os("application/vnd.example.adapter"),
    ]);

    let stacked = t.path().join("stacked");
    let (_s, _) = Volume::mount(
        &ferry,
        &[os(REF), os("--stack"), os("localhost:5000/adapter:v1")],
        &stacked,
    );
    assert_eq!(
        fs::read(stacked.join("README.md")).unwrap(),
        b"# adapter\n",
        "the stacked artifact wins"
    );
    assert!(
        stacked.join("weights.bin").is_file(),
        "the base shows through"
    );
    assert!(stacked.join("extra/notes.md").is_file());

    let file = t.path().join("readme");
    let (_f, _) = Volume::mount(&ferry, &[os(REF), os("--subpath"), os("README.md")], &file);
    assert_eq!(fs::read(&file).unwrap(), b"# tiny model 1\n");

    let missing = t.path().join("missing");
    let stderr = ferry.fails(&[
        os("mount"),
        os(REF),
        missing.as_os_str(),
        os("--subpath"),
        os("no/such/dir"),
    ]);
    error_line(&stderr, &["subpath \"no/such/dir\" does not exist", REF]);
    assert!(!missing.exists() && !mounted_at(&missing));
    assert_eq!(
        ferry.json(&["mounts", "--json"]).as_array().unwrap().len(),
        2
    );
}

#[test]
fn read_write_volumes_keep_changes_on_request() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("model"), 1);
    ferry.pack(&t.path().join("model"), REF);
    let before = snapshot(&ferry.store);
    let target = t.path().join("mnt");
    let (_volume, stdout) = Volume::mount(&ferry, &[os(REF), os("--rw")], &target);
    assert!(stdout.contains("(rw, overlay)"), "{stdout}");
    fs::write(target.join("weights.bin"), b"fine-tuned").unwrap();
    fs::remove_file(target.join("README.md")).unwrap();
    fs::write(target.join("new.txt"), b"new").unwrap();
    let kept = t.path().join("kept");
    let out = ferry.ok(&[
        os("umount"),
        target.as_os_str(),
        os("--keep-changes"),
        kept.as_os_str(),
    ]);
    assert!(out.contains("kept 3 changed entries"), "{out}");
    assert_eq!(fs::read(kept.join("weights.bin")).unwrap(), b"fine-tuned");
    assert!(kept.join(".wh.README.md").is_file());
    assert_eq!(snapshot(&ferry.store).blobs, before.blobs);
    assert_eq!(ferry.json(&["fsck", "--json"])["clean"], true);
}

#[test]
fn kept_changes_give_nobody_a_setuid_file_or_a_device() {
    if !require_root("for mounts and files of another user") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("model"), 1);
    ferry.pack(&t.path().join("model"), REF);
    let target = t.path().join("mnt");
    let (_volume, _) = Volume::mount(&ferry, &[os(REF), os("--rw")], &target);
    // What an unprivileged writer in the volume can leave behind.
    let shell = target.join("sh");
    fs::write(&shell, b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&shell, Some(1000), Some(1000)).unwrap();
    fs::set_permissions(&shell, fs::Permissions::from_mode(0o6755)).unwrap();
    assert_success(
        &run(Command::new("mkfifo").arg(target.join("pipe"))),
        "mkfifo",
    );
    let kept = t.path().join("kept");
    let out = ferry.ok(&[
        os("umount"),
        target.as_os_str(),
        os("--keep-changes"),
        kept.as_os_str(),
    ]);
    assert!(
        out.contains("did not keep 1 device nodes, fifos or sockets"),
        "{out}"
    );
    let meta = fs::symlink_metadata(kept.join("sh")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o755, "setuid and setgid stripped");
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "the writer's owner");
    assert!(fs::symlink_metadata(kept.join("pipe")).is_err());
}

#[test]
fn umount_leaves_a_mount_that_is_not_ferrys_alone() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("model"), 1);
    ferry.pack(&t.path().join("model"), REF);
    let target = t.path().join("mnt");
    let (_volume, _) = Volume::mount(&ferry, &[os(REF)], &target);
    assert_success(&run(Command::new("umount").arg(&target)), "umount");
    let tmpfs = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&target)
        .output()
        .unwrap();
    assert_success(&tmpfs, "mount tmpfs");
    let stderr = ferry.fails(&[os("umount"), target.as_os_str()]);
    let still = mounted_at(&target);
    let _ = Command::new("umount").arg("-l").arg(&target).status();
    error_line(&stderr, &["not the volume ferry made"]);
    assert!(still, "the tmpfs stays mounted");
}

#[test]
fn busy_and_vanished_mounts_are_reported() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("model"), 1);
    ferry.pack(&t.path().join("model"), REF);
    let target = t.path().join("mnt");
    let (_volume, _) = Volume::mount(&ferry, &[os(REF)], &target);
    let mut sleeper = Command::new("sleep");
    sleeper.arg("60").current_dir(&target);
    let child = KillOnDrop::spawn(sleeper);
    let stderr = ferry.fails(&[os("umount"), target.as_os_str()]);
    error_line(&stderr, &["busy"]);
    assert!(stderr.contains("hint: stop what uses it"), "{stderr}");
    assert!(mounted_at(&target));
    child.kill();

    // Unmounted behind ferry's back: `ferry mounts` drops the record.
    assert_success(&run(Command::new("umount").arg(&target)), "umount");
    let output = ferry.run(&["mounts", "--json"]);
    assert_success(&output, "ferry mounts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("its target is no longer mounted"),
        "{stderr}"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap(),
        serde_json::json!([])
    );
    assert!(
        names(&ferry.store.join("mounts"))
            .iter()
            .all(|n| n.starts_with('.'))
    );
}

#[test]
fn unprivileged_users_get_a_read_only_hardlink_tree() {
    if !require_setpriv() {
        return;
    }
    let t = tempdir();
    open_to_all(t.path());
    let root_ferry = Ferry::new(t.path().join("store"));
    tiny_model(&t.path().join("model"), 1);
    root_ferry.pack(&t.path().join("model"), REF);
    chown_recursive(&t.path().join("store"), NOBODY);
    let scratch = t.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    chown_recursive(&scratch, NOBODY);
    let ferry = root_ferry.as_nobody(&scratch);
    let target = scratch.join("vol");

    // mount(2) says EPERM to nobody: ferry falls back and says so.
    let output = ferry.run(&[os("mount"), os(REF), target.as_os_str()]);
    assert_success(&output, "ferry mount as nobody");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("note: mount(2) was refused"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("(ro, hardlink)"));
    let extracted = t.path().join("extracted");
    root_ferry.ok(&[os("extract"), os(REF), extracted.as_os_str()]);
    assert_eq!(read_only_files(&target), read_only_files(&extracted));
    // Without CAP_DAC_OVERRIDE the read-only hardlinks cannot be written.
    let write = run(Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!(
            "echo x >> '{}'",
            target.join("weights.bin").display()
        ))
        .stderr(Stdio::piped()));
    assert!(!write.status.success(), "nobody wrote to a cached file");
    assert!(!target.join("x").exists());
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o222,
        0
    );
    let fsck = root_ferry.json(&["fsck", "--json"]);
    assert_eq!(fsck["clean"], true, "{fsck}");

    ferry.ok(&[os("umount"), target.as_os_str()]);
    assert!(!target.exists());
}

/// A `ferry serve` on a free loopback port, killed when dropped.
struct Registry {
    _child: KillOnDrop,
    addr: String,
}

impl Registry {
    fn start(root: &Path) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(FERRY);
        cmd.args(["serve", "--addr", &addr, "--root"]).arg(root);
        let child = KillOnDrop::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "ferry serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            _child: child,
            addr,
        }
    }
}

#[test]
fn pull_policies_decide_when_the_registry_is_asked() {
    if !require_root("for mounts") {
        return;
    }
    let t = tempdir();
    let registry = Registry::start(&t.path().join("registry"));
    let reference = format!("{}/models/tiny:v1", registry.addr);
    let publisher = Ferry::new(t.path().join("publisher"));
    tiny_model(&t.path().join("model"), 3);
    publisher.pack(&t.path().join("model"), &reference);
    publisher.ok(&["push", &reference, "--plain-http"]);

    let ferry = Ferry::new(t.path().join("store"));
    let target = t.path().join("mnt");
    let stderr = ferry.fails(&[
        os("mount"),
        os(&reference),
        target.as_os_str(),
        os("--pull"),
        os("never"),
    ]);
    error_line(&stderr, &["not in the store", "--pull never"]);
    assert!(!target.exists());

    let (_volume, _) = Volume::mount(
        &ferry,
        &[
            os(&reference),
            os("--pull"),
            os("missing"),
            os("--plain-http"),
        ],
        &target,
    );
    assert_eq!(
        fs::read(target.join("README.md")).unwrap(),
        b"# tiny model 3\n"
    );
    assert_eq!(ferry.resolve(&reference), publisher.resolve(&reference));

    // Present now: `never` mounts from the store, `always` asks again.
    let again = t.path().join("again");
    let (_v2, _) = Volume::mount(&ferry, &[os(&reference), os("--pull"), os("never")], &again);
    drop(registry);
    let third = t.path().join("third");
    let stderr = ferry.fails(&[
        os("mount"),
        os(&reference),
        third.as_os_str(),
        os("--pull"),
        os("always"),
        os("--plain-http"),
    ]);
    error_line(&stderr, &["pulling", "to mount it"]);
}
