//! Input ferry must refuse: each case exits non-zero with one clear
//! `error: ...` line naming the culprit, and leaves the store as it was
//! (same index.json, no new blobs, nothing in tmp/).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tempfile::TempDir;

use crate::common::*;

/// A store that already holds one artifact, and its snapshot.
struct Fixture {
    dir: TempDir,
    ferry: Ferry,
    before: Snapshot,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempdir();
        let existing = dir.path().join("existing");
        tiny_model(&existing, 7);
        let ferry = Ferry::new(dir.path().join("store"));
        ferry.pack(&existing, "localhost:5000/existing:v1");
        let before = snapshot(&ferry.store);
        Fixture { dir, ferry, before }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `pack DIR -t REF` expecting failure; checks the error line and
    /// that the store is unchanged; returns the error line.
    fn pack_fails(&self, dir: &Path, reference: &str, needles: &[&str]) -> String {
        let stderr = self.ferry.fails(&["pack", s(dir), "-t", reference]);
        let line = error_line(&stderr, needles);
        assert_store_unchanged(&self.ferry.store, &self.before);
        line
    }
}

#[test]
fn a_missing_directory_is_named() {
    let f = Fixture::new();
    let missing = f.path("no-such-model");
    f.pack_fails(&missing, REF, &[s(&missing), "No such file or directory"]);
}

#[test]
fn an_empty_directory_is_named() {
    let f = Fixture::new();
    let empty = f.path("empty");
    fs::create_dir(&empty).unwrap();
    f.pack_fails(&empty, REF, &[s(&empty), "no files"]);
    // Hidden files only counts as empty too.
    fs::write(empty.join(".gitattributes"), "*.bin lfs\n").unwrap();
    f.pack_fails(&empty, REF, &[s(&empty), "no files"]);
}

#[test]
fn an_unreadable_file_is_named() {
    if !require_setpriv() {
        return;
    }
    // Everything belongs to nobody, who cannot read one file of the model.
    let dir = tempdir();
    open_to_all(dir.path());
    let existing = dir.path().join("existing");
    tiny_model(&existing, 3);
    let model = dir.path().join("model");
    tiny_model(&model, 4);
    write_random_file(&model.join("weights-2.bin"), 2 << 20, 5);
    let secret = model.join("tokenizer.json");
    fs::write(&secret, "{}").unwrap();
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    chown_recursive(dir.path(), NOBODY);
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();

    let nobody = Ferry::new(&store).as_nobody(dir.path());
    nobody.pack(&existing, "localhost:5000/existing:v1");
    let before = snapshot(&store);
    let stderr = nobody.fails(&["pack", s(&model), "-t", REF]);
    error_line(&stderr, &[s(&secret), "Permission denied"]);
    assert_store_unchanged(&store, &before);
    nobody.ok(&["fsck"]);
}

