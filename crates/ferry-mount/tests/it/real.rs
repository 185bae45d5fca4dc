//! Real mounts, as root: content, read-only enforcement, isolation of
//! read-write volumes, subpaths, stacking, hostile layers, cache reuse,
//! concurrency, busy and stale mounts.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_mount::record::Method;
use ferry_mount::{Access, LinuxSyscalls, MountError, MountRequest, UmountOptions, mount, umount};
use ferry_spec::media::Encoding;

use crate::common::*;

const EROFS: i32 = 30;
const EACCES: i32 = 13;

/// A model with nested directories, packed as raw or tar layers.
fn model(env: &Env, reference: &str, format: Encoding) {
    env.pack(
        &format!("model-{}", format.suffix()),
        reference,
        &[
            ("config.json", b"{\"model_type\":\"test\"}"),
            ("model-00001-of-00002.safetensors", &[1u8; 200_000]),
            ("model-00002-of-00002.safetensors", &[2u8; 100_000]),
            ("tokenizer/tokenizer.json", b"{\"vocab\":{}}"),
            ("README.md", b"# model\n"),
        ],
        format,
    );
}

fn ro(env: &Env, reference: &str, target: &Path) -> ferry_mount::Mounted {
    mount(
        &env.store,
        &MountRequest::new(reference, target),
        &LinuxSyscalls,
    )
    .unwrap()
}

#[test]
fn volumes_hold_what_extract_writes() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/raw:v1", Encoding::Raw);
    model(&env, "localhost/tar:v1", Encoding::Tar);
    // ORAS-style: titled files plus an (uncompressed) directory layer
    // marked for unpacking.
    put_artifact(
        &env.store,
        "localhost/oras:v1",
        &[
            (
                b"hello".to_vec(),
                "text/plain",
                vec![("org.opencontainers.image.title", "hello.txt")],
            ),
            (
                tar_of(&[
                    ("data/", b""),
                    ("data/a.csv", b"1,2"),
                    ("data/b/c.csv", b"3,4"),
                ]),
                "application/vnd.oci.image.layer.v1.tar",
                vec![
                    ("org.opencontainers.image.title", "data"),
                    ("io.deis.oras.content.unpack", "true"),
                ],
            ),
        ],
    );
    for reference in ["localhost/raw:v1", "localhost/tar:v1", "localhost/oras:v1"] {
        let name = reference.replace(['/', ':'], "-");
        let target = env.path(&format!("mnt-{name}"));
        let _guard = Guard::new(&env.store, &target);
        let mounted = ro(&env, reference, &target);
        assert_eq!(mounted.record.method, Method::Overlay);
        assert!(is_mount_point(&fs::canonicalize(&target).unwrap()));
        let extracted = env.extract(reference, &format!("x-{name}"));
        let view = tree(&target);
        assert_eq!(
            read_only_view_of(view.clone()),
            read_only_view_of(tree(&extracted)),
            "{reference}"
        );
        assert!(view.len() >= 3, "{reference}: {view:?}");
        if reference == "localhost/oras:v1" {
            assert_eq!(fs::read(target.join("hello.txt")).unwrap(), b"hello");
            assert_eq!(
                fs::read(target.join("data/b/c.csv")).unwrap(),
                b"3,4",
                "the directory layer is unpacked"
            );
        }
        // Read-only all the way down, and readable by everyone.
        for (path, node) in &view {
            if let Node::File { mode, .. } = node {
                assert_eq!(mode & 0o444, 0o444, "{reference}: {path}");
            }
        }
    }
}

