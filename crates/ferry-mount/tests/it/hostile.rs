//! What a hostile artifact, a hostile writer of a read-write volume or a
//! hostile neighbour of a target can try, each with a test: privileges
//! smuggled out through kept changes, links that climb out of a subpath,
//! paths reused after a volume went, mounts swapped in, lying configs and
//! tampered blobs, symlinks on the way to a target.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ferry_mount::fake::RecordingSyscalls;
use ferry_mount::sys::{Overlay, Syscalls};
use ferry_mount::{
    Access, Flags, LinuxSyscalls, MountError, MountRequest, UmountOptions, list, mount, umount,
};
use ferry_spec::media::Encoding;
use ferry_store::StoreError;
use serde_json::Value;

use crate::common::*;

fn model(env: &Env, reference: &str, format: Encoding) {
    env.pack(
        &format!("model-{reference}").replace(['/', ':'], "-"),
        reference,
        &[
            ("config.json", b"{\"model_type\":\"test\"}"),
            ("weights.bin", &[3u8; 4096]),
        ],
        format,
    );
}

fn rw(reference: &str, target: &Path) -> MountRequest {
    MountRequest {
        access: Access::ReadWrite,
        ..MountRequest::new(reference, target)
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o644, libc::makedev(major, minor)) };
    assert_eq!(rc, 0, "mknod {}", path.display());
}

/// What an unprivileged writer leaves in a read-write volume: a setuid and
/// setgid shell of its own, a setgid directory, a device node, a fifo, a
/// hardlink and a symlink to the host's /etc.
fn write_hostile_changes(volume: &Path) {
    let shell = volume.join("sh");
    fs::write(&shell, b"#!/bin/sh\n").unwrap();
    chown(&shell, 1000, 1000);
    fs::set_permissions(&shell, fs::Permissions::from_mode(0o6755)).unwrap();
    fs::hard_link(&shell, volume.join("sh-again")).unwrap();
    let dir = volume.join("shared");
    fs::create_dir(&dir).unwrap();
    chown(&dir, 1000, 1000);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o3775)).unwrap();
    mknod(&volume.join("null"), libc::S_IFCHR, 1, 3);
    mknod(&volume.join("pipe"), libc::S_IFIFO, 0, 0);
    std::os::unix::fs::symlink("/etc", volume.join("etc")).unwrap();
}

fn assert_kept_without_privileges(kept: &Path) {
    let shell = fs::symlink_metadata(kept.join("sh")).unwrap();
    assert_eq!(shell.mode() & 0o7777, 0o755, "setuid/setgid stripped");
    assert_eq!(
        (shell.uid(), shell.gid()),
        (1000, 1000),
        "the writer's owner"
    );
    let again = fs::symlink_metadata(kept.join("sh-again")).unwrap();
    assert_ne!(again.ino(), shell.ino(), "hardlinks become separate files");
    assert_eq!(again.mode() & 0o7777, 0o755);
    let dir = fs::symlink_metadata(kept.join("shared")).unwrap();
    assert_eq!(dir.mode() & 0o7777, 0o775, "setgid and sticky stripped");
    assert_eq!(dir.uid(), 1000);
    assert!(
        fs::symlink_metadata(kept.join("null")).is_err(),
        "no device"
    );
    assert!(fs::symlink_metadata(kept.join("pipe")).is_err(), "no fifo");
    assert_eq!(fs::read_link(kept.join("etc")).unwrap(), Path::new("/etc"));
}

#[test]
fn kept_changes_carry_no_setuid_bits_devices_or_fifos() {
    if !require_root("to mount and to write files of another user") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let target = env.path("mnt");
    let _guard = Guard::new(&env.store, &target);
    mount(&env.store, &rw("localhost/m:v1", &target), &LinuxSyscalls).unwrap();
    write_hostile_changes(&target);
    let kept = env.path("kept");
    let options = UmountOptions {
        keep_changes: Some(kept.clone()),
    };
    let done = umount(&env.store, &target, &options, &LinuxSyscalls).unwrap();
    assert_kept_without_privileges(&kept);
    assert_eq!(done.skipped, 2, "the device node and the fifo");
}