/// Appends to a file from a thread until dropped.
struct Appender {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Appender {
    fn start(path: &Path) -> Appender {
        let stop = Arc::new(AtomicBool::new(false));
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let chunk = vec![0x5a; 16 * 1024];
            let mut appended = 0;
            while !flag.load(Ordering::Relaxed) {
                file.write_all(&chunk).unwrap();
                appended += chunk.len() as u64;
                std::thread::sleep(Duration::from_millis(1));
            }
            appended
        });
        Appender {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops appending; returns how many bytes were appended.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_file_that_changes_while_packed_is_named() {
    let f = Fixture::new();
    let model = f.path("model");
    tiny_model(&model, 9);
    let growing = model.join("big-weights.bin");
    write_random_file(&growing, 300 << 20, 10);
    let appender = Appender::start(&growing);
    let line = f.pack_fails(
        &model,
        REF,
        &[s(&growing), "changed while it was being packed"],
    );
    assert!(appender.stop() > 0, "the file grew during the pack: {line}");
}

#[test]
fn a_modelfile_with_an_unknown_directive_names_the_line() {
    let f = Fixture::new();
    let model = f.path("model");
    tiny_model(&model, 11);
    let modelfile = model.join("Modelfile");
    fs::write(&modelfile, "NAME tiny\n# a comment\nFROBNICATE yes\n").unwrap();
    f.pack_fails(&model, REF, &[s(&modelfile), "line 3", "FROBNICATE"]);
}

#[test]
fn a_modelfile_glob_matching_nothing_names_the_line() {
    let f = Fixture::new();
    let model = f.path("model");
    tiny_model(&model, 12);
    fs::write(
        model.join("Modelfile"),
        "NAME tiny\nMODEL weights.bin\nCONFIG config.json\nDOC *.pdf\nDOC README.md\n",
    )
    .unwrap();
    f.pack_fails(&model, REF, &["line 4", "*.pdf", "matches no file"]);
}

#[test]
fn invalid_references_are_named() {
    let f = Fixture::new();
    let model = f.path("model");
    tiny_model(&model, 13);
    for reference in ["UPPER/Case:tag", "a:b:c", "x@sha256:abc"] {
        f.pack_fails(&model, reference, &[reference, "invalid reference"]);
    }
    let stderr = f
        .ferry
        .fails(&["tag", "localhost:5000/existing:v1", "a:b:c"]);
    error_line(&stderr, &["a:b:c"]);
    assert_store_unchanged(&f.ferry.store, &f.before);
}

#[test]
fn a_read_only_store_is_named_and_still_readable() {
    if !require_root("for mounts") {
        return;
    }
    let f = Fixture::new();
    let model = f.path("model");
    tiny_model(&model, 14);
    let ro = Mount::bind_read_only(&f.ferry.store, &f.path("ro-store"));
    let ro_ferry = Ferry::new(ro.path());
    let stderr = ro_ferry.fails(&["pack", s(&model), "-t", REF]);
    error_line(&stderr, &[s(ro.path()), "Read-only file system"]);
    for args in [["rm", "localhost:5000/existing:v1"], ["prune", "--dry-run"]] {
        let stderr = ro_ferry.fails(&args);
        error_line(&stderr, &[s(ro.path()), "Read-only file system"]);
    }
    // Reading needs no write access.
    assert_eq!(ro_ferry.listed().len(), 1);
    ro_ferry.ok(&["fsck"]);
    ro_ferry.ok(&["inspect", "localhost:5000/existing:v1"]);
    let out = f.path("out");
    ro_ferry.ok(&["extract", "localhost:5000/existing:v1", s(&out)]);
    assert_same_tree(&tree(&f.path("existing")), &tree(&out));
    drop(ro);
    assert_store_unchanged(&f.ferry.store, &f.before);
}

#[test]
fn a_store_on_a_read_only_filesystem_is_named() {
    if !require_root("for mounts") {
        return;
    }
    let dir = tempdir();
    let model = dir.path().join("model");
    tiny_model(&model, 15);
    let ro = Mount::tmpfs(&dir.path().join("ro"), "ro,size=1m");
    let store = ro.path().join("store");
    let stderr = Ferry::new(&store).fails(&["pack", s(&model), "-t", REF]);
    error_line(&stderr, &[s(&store), "Read-only file system"]);
    assert!(!store.exists());
}

#[test]
fn a_full_disk_fails_the_pack_and_leaves_nothing_behind() {
    if !require_root("for mounts") {
        return;
    }
    let dir = tempdir();
    let model = dir.path().join("model");
    tiny_model(&model, 16);
    let weights = model.join("model-weights.bin");
    write_random_file(&weights, 20 << 20, 17);
    let small = Mount::tmpfs(&dir.path().join("small"), "size=8m");
    let ferry = Ferry::new(small.path().join("store"));
    let existing = dir.path().join("existing");
    tiny_model(&existing, 18);
    ferry.pack(&existing, "localhost:5000/existing:v1");
    let before = snapshot(&ferry.store);

    let stderr = ferry.fails(&["pack", s(&model), "-t", REF]);
    // Layers are written in parallel: whichever fills the disk first is
    // named, by its source path (raw) or its entry and temp file (tar).
    let line = error_line(&stderr, &["No space left on device"]);
    assert!(
        line.contains(s(&weights)) || line.contains(s(&model)) || line.contains(s(&ferry.store)),
        "the error should name the file or the store: {line}"
    );
    assert_store_unchanged(&ferry.store, &before);
    // The space came back: the store still works.
    ferry.ok(&["fsck"]);
    let smaller = dir.path().join("smaller");
    tiny_model(&smaller, 19);
    ferry.pack(&smaller, "localhost:5000/smaller:v1");
    drop(small);
}

#[test]
fn a_corrupt_index_is_named_and_fails_fsck() {
    let f = Fixture::new();
    let index = f.ferry.store.join("artifacts/index.json");
    let len = fs::metadata(&index).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let before = snapshot(&f.ferry.store);
    let f = Fixture { before, ..f };
    let model = f.path("model");
    tiny_model(&model, 20);
    f.pack_fails(&model, REF, &["corrupt index", s(&index)]);
    let stderr = f.ferry.fails(&["ls"]);
    error_line(&stderr, &["corrupt index", s(&index)]);
    let output = f.ferry.run(&["fsck"]);
    assert_failure(&output, "fsck of a store with a corrupt index");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(s(&index)),
        "{}",
        show(&output)
    );
    let report = f.ferry.run(&["fsck", "--json"]);
    assert_failure(&report, "fsck --json");
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["clean"], false);
    assert!(
        report["indexError"]
            .as_str()
            .unwrap()
            .contains("corrupt index")
    );
    assert_store_unchanged(&f.ferry.store, &f.before);
}

#[test]
fn link_copies_a_file_whose_mode_it_may_not_change() {
    if !require_setpriv() {
        return;
    }
    // Linking another user's file is allowed when it is writable (Linux's
    // protected_hardlinks), but taking write permission from it is not:
    // such a file is copied into the store instead.
    let dir = tempdir();
    open_to_all(dir.path());
    let model = dir.path().join("model");
    tiny_model(&model, 6);
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    chown_recursive(dir.path(), NOBODY);
    let shared = model.join("shared.bin");
    fs::write(&shared, b"written by root, writable by all").unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o666)).unwrap();
    let mine = model.join("mine.bin");
    fs::write(&mine, b"nobody's own, group-writable").unwrap();
    chown_recursive(&mine, NOBODY);
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o664)).unwrap();

    let nobody = Ferry::new(&store).as_nobody(dir.path());
    nobody.ok(&["pack", s(&model), "-t", REF, "--link"]);
    let blob_of = |bytes: &[u8]| blob_path(&store, &sha256(bytes));
    let shared_blob = fs::metadata(blob_of(b"written by root, writable by all")).unwrap();
    let shared_file = fs::metadata(&shared).unwrap();
    assert_ne!(
        shared_blob.ino(),
        shared_file.ino(),
        "root's file is copied"
    );
    assert_eq!(
        shared_file.permissions().mode() & 0o777,
        0o666,
        "and keeps its mode"
    );
    assert_eq!(shared_blob.permissions().mode() & 0o022, 0);
    let mine_blob = fs::metadata(blob_of(b"nobody's own, group-writable")).unwrap();
    assert_eq!(
        mine_blob.ino(),
        fs::metadata(&mine).unwrap().ino(),
        "its own is linked"
    );
    assert_eq!(mine_blob.permissions().mode() & 0o777, 0o644);
    nobody.ok(&["fsck"]);
}