#[test]
fn read_only_volumes_refuse_every_kind_of_write() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let target = env.path("mnt");
    let _guard = Guard::new(&env.store, &target);
    ro(&env, "localhost/m:v1", &target);
    let file = target.join("config.json");
    let sub = target.join("tokenizer");
    // Root could write to a read-only file on a writable filesystem: only
    // the mount makes these fail, for every kind of write, root included.
    let cases: Vec<(&str, std::io::Result<()>)> = vec![
        (
            "write",
            OpenOptions::new().write(true).open(&file).map(drop),
        ),
        (
            "append",
            OpenOptions::new().append(true).open(&file).map(drop),
        ),
        (
            "create in root",
            fs::File::create(target.join("new")).map(drop),
        ),
        (
            "create in subdir",
            fs::File::create(sub.join("new")).map(drop),
        ),
        ("mkdir in root", fs::create_dir(target.join("d"))),
        ("mkdir in subdir", fs::create_dir(sub.join("d"))),
        ("rename", fs::rename(&file, target.join("moved"))),
        ("rename dir", fs::rename(&sub, target.join("moved-dir"))),
        ("unlink", fs::remove_file(&file)),
        ("rmdir", fs::remove_dir_all(&sub)),
        (
            "chmod file",
            fs::set_permissions(&file, fs::Permissions::from_mode(0o777)),
        ),
        (
            "chmod root",
            fs::set_permissions(&target, fs::Permissions::from_mode(0o777)),
        ),
        ("truncate", truncate(&file, 0)),
        (
            "symlink",
            std::os::unix::fs::symlink("config.json", target.join("link")),
        ),
        ("hardlink", fs::hard_link(&file, target.join("hard"))),
        (
            "utimes",
            rustix::fs::utimensat(
                rustix::fs::CWD,
                &file,
                &rustix::fs::Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                },
                rustix::fs::AtFlags::empty(),
            )
            .map_err(Into::into),
        ),
    ];
    for (what, result) in cases {
        assert_eq!(errno(result, what), EROFS, "{what}");
    }
    assert_eq!(fs::read(&file).unwrap(), b"{\"model_type\":\"test\"}");
    let options = ferry_mount::mountinfo::mount_at(
        &ferry_mount::mountinfo::read(),
        &fs::canonicalize(&target).unwrap(),
    )
    .unwrap()
    .options
    .clone();
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "{flag} missing from {options}"
        );
    }
}

#[test]
fn read_write_volumes_are_isolated_and_never_touch_the_store() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let (a, b) = (env.path("a"), env.path("b"));
    let _ga = Guard::new(&env.store, &a);
    let _gb = Guard::new(&env.store, &b);
    for target in [&a, &b] {
        let mut request = MountRequest::new("localhost/m:v1", target);
        request.access = Access::ReadWrite;
        mount(&env.store, &request, &LinuxSyscalls).unwrap();
    }
    let cache_before: Vec<(PathBuf, String)> = env
        .layer_dirs("localhost/m:v1")
        .into_iter()
        .flat_map(|d| files_in(&d))
        .map(|p| (p.clone(), sha256_file(&p)))
        .collect();
    assert_eq!(cache_before.len(), 5);
    // Heavy writes in `a`: overwrite, append to and truncate every file
    // (the weights are hardlinks of blobs in the cache), delete, create.
    for path in files_in(&a) {
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xee; 4096]).unwrap();
    }
    fs::write(a.join("model-00001-of-00002.safetensors"), b"replaced").unwrap();
    truncate(&a.join("model-00002-of-00002.safetensors"), 1).unwrap();
    fs::remove_file(a.join("README.md")).unwrap();
    fs::remove_dir_all(a.join("tokenizer")).unwrap();
    for i in 0..200 {
        fs::write(a.join(format!("new-{i}.bin")), vec![i as u8; 10_000]).unwrap();
    }
    fs::set_permissions(a.join("config.json"), fs::Permissions::from_mode(0o600)).unwrap();

    // `b` sees none of it.
    assert_eq!(fs::read(b.join("README.md")).unwrap(), b"# model\n");
    assert_eq!(
        fs::read(b.join("model-00001-of-00002.safetensors")).unwrap(),
        vec![1u8; 200_000]
    );
    assert!(b.join("tokenizer/tokenizer.json").is_file());
    assert!(!b.join("new-0.bin").exists());
    // Neither does the store, its cache or a fresh read-only mount.
    assert_blobs_intact(&env.store);
    for (path, digest) in &cache_before {
        assert_eq!(
            &sha256_file(path),
            digest,
            "cache file {} changed",
            path.display()
        );
    }
    let c = env.path("c");
    let _gc = Guard::new(&env.store, &c);
    ro(&env, "localhost/m:v1", &c);
    assert_eq!(
        fs::read(c.join("model-00001-of-00002.safetensors")).unwrap(),
        vec![1u8; 200_000]
    );

    // Writes go to `a`'s own upper directory and are discarded at umount;
    // --keep-changes exports them first, deletions as whiteouts.
    let kept = env.path("kept");
    let options = UmountOptions {
        keep_changes: Some(kept.clone()),
    };
    let unmounted = umount(&env.store, &a, &options, &LinuxSyscalls).unwrap();
    assert!(unmounted.kept.unwrap() > 200);
    assert_eq!(
        fs::read(kept.join("model-00001-of-00002.safetensors")).unwrap(),
        b"replaced"
    );
    assert!(kept.join(".wh.README.md").is_file());
    assert!(kept.join(".wh.tokenizer").is_file());
    assert_eq!(fs::read(kept.join("new-7.bin")).unwrap(), vec![7u8; 10_000]);
    let record_dir = env.store.root().join("mounts").join(&unmounted.record.id);
    assert!(!record_dir.exists(), "the upper directory is gone");
    assert_blobs_intact(&env.store);
}