#[test]
fn kept_trees_of_no_mount_volumes_carry_no_setuid_bits() {
    if !require_root("to write files of another user") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Tar);
    let target = env.path("copy");
    let request = MountRequest {
        no_mount: true,
        ..rw("localhost/m:v1", &target)
    };
    mount(&env.store, &request, &LinuxSyscalls).unwrap();
    write_hostile_changes(&target);
    let kept = env.path("kept");
    let options = UmountOptions {
        keep_changes: Some(kept.clone()),
    };
    let done = umount(&env.store, &target, &options, &LinuxSyscalls).unwrap();
    assert_kept_without_privileges(&kept);
    assert_eq!(done.skipped, 2);
    assert!(!target.exists());
}

#[test]
fn a_whiteout_name_taken_by_a_symlink_cannot_redirect_the_export() {
    if !require_root("to make whiteout devices") {
        return;
    }
    let env = Env::new();
    let victim = env.path("victim");
    fs::write(&victim, b"precious").unwrap();
    let upper = env.path("upper");
    fs::create_dir(&upper).unwrap();
    // The overlay's mark of a deleted config.json, and a symlink the
    // writer named like the marker the export writes for it.
    mknod(&upper.join("config.json"), libc::S_IFCHR, 0, 0);
    std::os::unix::fs::symlink(&victim, upper.join(".wh.config.json")).unwrap();
    let kept = env.path("kept");
    let result = ferry_mount::tree::export_changes(&upper, &kept);
    assert!(result.is_err(), "two entries claim one name: {result:?}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!kept.exists(), "nothing half-written is left");
}

/// A tar layer holding `a/b/c/d/e/config.json -> ../../../../../etc/hostname`:
/// valid in the whole volume, outside a subpath view of `a/b/c/d/e`.
fn climbing_link_artifact(env: &Env, reference: &str) {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in ["a/", "a/b/", "a/b/c/", "a/b/c/d/", "a/b/c/d/e/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder.append_data(&mut header, dir, &[][..]).unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder
        .append_link(
            &mut header,
            "a/b/c/d/e/config.json",
            "../../../../../etc/hostname",
        )
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(2);
    builder
        .append_data(&mut header, "a/b/c/d/e/weights.bin", &b"ok"[..])
        .unwrap();
    put_artifact(
        &env.store,
        reference,
        &[(
            builder.into_inner().unwrap(),
            "application/vnd.oci.image.layer.v1.tar",
            vec![],
        )],
    );
}

#[test]
fn subpath_views_refuse_links_that_climb_out_of_them() {
    let env = Env::new();
    climbing_link_artifact(&env, "localhost/links:v1");
    let sys = RecordingSyscalls::new();
    let request = MountRequest {
        subpath: Some("a/b/c/d/e".into()),
        ..MountRequest::new("localhost/links:v1", env.path("mnt"))
    };
    match mount(&env.store, &request, &sys) {
        Err(MountError::InvalidSubpath { reason, .. }) => {
            assert!(reason.contains("a/b/c/d/e/config.json"), "{reason}");
        }
        other => panic!("expected the link to be refused, got {other:?}"),
    }
    assert!(sys.calls().is_empty(), "nothing mounted");
    assert!(!env.path("mnt").exists(), "the target is not left behind");
    // The no-mount tree is the same view, refused the same way.
    let tree = MountRequest {
        no_mount: true,
        ..request.clone()
    };
    assert!(matches!(
        mount(&env.store, &tree, &sys),
        Err(MountError::InvalidSubpath { .. })
    ));
    // In the whole volume the link stays inside: that mount is fine.
    let whole = MountRequest::new("localhost/links:v1", env.path("whole"));
    mount(&env.store, &whole, &sys).unwrap();
}

#[test]
fn umount_leaves_what_replaced_a_no_mount_volume() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("tree");
    let request = MountRequest {
        no_mount: true,
        ..MountRequest::new("localhost/m:v1", &target)
    };
    let sys = RecordingSyscalls::new();
    mount(&env.store, &request, &sys).unwrap();
    // The user removes the volume by hand and reuses the path.
    ferry_mount::tree::remove_tree(&target).unwrap();
    fs::create_dir(&target).unwrap();
    fs::write(target.join("thesis.tex"), b"years of work").unwrap();
    let result = umount(&env.store, &target, &UmountOptions::default(), &sys);
    assert!(
        matches!(result, Err(MountError::Replaced { .. })),
        "{result:?}"
    );
    assert_eq!(
        fs::read(target.join("thesis.tex")).unwrap(),
        b"years of work"
    );
    // Listing drops the stale record and still leaves the files alone.
    let listing = list(&env.store, &sys).unwrap();
    assert_eq!(listing.cleaned.len(), 1, "{listing:?}");
    assert!(env.record_dirs().is_empty());
    assert_eq!(
        fs::read(target.join("thesis.tex")).unwrap(),
        b"years of work"
    );
}

#[test]
fn umount_refuses_a_mount_that_is_not_ferrys_fake() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    let sys = RecordingSyscalls::new();
    mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    )
    .unwrap();
    sys.unmount_behind_our_back(&target);
    sys.mount_foreign(&target, "tmpfs");
    sys.clear();
    let result = umount(&env.store, &target, &UmountOptions::default(), &sys);
    assert!(
        matches!(result, Err(MountError::Replaced { .. })),
        "{result:?}"
    );
    assert!(
        sys.calls().is_empty(),
        "nothing unmounted: {:?}",
        sys.calls()
    );
    // Another ferry overlay there is not this record's mount either.
    sys.unmount_behind_our_back(&target);
    sys.mount_overlay(
        &Overlay {
            lowers: vec![env.path("x"), env.path("y")],
            upper: None,
        },
        &target,
        Flags::default(),
    )
    .unwrap();
    sys.clear();
    let result = umount(&env.store, &target, &UmountOptions::default(), &sys);
    assert!(
        matches!(result, Err(MountError::Replaced { .. })),
        "{result:?}"
    );
    assert!(sys.calls().is_empty());
}

