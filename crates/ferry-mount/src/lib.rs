//! ferry-mount: artifacts in the store as volumes — read-only or read-write,
//! whole or one subpath, one artifact or several stacked.
//!
//! A volume is the directory the Kubernetes image-volume KEP describes: raw
//! layers placed at their file path (`org.cncf.model.filepath`, else
//! `org.opencontainers.image.title`), tar layers unpacked, layers merged in
//! order so a later layer's file wins. ferry builds it from a cache of
//! read-only per-layer directories in the store ([`layers`]) and mounts an
//! overlay of them: read-only (`ro,nosuid,nodev`, so every write fails with
//! EROFS, the root directory included) or read-write with a private upper
//! directory discarded at unmount. A subpath is bind-mounted from a staging
//! view; stacking puts the layers of several artifacts in one overlay.
//! Without mount privileges the same view is built as a tree of hardlinks
//! (read-only) or copies (read-write).
//!
//! Every mount is recorded in `<store root>/mounts/<id>/record.json`; `rm`
//! and `prune` keep what records use ([`MountPins`]), and records that
//! outlived their mount are cleaned by [`list`]. A record names what ferry
//! made (the mount's ids, the placed tree's identity): [`umount`] undoes
//! only that, never a mount or files that took its place.
//!
//! What someone else can write (a read-write volume's changes, a copied
//! volume, the parent of a target) is walked by descriptor and never
//! through a symlink; changes kept at unmount carry no setuid, setgid or
//! sticky bit, belong to whoever wrote them, and leave devices, fifos and
//! sockets out. A subpath view refuses symlinks that point out of it.
//!
//! Mount calls go through [`Syscalls`], so planning runs against the
//! recording fake without root:
//!
//! ```
//! use ferry_mount::fake::{Call, RecordingSyscalls};
//! use ferry_mount::{MountRequest, mount};
//! use ferry_store::Store;
//! use ferry_store::pack::{PackOptions, pack};
//!
//! let dir = tempfile::tempdir()?;
//! let model = dir.path().join("model");
//! std::fs::create_dir(&model)?;
//! std::fs::write(model.join("config.json"), "{}")?;
//! std::fs::write(model.join("weights.bin"), [7u8; 64])?;
//! let store = Store::open(dir.path().join("store"))?;
//! pack(&store, &model, &"localhost/demo:v1".parse()?, &PackOptions::default())?;
//!
//! let sys = RecordingSyscalls::new(); // `LinuxSyscalls` mounts for real
//! let request = MountRequest::new("localhost/demo:v1", dir.path().join("mnt"));
//! let mounted = mount(&store, &request, &sys)?;
//! assert_eq!(mounted.cache.built, 2); // one cache entry per layer, built once
//! let [Call::MountOverlay { options, flags, .. }] = &sys.calls()[..] else {
//!     panic!("one overlay mount expected");
//! };
//! assert!(flags.read_only);
//! assert!(options.starts_with("lowerdir="));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod at;
pub mod error;
pub mod fake;
pub mod layers;
pub mod mountinfo;
pub mod pending;
pub mod pins;
pub mod plan;
mod race;
pub mod record;
pub mod sys;
pub mod tree;
pub mod volume;

pub use error::{MountError, Result};
pub use pins::MountPins;
pub use record::{Access, Method, MountRecord, MountedArtifact};
pub use sys::{Flags, LinuxSyscalls, Syscalls};
pub use volume::{Listing, MountRequest, Mounted, UmountOptions, Unmounted, list, mount, umount};