/// truncate(2) by path (std only truncates open files).
fn truncate(path: &Path, len: i64) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: a valid NUL-terminated path; truncate does not keep the pointer.
    if unsafe { libc::truncate(c_path.as_ptr(), len) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(files_in(&path));
        } else if meta.is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn subpaths_mount_one_directory_or_one_file() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let dir_target = env.path("tok");
    let file_target = env.path("config.json");
    let _g1 = Guard::new(&env.store, &dir_target);
    let _g2 = Guard::new(&env.store, &file_target);
    for (target, subpath) in [(&dir_target, "tokenizer"), (&file_target, "config.json")] {
        let mut request = MountRequest::new("localhost/m:v1", target);
        request.subpath = Some(subpath.into());
        let mounted = mount(&env.store, &request, &LinuxSyscalls).unwrap();
        let view = env
            .store
            .root()
            .join("mounts")
            .join(&mounted.record.id)
            .join("view");
        assert!(!is_mount_point(&view), "the staging view was detached");
        assert!(is_mount_point(&fs::canonicalize(target).unwrap()));
    }
    assert_eq!(
        fs::read(dir_target.join("tokenizer.json")).unwrap(),
        b"{\"vocab\":{}}"
    );
    assert_eq!(
        fs::read_dir(&dir_target).unwrap().count(),
        1,
        "only the subpath is visible"
    );
    assert_eq!(
        fs::read(&file_target).unwrap(),
        b"{\"model_type\":\"test\"}"
    );
    assert_eq!(
        errno(fs::File::create(dir_target.join("x")).map(drop), "create"),
        EROFS
    );
    assert_eq!(
        errno(
            OpenOptions::new().write(true).open(&file_target).map(drop),
            "write"
        ),
        EROFS
    );

    umount(
        &env.store,
        &file_target,
        &UmountOptions::default(),
        &LinuxSyscalls,
    )
    .unwrap();
    assert!(
        !file_target.exists(),
        "the file ferry created as a mount point is gone"
    );
}

#[test]
fn a_missing_subpath_mounts_nothing() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    fs::create_dir(&target).unwrap();
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.subpath = Some("weights".into());
    let err = mount(&env.store, &request, &LinuxSyscalls).unwrap_err();
    assert!(matches!(err, MountError::SubpathMissing { .. }), "{err}");
    assert!(err.to_string().contains("localhost/m:v1"), "{err}");
    assert!(!is_mount_point(&fs::canonicalize(&target).unwrap()));
    assert!(env.record_dirs().is_empty());
}

