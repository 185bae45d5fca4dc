//! Planning against the recording fake: which calls, in which order, with
//! which lower directories and options. No root needed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use ferry_mount::fake::{Call, Kind, RecordingSyscalls};
use ferry_mount::record::Method;
use ferry_mount::{Access, MountError, MountRequest, UmountOptions, mount, umount};
use ferry_spec::media::Encoding;

use crate::common::*;

const EPERM: i32 = 1;
const EINVAL: i32 = 22;
const EBUSY: i32 = 16;

fn model(env: &Env, reference: &str) {
    env.pack(
        "model",
        reference,
        &[
            ("config.json", b"{\"n\":1}"),
            ("model.safetensors", &[1u8; 4096]),
            ("docs/README.md", b"# readme"),
        ],
        Encoding::Raw,
    );
}

fn overlay_call(
    calls: &[Call],
) -> (
    ferry_mount::sys::Overlay,
    String,
    PathBuf,
    ferry_mount::Flags,
) {
    match calls.first() {
        Some(Call::MountOverlay {
            overlay,
            options,
            target,
            flags,
        }) => (overlay.clone(), options.clone(), target.clone(), *flags),
        other => panic!("expected an overlay mount first, got {other:?}"),
    }
}

#[test]
fn lowers_are_the_cached_layers_in_manifest_order() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("mnt");
    let mounted = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap();

    let calls = sys.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (overlay, options, at, flags) = overlay_call(&calls);
    let layers = env.layer_dirs("localhost/m:v1");
    assert_eq!(layers.len(), 3);
    assert_eq!(
        overlay.lowers, layers,
        "lower directories are the layers, bottom first"
    );
    assert!(overlay.upper.is_none());
    let top_first: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(options, format!("lowerdir={}", top_first.join(":")));
    assert_eq!(at, fs::canonicalize(&target).unwrap());
    assert!(flags.read_only && !flags.noexec);
    assert_eq!(mounted.record.method, Method::Overlay);
    assert_eq!(mounted.record.layers.len(), 3);
    assert_eq!(mounted.cache.built, 3);
    // Every cache entry is read-only, files and directories.
    for dir in &layers {
        assert_eq!(
            fs::metadata(dir).unwrap().mode() & 0o222,
            0,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn a_single_layer_read_only_overlay_gets_the_empty_lower() {
    let env = Env::new();
    env.pack(
        "one",
        "localhost/one:v1",
        &[("model.safetensors", &[3u8; 100])],
        Encoding::Raw,
    );
    let sys = RecordingSyscalls::new();
    mount(
        &env.store,
        &MountRequest::new("localhost/one:v1", env.path("mnt")),
        &sys,
    )
    .unwrap();
    let (overlay, ..) = overlay_call(&sys.calls());
    assert_eq!(overlay.lowers.len(), 2);
    assert_eq!(overlay.lowers[0], env.store.root().join("layers/empty"));
    assert!(ferry_mount::tree::is_empty_dir(&overlay.lowers[0]).unwrap());
}

#[test]
fn read_write_mounts_get_private_upper_directories() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let mut uppers = Vec::new();
    for name in ["a", "b"] {
        let mut request = MountRequest::new("localhost/m:v1", env.path(name));
        request.access = Access::ReadWrite;
        request.noexec = true;
        let mounted = mount(&env.store, &request, &sys).unwrap();
        let (overlay, options, _, flags) = overlay_call(&sys.calls());
        sys.clear();
        let upper = overlay.upper.expect("an upper directory");
        let record_dir = env.store.root().join("mounts").join(&mounted.record.id);
        assert_eq!(upper.upper, record_dir.join("upper"));
        assert_eq!(upper.work, record_dir.join("work"));
        assert!(upper.upper.is_dir() && upper.work.is_dir());
        assert!(options.ends_with(&format!(
            ",upperdir={},workdir={},redirect_dir=off",
            upper.upper.display(),
            upper.work.display()
        )));
        assert!(!flags.read_only && flags.noexec);
        uppers.push(upper.upper);
    }
    assert_ne!(uppers[0], uppers[1], "each mount writes to its own upper");
}

#[test]
fn subpaths_are_bound_from_a_staging_view_that_is_then_detached() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("docs-mnt");
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.subpath = Some("docs".into());
    let mounted = mount(&env.store, &request, &sys).unwrap();
    let view = env
        .store
        .root()
        .join("mounts")
        .join(&mounted.record.id)
        .join("view");
    let target = fs::canonicalize(&target).unwrap();
    let calls = sys.calls();
    let (_, _, at, flags) = overlay_call(&calls);
    assert_eq!(at, view);
    assert_eq!(
        calls[1..],
        [
            Call::Bind {
                root: view.clone(),
                subpath: vec!["docs".into()],
                target: target.clone()
            },
            Call::RemountBind {
                target: target.clone(),
                flags
            },
            Call::Umount {
                target: view,
                detach: true
            },
        ]
    );
    assert!(target.is_dir());
}