#[test]
fn umount_refuses_a_tmpfs_mounted_where_the_volume_was() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &LinuxSyscalls,
    )
    .unwrap();
    rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty()).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &target,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        c"",
    )
    .unwrap();
    let result = umount(
        &env.store,
        &target,
        &UmountOptions::default(),
        &LinuxSyscalls,
    );
    let entries = ferry_mount::mountinfo::read();
    let still = ferry_mount::mountinfo::mount_at(&entries, &target).map(|e| e.fs_type.clone());
    rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert!(
        matches!(result, Err(MountError::Replaced { .. })),
        "{result:?}"
    );
    assert_eq!(still.as_deref(), Some("tmpfs"), "the tmpfs stays mounted");
}

/// Stores a copy of `from` as `to` whose config `edit` changed.
fn with_edited_config(env: &Env, from: &str, to: &str, edit: impl FnOnce(&mut Value)) {
    let store = &env.store;
    let resolved = store.resolve(from).unwrap();
    let manifest_bytes = store.read_document(resolved.descriptor.digest()).unwrap();
    let mut manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config: Value = serde_json::from_slice(
        &store
            .read_document(&config_digest.parse().unwrap())
            .unwrap(),
    )
    .unwrap();
    edit(&mut config);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let digest = store.put_document(&config_bytes).unwrap();
    manifest["config"]["digest"] = Value::from(digest.to_string());
    manifest["config"]["size"] = Value::from(config_bytes.len());
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = store.put_document(&bytes).unwrap();
    let descriptor = ferry_spec::oci::Descriptor::new(
        ferry_spec::oci::MediaType::ImageManifest,
        bytes.len() as u64,
        digest,
    );
    let reference = ferry_store::index::normalize_reference(to).unwrap();
    store.set_reference(&reference, &descriptor).unwrap();
}

fn wrong_first_diff_id(config: &mut Value) {
    config["modelfs"]["diffIds"][0] = Value::from(format!("sha256:{}", "0".repeat(64)));
}

fn assert_diff_id_refused(result: ferry_mount::Result<ferry_mount::Mounted>) {
    assert!(
        matches!(
            result,
            Err(MountError::Store(StoreError::DiffIdMismatch { .. }))
        ),
        "{result:?}"
    );
}