#[test]
fn stacked_artifacts_merge_with_the_later_one_winning() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    env.pack(
        "base",
        "localhost/base:v1",
        &[
            ("config.json", b"base"),
            ("model.safetensors", &[1u8; 1000]),
            ("extra/a.txt", b"a"),
        ],
        Encoding::Raw,
    );
    put_artifact(
        &env.store,
        "localhost/adapter:v1",
        &[(
            tar_of(&[
                ("config.json", b"adapter"),
                ("extra/", b""),
                ("extra/b.txt", b"b"),
            ]),
            "application/vnd.oci.image.layer.v1.tar",
            vec![],
        )],
    );
    let target = env.path("mnt");
    let _guard = Guard::new(&env.store, &target);
    let mut request = MountRequest::new("localhost/base:v1", &target);
    request.artifacts.push("localhost/adapter:v1".into());
    mount(&env.store, &request, &LinuxSyscalls).unwrap();
    assert_eq!(
        fs::read(target.join("config.json")).unwrap(),
        b"adapter",
        "the later artifact wins"
    );
    assert_eq!(
        fs::read(target.join("extra/a.txt")).unwrap(),
        b"a",
        "directories merge"
    );
    assert_eq!(fs::read(target.join("extra/b.txt")).unwrap(), b"b");
    assert_eq!(
        fs::read(target.join("model.safetensors")).unwrap().len(),
        1000
    );
}

/// A tar entry written header by header (the tar crate refuses these names).
fn raw_tar(name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn hostile_tar_layers_are_refused_with_nothing_mounted() {
    if !require_root("for real mounts") {
        return;
    }
    use tar::EntryType::*;
    let env = Env::new();
    let harmless = raw_tar(b"ok.txt", Regular, b"", b"fine");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", raw_tar(b"../escape.txt", Regular, b"", b"x")),
        (
            "absolute",
            raw_tar(b"/etc/ferry-escape", Regular, b"", b"x"),
        ),
        (
            "symlink escape",
            raw_tar(b"link", Symlink, b"../../../../etc", b""),
        ),
        ("absolute symlink", raw_tar(b"link", Symlink, b"/etc", b"")),
        (
            "hardlink escape",
            raw_tar(b"hard", Link, b"../../etc/passwd", b""),
        ),
        (
            "write through symlink",
            [
                raw_tar(b"dir", Symlink, b".", b""),
                raw_tar(b"dir/x", Regular, b"", b"x"),
            ]
            .concat(),
        ),
        ("char device", raw_tar(b"null", Char, b"", b"")),
        ("block device", raw_tar(b"disk", Block, b"", b"")),
        ("fifo", raw_tar(b"pipe", Fifo, b"", b"")),
    ];
    for (i, (case, entries)) in cases.into_iter().enumerate() {
        let mut bytes = harmless.clone();
        bytes.extend_from_slice(&entries);
        bytes.extend_from_slice(&[0u8; 1024]);
        let name = format!("localhost/hostile{i}:v1");
        let digest = ferry_spec::digest::sha256_digest(&bytes);
        put_artifact(
            &env.store,
            &name,
            &[(bytes, "application/vnd.oci.image.layer.v1.tar", vec![])],
        );
        let target = env.path(&format!("mnt{i}"));
        let _guard = Guard::new(&env.store, &target);
        let err = mount(
            &env.store,
            &MountRequest::new(&name, &target),
            &LinuxSyscalls,
        )
        .unwrap_err();
        assert!(matches!(err, MountError::Store(_)), "{case}: {err}");
        assert!(!target.exists(), "{case}: the target was not created");
        assert!(!is_mount_point(&target), "{case}");
        assert!(env.record_dirs().is_empty(), "{case}");
        let cache = env.store.root().join("layers/sha256").join(digest.digest());
        assert!(!cache.exists(), "{case}: nothing cached");
        let tmp = env.store.root().join("layers/tmp");
        assert!(
            ferry_mount::tree::is_empty_dir(&tmp).unwrap(),
            "{case}: build debris left"
        );
    }
    assert!(!Path::new("/etc/ferry-escape").exists());
}