#[test]
fn a_file_subpath_makes_the_target_a_file() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("config-mnt");
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.subpath = Some("config.json".into());
    mount(&env.store, &request, &sys).unwrap();
    assert!(target.is_file(), "the mount point of a file is a file");
    assert!(matches!(&sys.calls()[1], Call::Bind { subpath, .. } if subpath == &["config.json"]));

    // A directory cannot take a file.
    let dir_target = env.path("a-dir");
    fs::create_dir(&dir_target).unwrap();
    let mut request = MountRequest::new("localhost/m:v1", &dir_target);
    request.subpath = Some("config.json".into());
    let err = mount(&env.store, &request, &sys).unwrap_err();
    assert!(matches!(err, MountError::InvalidTarget { .. }), "{err}");
}

#[test]
fn a_subpath_that_does_not_exist_is_an_error_and_nothing_is_mounted() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("mnt");
    for subpath in ["nope", "docs/nope", "config.json/x"] {
        let mut request = MountRequest::new("localhost/m:v1", &target);
        request.subpath = Some(subpath.into());
        let err = mount(&env.store, &request, &sys).unwrap_err();
        assert!(
            matches!(
                err,
                MountError::SubpathMissing { .. } | MountError::InvalidSubpath { .. }
            ),
            "{subpath}: {err}"
        );
        assert!(err.to_string().contains(subpath), "{err}");
    }
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.subpath = Some("../etc".into());
    assert!(matches!(
        mount(&env.store, &request, &sys),
        Err(MountError::InvalidSubpath { .. })
    ));
    assert!(sys.calls().is_empty(), "nothing mounted: {:?}", sys.calls());
    assert!(!target.exists(), "the target was not created");
    assert!(env.record_dirs().is_empty());
}

#[test]
fn stacked_artifacts_put_later_layers_on_top_once() {
    let env = Env::new();
    model(&env, "localhost/base:v1");
    // The top artifact shares one layer with the base (same file, same path).
    env.pack(
        "top",
        "localhost/top:v1",
        &[
            ("config.json", b"{\"n\":1}"),
            ("adapter.safetensors", &[9u8; 64]),
        ],
        Encoding::Raw,
    );
    let base = env.layer_dirs("localhost/base:v1");
    let top = env.layer_dirs("localhost/top:v1");
    let shared = top
        .iter()
        .find(|d| base.contains(d))
        .expect("a shared layer")
        .clone();
    let sys = RecordingSyscalls::new();
    let mut request = MountRequest::new("localhost/base:v1", env.path("mnt"));
    request.artifacts.push("localhost/top:v1".into());
    let mounted = mount(&env.store, &request, &sys).unwrap();
    let (overlay, ..) = overlay_call(&sys.calls());
    let mut expected: Vec<PathBuf> = base.iter().filter(|d| **d != shared).cloned().collect();
    expected.extend(top.iter().cloned());
    assert_eq!(
        overlay.lowers, expected,
        "base first, top last, the shared layer at its topmost place"
    );
    assert_eq!(mounted.record.artifacts.len(), 2);
    assert_eq!(mounted.record.artifacts[1].reference, "localhost/top:v1");
}

