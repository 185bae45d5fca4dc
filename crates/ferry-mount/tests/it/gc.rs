//! What volumes keep alive: `rm` and `prune` honour mount pins, `--force`
//! (no pins) overrides them, and the layer cache is collected once nothing
//! needs it.

use std::fs;
use std::path::PathBuf;

use ferry_mount::fake::RecordingSyscalls;
use ferry_mount::{LinuxSyscalls, MountPins, MountRequest, UmountOptions, mount, umount};
use ferry_spec::media::Encoding;
use ferry_store::StoreError;
use ferry_store::maintenance::{NoPins, prune_with, remove_with};

use crate::common::*;

fn pack_v1(env: &Env) {
    env.pack(
        "v1",
        "localhost/m:v1",
        &[
            ("config.json", b"{\"v\":1}"),
            ("model.safetensors", &[1u8; 50_000]),
        ],
        Encoding::Tar,
    );
}

fn cache_entries(env: &Env) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in ["sha256", "file", "merged"] {
        if let Ok(entries) = fs::read_dir(env.store.root().join("layers").join(kind)) {
            out.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn rm_refuses_what_a_volume_uses_unless_forced() {
    let env = Env::new();
    pack_v1(&env);
    let sys = RecordingSyscalls::new();
    // A no-mount volume is live while its tree exists: no root needed.
    let target = env.path("vol");
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.no_mount = true;
    mount(&env.store, &request, &sys).unwrap();

    let err = remove_with(&env.store, "localhost/m:v1", &MountPins).unwrap_err();
    assert!(
        matches!(&err, StoreError::InUse { holders, .. } if holders.contains("vol")),
        "{err}"
    );
    let digest = env
        .store
        .resolve("localhost/m:v1")
        .unwrap()
        .descriptor
        .digest()
        .clone();
    let err = remove_with(&env.store, digest.as_ref(), &MountPins).unwrap_err();
    assert!(
        matches!(err, StoreError::InUse { .. }),
        "by digest too: {err}"
    );
    assert!(
        env.store.resolve("localhost/m:v1").is_ok(),
        "nothing was removed"
    );

    let removed = remove_with(&env.store, "localhost/m:v1", &NoPins).unwrap();
    assert!(removed.blobs > 0, "forced: the blobs went");
    assert!(!env.store.has_blob(&digest));
    // The volume keeps working: it reads the cache, not the blobs.
    assert_eq!(fs::read(target.join("config.json")).unwrap(), b"{\"v\":1}");
    // Its cache entries survive a collection while it lives...
    let before = cache_entries(&env);
    assert_eq!(before.len(), 2);
    assert!(
        ferry_mount::layers::collect(&env.store, false)
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(cache_entries(&env), before);
    // ...and go once it is unmounted.
    umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap();
    let collected = ferry_mount::layers::collect(&env.store, false).unwrap();
    assert_eq!(collected.entries.len(), 2);
    assert!(
        collected.bytes >= 50_000,
        "unpacked bytes are freed: {}",
        collected.bytes
    );
    assert!(cache_entries(&env).is_empty());
}

#[test]
fn prune_keeps_the_blobs_of_mounted_manifests_no_name_reaches() {
    let env = Env::new();
    pack_v1(&env);
    let old = env
        .store
        .resolve("localhost/m:v1")
        .unwrap()
        .descriptor
        .digest()
        .clone();
    let sys = RecordingSyscalls::new();
    let target = env.path("vol");
    let mut request = MountRequest::new("localhost/m:v1", &target);
    request.no_mount = true;
    mount(&env.store, &request, &sys).unwrap();
    // The tag moves on: the mounted manifest is no longer in the index.
    env.pack(
        "v2",
        "localhost/m:v1",
        &[("config.json", b"{\"v\":2}")],
        Encoding::Tar,
    );
    assert_ne!(
        env.store
            .resolve("localhost/m:v1")
            .unwrap()
            .descriptor
            .digest(),
        &old
    );

    let dry = prune_with(&env.store, true, &MountPins).unwrap();
    assert!(
        dry.blobs.is_empty(),
        "pinned blobs are kept: {:?}",
        dry.blobs
    );
    assert!(
        ferry_mount::layers::collect(&env.store, true)
            .unwrap()
            .entries
            .is_empty()
    );
    let forced = prune_with(&env.store, true, &NoPins).unwrap();
    assert!(
        forced.blobs.contains(&old.to_string()),
        "--force would remove them"
    );

    umount(&env.store, &target, &UmountOptions::default(), &sys).unwrap();
    let pruned = prune_with(&env.store, false, &MountPins).unwrap();
    assert!(pruned.blobs.contains(&old.to_string()));
    let collected = ferry_mount::layers::collect(&env.store, false).unwrap();
    assert_eq!(
        collected.entries.len(),
        2,
        "v1's two layers: {:?}",
        collected.entries
    );
    // v2's layer is still needed by the index and stays.
    assert_eq!(
        cache_entries(&env).len(),
        0,
        "v2 was never mounted, so it has no cache entry"
    );
    assert!(
        ferry_store::maintenance::fsck(&env.store, false)
            .unwrap()
            .is_clean()
    );
}

#[test]
fn forced_removal_under_a_real_mount_leaves_the_volume_readable() {
    if !require_root("for real mounts") {
        return;
    }
    let env = Env::new();
    env.pack(
        "raw",
        "localhost/raw:v1",
        &[
            ("config.json", b"{}"),
            ("model.safetensors", &[5u8; 300_000]),
        ],
        Encoding::Raw,
    );
    let target = env.path("mnt");
    let _guard = Guard::new(&env.store, &target);
    mount(
        &env.store,
        &MountRequest::new("localhost/raw:v1", &target),
        &LinuxSyscalls,
    )
    .unwrap();
    assert!(matches!(
        remove_with(&env.store, "localhost/raw:v1", &MountPins),
        Err(StoreError::InUse { .. })
    ));
    remove_with(&env.store, "localhost/raw:v1", &NoPins).unwrap();
    prune_with(&env.store, false, &NoPins).unwrap();
    ferry_mount::layers::collect(&env.store, false).unwrap();
    // The weights were hardlinked: the blob's name is gone, its inode lives.
    assert_eq!(
        fs::read(target.join("model.safetensors")).unwrap(),
        vec![5u8; 300_000]
    );
    assert_eq!(
        cache_entries(&env).len(),
        2,
        "a live overlay's lowers are never collected"
    );
    drop(_guard);
    ferry_mount::layers::collect(&env.store, false).unwrap();
    assert!(cache_entries(&env).is_empty());
}