#[test]
fn a_second_mount_reuses_the_cache_without_unpacking() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let target = env.path("mnt");
    let first = ro(&env, "localhost/m:v1", &target);
    assert_eq!((first.cache.built, first.cache.reused), (5, 0));
    let dirs = env.layer_dirs("localhost/m:v1");
    let stamp = |d: &Path| {
        let m = fs::metadata(d).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec(), m.ctime_nsec())
    };
    let before: Vec<_> = dirs.iter().map(|d| stamp(d)).collect();
    let file = dirs
        .iter()
        .find_map(|d| fs::read_dir(d).unwrap().next())
        .unwrap()
        .unwrap()
        .path();
    let file_before = stamp(&file);
    umount(
        &env.store,
        &target,
        &UmountOptions::default(),
        &LinuxSyscalls,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));

    let other = env.path("other");
    let _guard = Guard::new(&env.store, &other);
    let second = ro(&env, "localhost/m:v1", &other);
    assert_eq!((second.cache.built, second.cache.reused), (0, 5));
    let after: Vec<_> = dirs.iter().map(|d| stamp(d)).collect();
    assert_eq!(before, after, "cache directories untouched");
    assert_eq!(file_before, stamp(&file), "cached files untouched");
}

#[test]
fn concurrent_mounts_of_one_artifact_share_one_cache() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let targets: Vec<PathBuf> = (0..6).map(|i| env.path(&format!("mnt{i}"))).collect();
    let guards: Vec<Guard> = targets.iter().map(|t| Guard::new(&env.store, t)).collect();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| scope.spawn(|| ro(&env, "localhost/m:v1", t)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("mount thread"))
            .collect()
    });
    let built: usize = results.iter().map(|m| m.cache.built).sum();
    assert!((5..=30).contains(&built), "{built}");
    let expected = read_only_view_of(tree(&env.extract("localhost/m:v1", "x")));
    for target in &targets {
        assert_eq!(
            read_only_view_of(tree(target)),
            expected,
            "{}",
            target.display()
        );
    }
    let cached = fs::read_dir(env.store.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(cached, 5, "one cache entry per layer");
    assert!(ferry_mount::tree::is_empty_dir(&env.store.root().join("layers/tmp")).unwrap());
    let listing = ferry_mount::list(&env.store, &LinuxSyscalls).unwrap();
    assert_eq!(listing.active.len(), 6);
    drop(guards);
    assert!(env.record_dirs().is_empty());
}

#[test]
fn a_busy_volume_is_reported_and_stays_mounted() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    let _guard = Guard::new(&env.store, &target);
    ro(&env, "localhost/m:v1", &target);
    let mut child = Command::new("sleep")
        .arg("60")
        .current_dir(target.join("tokenizer"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let err = umount(
        &env.store,
        &target,
        &UmountOptions::default(),
        &LinuxSyscalls,
    )
    .unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    assert!(matches!(err, MountError::Busy { .. }), "{err}");
    assert!(is_mount_point(&fs::canonicalize(&target).unwrap()));
    assert_eq!(env.record_dirs().len(), 1, "the record stays");
    umount(
        &env.store,
        &target,
        &UmountOptions::default(),
        &LinuxSyscalls,
    )
    .unwrap();
    assert!(!target.exists());
}

#[test]
fn stale_records_are_cleaned() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    // Unmounted behind ferry's back.
    let gone = env.path("gone");
    let mut request = MountRequest::new("localhost/m:v1", &gone);
    request.access = Access::ReadWrite;
    mount(&env.store, &request, &LinuxSyscalls).unwrap();
    rustix::mount::unmount(&gone, rustix::mount::UnmountFlags::empty()).unwrap();
    // Mounted in an earlier boot (the record says so).
    let rebooted = env.path("rebooted");
    let mounted = ro(&env, "localhost/m:v1", &rebooted);
    let record_path = env
        .store
        .root()
        .join("mounts")
        .join(&mounted.record.id)
        .join("record.json");
    let text = fs::read_to_string(&record_path).unwrap();
    fs::write(
        &record_path,
        text.replace(
            &mounted.record.boot_id,
            "00000000-0000-0000-0000-000000000000",
        ),
    )
    .unwrap();
    rustix::mount::unmount(&rebooted, rustix::mount::UnmountFlags::empty()).unwrap();
    // A live one for contrast.
    let live = env.path("live");
    let _guard = Guard::new(&env.store, &live);
    ro(&env, "localhost/m:v1", &live);

    let listing = ferry_mount::list(&env.store, &LinuxSyscalls).unwrap();
    let mut reasons: Vec<String> = listing.cleaned.iter().map(|(_, r)| r.clone()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "its target is no longer mounted",
            "the machine rebooted since it was mounted"
        ]
    );
    assert_eq!(listing.active.len(), 1);
    assert_eq!(listing.active[0].target, fs::canonicalize(&live).unwrap());
    assert_eq!(env.record_dirs().len(), 1);
    assert!(
        !gone.exists() && !rebooted.exists(),
        "mount points ferry created are removed"
    );
    // A second listing finds nothing more to clean.
    assert!(
        ferry_mount::list(&env.store, &LinuxSyscalls)
            .unwrap()
            .cleaned
            .is_empty()
    );
}