#[test]
fn eperm_falls_back_to_a_tree_of_hardlinks() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    sys.fail_next(Kind::MountOverlay, EPERM);
    let target = env.path("mnt");
    let mounted = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap();
    assert!(
        mounted
            .fallback
            .as_deref()
            .is_some_and(|f| f.contains("hardlinks")),
        "{:?}",
        mounted.fallback
    );
    assert_eq!(mounted.record.method, Method::Hardlink);
    assert_eq!(mounted.tree.linked, 3);
    assert_eq!(mounted.tree.copied, 0);
    let extracted = env.extract("localhost/m:v1", "extracted");
    assert_eq!(
        read_only_view_of(tree(&target)),
        read_only_view_of(tree(&extracted))
    );
    // The files are the cache's inodes, and nothing in the tree is writable.
    let blob_inode = fs::metadata(target.join("model.safetensors"))
        .unwrap()
        .ino();
    let cached = env.layer_dirs("localhost/m:v1");
    assert!(cached.iter().any(|d| fs::metadata(d.join("model.safetensors")).is_ok_and(|m| m.ino() == blob_inode)));
    for (path, node) in tree(&target) {
        match node {
            Node::File { mode, .. } | Node::Dir { mode } => assert_eq!(mode & 0o222, 0, "{path}"),
            Node::Link { .. } => {}
        }
    }
    assert_eq!(
        fs::metadata(&target).unwrap().mode() & 0o222,
        0,
        "the root is read-only too"
    );
    // No upper, work or view directory is left in the record.
    let record_dir = env.store.root().join("mounts").join(&mounted.record.id);
    assert!(!record_dir.join("upper").exists() && !record_dir.join("view").exists());

    umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap();
    assert!(
        !target.exists(),
        "the tree and the target ferry created are gone"
    );
    assert!(env.record_dirs().is_empty());
}

#[test]
fn a_kernel_without_overlayfs_gets_copies_for_read_write_volumes() {
    const ENODEV: i32 = 19;
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    sys.fail_next(Kind::MountOverlay, ENODEV);
    let target = env.path("mnt");
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.access = Access::ReadWrite;
    let mounted = mount(&env.store, &request, &sys).unwrap();
    assert_eq!(mounted.record.method, Method::Copy);
    assert!(
        mounted
            .fallback
            .as_deref()
            .is_some_and(|f| f.contains("private copies"))
    );
    fs::write(target.join("config.json"), b"mine").unwrap();
    assert_blobs_intact(&env.store);
    // A non-empty target is not replaced by the fallback.
    let busy = env.path("busy");
    write_files(&busy, &[("keep.txt", b"keep")]);
    sys.fail_next(Kind::MountOverlay, ENODEV);
    let err = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &busy),
        &sys,
    )
    .unwrap_err();
    assert!(matches!(err, MountError::InvalidTarget { .. }), "{err}");
    assert_eq!(fs::read(busy.join("keep.txt")).unwrap(), b"keep");
}

#[test]
fn no_mount_read_write_volumes_are_private_copies() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("mnt");
    fs::create_dir(&target).unwrap();
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.access = Access::ReadWrite;
    request.no_mount = true;
    let mounted = mount(&env.store, &request, &sys).unwrap();
    assert!(sys.calls().is_empty(), "no mount calls: {:?}", sys.calls());
    assert_eq!(mounted.record.method, Method::Copy);
    assert_eq!(mounted.tree.copied, 3);
    fs::write(target.join("model.safetensors"), b"overwritten").unwrap();
    fs::write(target.join("new.txt"), b"new").unwrap();
    assert_blobs_intact(&env.store);

    let keep = env.path("kept");
    let options = UmountOptions {
        keep_changes: Some(keep.clone()),
    };
    let unmounted = umount(&env.store, &target, &options, &sys).unwrap();
    assert_eq!(unmounted.kept, Some(4));
    assert_eq!(fs::read(keep.join("new.txt")).unwrap(), b"new");
    assert!(target.is_dir(), "the caller's empty mount point is left");
    assert!(ferry_mount::tree::is_empty_dir(&target).unwrap());
}

#[test]
fn a_failed_overlay_mount_undoes_everything() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    sys.fail_next(Kind::MountOverlay, EINVAL);
    let target = env.path("mnt");
    let err = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap_err();
    assert!(matches!(err, MountError::Syscall { .. }), "{err}");
    assert!(err.to_string().contains("Invalid argument"), "{err}");
    assert!(!target.exists());
    assert!(env.record_dirs().is_empty());
}

#[test]
fn a_failed_bind_unmounts_the_staging_view() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    sys.fail_next(Kind::Bind, EINVAL);
    let mut request = MountRequest::new("localhost/m:v1", env.path("mnt"));
    request.subpath = Some("docs".into());
    assert!(mount(&env.store, &request, &sys).is_err());
    let calls = sys.calls();
    let (_, _, view, _) = overlay_call(&calls);
    assert_eq!(
        calls.last(),
        Some(&Call::Umount {
            target: view,
            detach: true
        })
    );
    assert!(env.record_dirs().is_empty());
}