#[test]
fn a_config_with_a_wrong_diff_id_is_refused_and_nothing_is_cached() {
    for format in [Encoding::Tar, Encoding::Raw] {
        let env = Env::new();
        model(&env, "localhost/good:v1", format);
        with_edited_config(
            &env,
            "localhost/good:v1",
            "localhost/bad:v1",
            wrong_first_diff_id,
        );
        let sys = RecordingSyscalls::new();
        let request = MountRequest::new("localhost/bad:v1", env.path("mnt"));
        assert_diff_id_refused(mount(&env.store, &request, &sys));
        assert!(sys.calls().is_empty());
        let first = &env.layer_dirs("localhost/bad:v1")[0];
        assert!(
            !first.exists(),
            "{format:?}: {} was cached",
            first.display()
        );
        // Cached by an honest artifact first, the layer is still refused.
        mount(
            &env.store,
            &MountRequest::new("localhost/good:v1", env.path("good")),
            &sys,
        )
        .unwrap();
        assert!(first.exists());
        assert_diff_id_refused(mount(&env.store, &request, &sys));
        // An entry whose verified diffId is not on record (built for an
        // artifact without diffIds) is verified again before reuse.
        let records = env.store.root().join("layers/diffids");
        for entry in fs::read_dir(&records).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
        assert_diff_id_refused(mount(&env.store, &request, &sys));
        let again = MountRequest::new("localhost/good:v1", env.path("again"));
        mount(&env.store, &again, &sys).unwrap();
    }
}

#[test]
fn a_tampered_raw_blob_is_refused_when_it_would_enter_the_cache() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let resolved = env.store.resolve("localhost/m:v1").unwrap();
    let manifest = env
        .store
        .read_manifest(resolved.descriptor.digest())
        .unwrap();
    let layer = manifest.layers().iter().find(|l| l.size() == 4096).unwrap();
    let blob = env.store.blob_path(layer.digest());
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, [4u8; 4096]).unwrap(); // same size, other bytes
    let sys = RecordingSyscalls::new();
    let result = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", env.path("mnt")),
        &sys,
    );
    assert!(
        matches!(
            result,
            Err(MountError::Store(StoreError::DigestMismatch { .. }))
        ),
        "{result:?}"
    );
    assert!(sys.calls().is_empty());
    for dir in env.layer_dirs("localhost/m:v1") {
        let weights = dir.join("weights.bin");
        assert!(!weights.exists(), "{} was cached", weights.display());
    }
}

#[test]
fn a_target_behind_a_symlink_is_resolved_once() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    fs::create_dir(env.path("real")).unwrap();
    std::os::unix::fs::symlink(env.path("real"), env.path("link")).unwrap();
    let sys = RecordingSyscalls::new();
    let mounted = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", env.path("link/mnt")),
        &sys,
    )
    .unwrap();
    let real = fs::canonicalize(env.path("real")).unwrap().join("mnt");
    assert_eq!(mounted.record.target, real);
    let [ferry_mount::fake::Call::MountOverlay { target, .. }] = &sys.calls()[..] else {
        panic!("one overlay mount expected: {:?}", sys.calls());
    };
    assert_eq!(target, &real, "mounted at the path resolved once");
}

#[test]
fn a_symlink_swapped_into_a_target_path_cannot_redirect_a_mount() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    // The target ferry resolved was `<env>/parent/mnt`; someone who can
    // write `<env>` swapped `parent` for a symlink to another directory.
    let elsewhere = env.path("elsewhere");
    fs::create_dir_all(elsewhere.join("mnt")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.path("parent")).unwrap();
    let target = env.path("parent/mnt");
    let lowers = [env.path("a"), env.path("b")];
    for lower in &lowers {
        fs::create_dir(lower).unwrap();
    }
    let overlay = Overlay {
        lowers: lowers.to_vec(),
        upper: None,
    };
    let sys = LinuxSyscalls;
    let result = sys.mount_overlay(&overlay, &target, Flags::default());
    let mounted = is_mount_point(&elsewhere.join("mnt"));
    if mounted {
        let _ = rustix::mount::unmount(elsewhere.join("mnt"), rustix::mount::UnmountFlags::DETACH);
    }
    assert_eq!(errno(result, "mounting through a symlink"), libc::ELOOP);
    assert!(!mounted, "the mount landed behind the symlink");
    // Unmounting through it is refused the same way.
    assert_eq!(
        errno(sys.umount(&target, false), "unmounting through a symlink"),
        libc::ELOOP
    );
}