#[test]
fn the_same_target_cannot_be_mounted_twice() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    let _guard = Guard::new(&env.store, &target);
    let first = ro(&env, "localhost/m:v1", &target);
    let err = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &LinuxSyscalls,
    )
    .unwrap_err();
    assert!(
        matches!(&err, MountError::AlreadyMounted { id, .. } if *id == first.record.id),
        "{err}"
    );
    let entries = ferry_mount::mountinfo::read();
    let canonical = fs::canonicalize(&target).unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.mount_point == canonical)
            .count(),
        1
    );
}

#[test]
fn noexec_is_honoured_and_executables_keep_their_mode() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    let dir = env.path("code");
    write_files(
        &dir,
        &[
            ("run.sh", b"#!/bin/sh\nexit 0\n"),
            ("model.safetensors", &[0u8; 64]),
        ],
    );
    make_executable(&dir.join("run.sh"));
    env.pack_dir(&dir, "localhost/code:v1", Encoding::Raw);
    let (plain, strict) = (env.path("plain"), env.path("strict"));
    let _g1 = Guard::new(&env.store, &plain);
    let _g2 = Guard::new(&env.store, &strict);
    ro(&env, "localhost/code:v1", &plain);
    let mut request = MountRequest::new("localhost/code:v1", &strict);
    request.noexec = true;
    mount(&env.store, &request, &LinuxSyscalls).unwrap();
    assert_eq!(
        fs::metadata(plain.join("run.sh")).unwrap().mode() & 0o777,
        0o555
    );
    assert!(
        Command::new(plain.join("run.sh"))
            .status()
            .unwrap()
            .success()
    );
    let denied = Command::new(strict.join("run.sh")).status();
    assert_eq!(errno(denied, "exec on noexec"), EACCES);
    // The executable got its own copy: the blob stays 0444 and unchanged.
    assert_blobs_intact(&env.store);
}

#[test]
fn no_mount_volumes_pass_the_same_content_tests() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let expected = read_only_view_of(tree(&env.extract("localhost/m:v1", "x")));
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let target = env.path(&format!("tree-{}", access.as_str()));
        let _guard = Guard::new(&env.store, &target);
        let mut request = MountRequest::new("localhost/m:v1", &target);
        request.access = access;
        request.no_mount = true;
        let mounted = mount(&env.store, &request, &LinuxSyscalls).unwrap();
        assert!(!is_mount_point(&target));
        assert_eq!(
            read_only_view_of(tree(&target)),
            expected,
            "{}",
            access.as_str()
        );
        if access == Access::ReadWrite {
            assert_eq!(mounted.record.method, Method::Copy);
            fs::write(target.join("config.json"), b"changed").unwrap();
            let cache = env.layer_dirs("localhost/m:v1");
            let cached = cache
                .iter()
                .map(|d| d.join("config.json"))
                .find(|p| p.exists())
                .unwrap();
            assert_eq!(fs::read(cached).unwrap(), b"{\"model_type\":\"test\"}");
        } else {
            assert_eq!(mounted.record.method, Method::Hardlink);
        }
    }
    assert_blobs_intact(&env.store);
}