#[test]
fn stacks_too_deep_for_one_overlay_are_flattened() {
    let env = Env::new();
    let files: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("shard-{i:03}.safetensors"), vec![i as u8; 32]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    env.pack("big", "localhost/big:v1", &refs, Encoding::Raw);
    let sys = RecordingSyscalls::new();
    let mounted = mount(
        &env.store,
        &MountRequest::new("localhost/big:v1", env.path("mnt")),
        &sys,
    )
    .unwrap();
    let (overlay, options, ..) = overlay_call(&sys.calls());
    assert!(options.len() < ferry_mount::plan::MAX_OPTIONS);
    assert_eq!(
        overlay.lowers.len(),
        2,
        "the empty lower and one merged tree"
    );
    let merged = &overlay.lowers[1];
    assert!(merged.starts_with(env.store.root().join("layers/merged")));
    assert_eq!(mounted.record.layers.len(), 1);
    assert!(mounted.record.layers[0].starts_with("merged/"));
    // The merged tree links the cache's files: nothing was copied.
    let layers = env.layer_dirs("localhost/big:v1");
    for (dir, (name, _)) in layers.iter().zip(&files) {
        let cached = fs::metadata(dir.join(name)).unwrap();
        let linked = fs::metadata(merged.join(name)).unwrap();
        assert_eq!(cached.ino(), linked.ino(), "{name}");
    }
}

#[test]
fn umount_reports_busy_mounts_and_keeps_the_record() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("mnt");
    mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap();
    sys.fail_next(Kind::Umount, EBUSY);
    let err = umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap_err();
    assert!(matches!(err, MountError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("busy"), "{err}");
    assert_eq!(env.record_dirs().len(), 1);
    umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap();
    assert!(env.record_dirs().is_empty());
    assert!(
        !target.exists(),
        "ferry created the mount point and removed it"
    );
    let err = umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap_err();
    assert!(matches!(err, MountError::NotMounted(_)), "{err}");
}

#[test]
fn keeping_changes_of_a_read_only_volume_is_refused_before_unmounting() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let target = env.path("mnt");
    mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap();
    sys.clear();
    let options = UmountOptions {
        keep_changes: Some(env.path("kept")),
    };
    let err = umount(&env.store, &target, &options, &sys).unwrap_err();
    assert!(matches!(err, MountError::Unsupported(_)), "{err}");
    assert!(sys.calls().is_empty(), "nothing was unmounted");
}