#[test]
fn trees_nested_beyond_the_walk_limit_are_refused_for_copying_but_removed() {
    let env = Env::new();
    let root = env.path("deep");
    let mut path = root.clone();
    for _ in 0..(ferry_mount::tree::MAX_DEPTH + 88) {
        path.push("d");
    }
    fs::create_dir_all(&path).unwrap();
    fs::write(path.join("f"), b"x").unwrap();
    let result = ferry_mount::tree::export_tree(&root, &env.path("kept"));
    match result {
        Err(MountError::Io { source, .. }) => {
            assert!(source.to_string().contains("deeper than"), "{source}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!env.path("kept").exists(), "nothing half-written is left");
    ferry_mount::tree::remove_tree(&root).unwrap();
    assert!(!root.exists());
}

/// Stores an image (OCI image config, one tar layer) whose config declares
/// `diff_id` for the layer.
fn image_with_diff_id(env: &Env, reference: &str, layer: &[u8], diff_id: &str) {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    put_manifest(
        &env.store,
        reference,
        &[(
            layer.to_vec(),
            "application/vnd.oci.image.layer.v1.tar",
            vec![],
        )],
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
}

#[test]
fn an_image_config_with_a_wrong_diff_id_is_refused_too() {
    let env = Env::new();
    let layer = tar_of(&[("hello.txt", b"hello")]);
    let honest = sha256_digest_of(&layer);
    image_with_diff_id(
        &env,
        "localhost/bad:v1",
        &layer,
        &format!("sha256:{}", "1".repeat(64)),
    );
    let sys = RecordingSyscalls::new();
    let request = MountRequest::new("localhost/bad:v1", env.path("mnt"));
    assert_diff_id_refused(mount(&env.store, &request, &sys));
    assert!(!env.layer_dirs("localhost/bad:v1")[0].exists());
    image_with_diff_id(&env, "localhost/good:v1", &layer, &honest);
    let good = MountRequest::new("localhost/good:v1", env.path("good"));
    mount(&env.store, &good, &sys).unwrap();
}

fn sha256_digest_of(bytes: &[u8]) -> String {
    ferry_spec::digest::sha256_digest(bytes).to_string()
}

/// Rewrites the only record of `env` with `edit`.
fn edit_record(env: &Env, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let [dir] = &env.record_dirs()[..] else {
        panic!("one record expected: {:?}", env.record_dirs());
    };
    let path = dir.join("record.json");
    let mut record: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(record.as_object_mut().unwrap());
    fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
}

fn forget_mount_ids(record: &mut serde_json::Map<String, Value>) {
    assert!(record.remove("mountId").is_some(), "{record:?}");
    record.remove("uniqueMountId");
}

/// What an older ferry wrote: no format, sometimes no mount ids.
fn as_older_ferry_without_ids(record: &mut serde_json::Map<String, Value>) {
    forget_mount_ids(record);
    assert!(record.remove("format").is_some(), "{record:?}");
}

#[test]
fn a_mount_whose_id_cannot_be_read_is_undone() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    let sys = RecordingSyscalls::new();
    sys.leave_new_mounts_unlisted();
    let result = mount(
        &env.store,
        &MountRequest::new("localhost/m:v1", &target),
        &sys,
    );
    assert!(
        matches!(result, Err(MountError::Replaced { .. })),
        "{result:?}"
    );
    let undone = sys.calls().iter().any(
        |call| matches!(call, ferry_mount::fake::Call::Umount { target: t, .. } if t == &target),
    );
    assert!(undone, "the mount is undone: {:?}", sys.calls());
    assert!(env.record_dirs().is_empty(), "no record is left");
    assert!(!target.exists(), "the target ferry created is removed");
}

#[test]
fn umount_refuses_a_current_record_that_names_no_mount() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("mnt");
    let sys = RecordingSyscalls::new();
    let request = MountRequest::new("localhost/m:v1", &target);
    mount(&env.store, &request, &sys).unwrap();
    edit_record(&env, forget_mount_ids);
    sys.clear();
    let result = umount(&env.store, &target, &UmountOptions::default(), &sys);
    assert!(
        matches!(result, Err(MountError::Replaced { .. })),
        "{result:?}"
    );
    assert!(
        sys.calls().is_empty(),
        "nothing unmounted: {:?}",
        sys.calls()
    );
}

#[test]
fn an_older_record_without_ids_unmounts_only_an_overlay_naming_it() {
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let env = Env::new();
        model(&env, "localhost/m:v1", Encoding::Raw);
        let target = env.path("mnt");
        let sys = RecordingSyscalls::new();
        let request = MountRequest {
            access,
            ..MountRequest::new("localhost/m:v1", &target)
        };
        mount(&env.store, &request, &sys).unwrap();
        let calls = sys.calls();
        let [ferry_mount::fake::Call::MountOverlay { overlay, flags, .. }] = &calls[..] else {
            panic!("one overlay mount expected: {calls:?}");
        };
        let (ours, flags) = (overlay.clone(), *flags);
        edit_record(&env, as_older_ferry_without_ids);
        // Another ferry overlay in its place is not this record's.
        sys.unmount_behind_our_back(&target);
        let upper = (access == Access::ReadWrite).then(|| ferry_mount::sys::Upper {
            upper: env.path("other-upper"),
            work: env.path("other-work"),
        });
        let other = Overlay {
            lowers: env.layer_dirs("localhost/m:v1")[..1].to_vec(),
            upper,
        };
        sys.mount_overlay(&other, &target, flags).unwrap();
        sys.clear();
        let result = umount(&env.store, &target, &UmountOptions::default(), &sys);
        assert!(
            matches!(result, Err(MountError::Replaced { .. })),
            "{access:?}: {result:?}"
        );
        assert!(sys.calls().is_empty(), "{access:?}: {:?}", sys.calls());
        // The overlay naming this record's layers (and upper) is its own.
        sys.unmount_behind_our_back(&target);
        sys.mount_overlay(&ours, &target, flags).unwrap();
        umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap();
        assert!(env.record_dirs().is_empty(), "{access:?}");
    }
}

#[test]
fn an_older_record_without_ids_unmounts_its_real_overlay() {
    if !require_root("for real mounts") {
        return;
    }
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let env = Env::new();
        model(&env, "localhost/m:v1", Encoding::Raw);
        let target = env.path("mnt");
        let _guard = Guard::new(&env.store, &target);
        let request = MountRequest {
            access,
            ..MountRequest::new("localhost/m:v1", &target)
        };
        mount(&env.store, &request, &LinuxSyscalls).unwrap();
        edit_record(&env, as_older_ferry_without_ids);
        umount(
            &env.store,
            &target,
            &UmountOptions::default(),
            &LinuxSyscalls,
        )
        .unwrap();
        assert!(!is_mount_point(&target), "{access:?}");
    }
}

#[test]
fn a_parent_swapped_for_a_symlink_cannot_redirect_removing_the_mount_point() {
    let env = Env::new();
    model(&env, "localhost/m:v1", Encoding::Raw);
    let target = env.path("parent/mnt");
    let sys = RecordingSyscalls::new();
    let request = MountRequest::new("localhost/m:v1", &target);
    assert!(
        mount(&env.store, &request, &sys)
            .unwrap()
            .record
            .created_target
    );
    // Someone's empty directory with the mount point's name, and the
    // parent swapped for a symlink to it.
    let theirs = env.path("theirs/mnt");
    fs::create_dir_all(&theirs).unwrap();
    fs::rename(env.path("parent"), env.path("parent.old")).unwrap();
    std::os::unix::fs::symlink(env.path("theirs"), env.path("parent")).unwrap();
    umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap();
    assert!(theirs.is_dir(), "their directory was removed");
}