#[test]
fn records_of_mounts_that_are_gone_are_cleaned_when_listing() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    // The fake mounts nothing, so the overlay record is stale at once.
    let target = env.path("mnt");
    let mounted = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap();
    // A no-mount volume whose tree exists is live.
    let mut request = MountRequest::new("localhost/m:v1", env.path("tree"));
    request.no_mount = true;
    mount(&env.store, &request, &sys).unwrap();
    let listing = ferry_mount::list(&env.store, &sys).unwrap();
    assert_eq!(listing.active.len(), 1);
    assert_eq!(listing.active[0].method, Method::Hardlink);
    assert_eq!(listing.cleaned.len(), 1);
    assert_eq!(listing.cleaned[0].0.id, mounted.record.id);
    assert!(
        listing.cleaned[0].1.contains("no longer mounted"),
        "{}",
        listing.cleaned[0].1
    );
    assert_eq!(env.record_dirs().len(), 1);
    assert!(
        !target.exists(),
        "the mount point ferry created went with the record"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn compressed_layers_are_unpacked_into_the_cache() {
    let env = Env::new();
    let zstd_tar = zstd::encode_all(&tar_of(&[("z/one.txt", b"zstd")])[..], 3).unwrap();
    put_artifact(
        &env.store,
        "localhost/packed:v1",
        &[
            (
                gzip(&tar_of(&[("g/one.txt", b"gzip")])),
                "application/vnd.oci.image.layer.v1.tar+gzip",
                vec![],
            ),
            (
                zstd_tar,
                "application/vnd.oci.image.layer.v1.tar+zstd",
                vec![],
            ),
            // As `oras push` stores a directory: gzip under a custom type.
            (
                gzip(&tar_of(&[("data/", b""), ("data/a.csv", b"1,2")])),
                "application/vnd.example.dir",
                vec![
                    ("io.deis.oras.content.unpack", "true"),
                    ("org.opencontainers.image.title", "data"),
                ],
            ),
        ],
    );
    let sys = RecordingSyscalls::new();
    let mounted = mount(
        &env.store,
        &MountRequest::new("localhost/packed:v1", env.path("mnt")),
        &sys,
    )
    .unwrap();
    assert_eq!(mounted.cache.built, 3);
    let dirs = env.layer_dirs("localhost/packed:v1");
    assert_eq!(fs::read(dirs[0].join("g/one.txt")).unwrap(), b"gzip");
    assert_eq!(fs::read(dirs[1].join("z/one.txt")).unwrap(), b"zstd");
    assert_eq!(fs::read(dirs[2].join("data/a.csv")).unwrap(), b"1,2");
    let (overlay, ..) = overlay_call(&sys.calls());
    assert_eq!(overlay.lowers, dirs);
}

#[test]
fn bad_layers_are_refused_and_nothing_is_cached() {
    let env = Env::new();
    let gz = gzip(&tar_of(&[("x.txt", b"x")]));
    put_artifact(
        &env.store,
        "localhost/garbage:v1",
        &[(
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
            "application/vnd.oci.image.layer.v1.tar+gzip",
            vec![],
        )],
    );
    put_artifact(
        &env.store,
        "localhost/mislabelled:v1",
        &[(gz, "application/vnd.oci.image.layer.v1.tar", vec![])],
    );
    put_artifact(
        &env.store,
        "localhost/nopath:v1",
        &[(b"x".to_vec(), "application/octet-stream", vec![])],
    );
    let sys = RecordingSyscalls::new();
    for (name, needle) in [
        ("localhost/garbage:v1", "tar+gzip"),
        (
            "localhost/mislabelled:v1",
            "gzip-compressed but its media type says uncompressed tar",
        ),
        ("localhost/nopath:v1", "no file path"),
    ] {
        let err = mount(&env.store, &MountRequest::new(name, env.path("mnt")), &sys).unwrap_err();
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
    assert!(sys.calls().is_empty());
    assert!(!env.path("mnt").exists());
    let cached: Vec<_> = fs::read_dir(env.store.root().join("layers/sha256"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(cached.is_empty(), "nothing cached: {cached:?}");
    assert!(ferry_mount::tree::is_empty_dir(&env.store.root().join("layers/tmp")).unwrap());
    assert!(env.record_dirs().is_empty());
}

#[test]
fn entries_built_in_an_earlier_boot_and_never_synced_are_rebuilt() {
    let env = Env::new();
    model(&env, "localhost/m:v1");
    let sys = RecordingSyscalls::new();
    let first = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", env.path("a")),
        &sys,
    )
    .unwrap();
    assert_eq!(first.cache.built, 3);
    // The first build left a marker of this boot naming its entries.
    let pending = ferry_mount::pending::pending_keys(&env.store).unwrap();
    assert_eq!(pending.len(), 3);
    assert!(
        pending
            .values()
            .all(|boot| *boot == ferry_mount::record::boot_id())
    );

    // Pretend the machine crashed before the data reached the disk.
    let dir = env.store.root().join("layers/pending");
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let (_, keys) = text.split_once('\n').unwrap();
        fs::write(&path, format!("an-earlier-boot\n{keys}")).unwrap();
    }
    let second = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", env.path("b")),
        &sys,
    )
    .unwrap();
    assert_eq!(
        (second.cache.built, second.cache.reused),
        (3, 0),
        "torn entries are rebuilt"
    );
    let pending = ferry_mount::pending::pending_keys(&env.store).unwrap();
    assert!(
        pending
            .values()
            .all(|boot| *boot == ferry_mount::record::boot_id()),
        "{pending:?}"
    );

    // A marker of this boot is settled (synced, removed) once it is old.
    let old = rustix::fs::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    for entry in fs::read_dir(&dir).unwrap() {
        let stamps = rustix::fs::Timestamps {
            last_access: old,
            last_modification: old,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            entry.unwrap().path(),
            &stamps,
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    let third = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", env.path("c")),
        &sys,
    )
    .unwrap();
    assert_eq!(third.cache.reused, 3);
    assert!(
        ferry_mount::pending::pending_keys(&env.store)
            .unwrap()
            .is_empty()
    );
}
