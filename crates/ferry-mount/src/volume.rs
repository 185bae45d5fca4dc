//! Mounting and unmounting volumes, and listing them.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX;
use ferry_store::Store;
use ferry_store::select::LayerFilter;

use crate::error::{IoContext, MountError, Result};
use crate::layers::{self, CacheStats, LayerKey, LayerSource};
use crate::mountinfo;
use crate::plan::{self, Located, Lowers};
use crate::record::{
    self, Access, Host, Liveness, Lock, Method, MountRecord, MountedArtifact, RecordDir,
    TreeIdentity,
};
use crate::sys::{self, Flags, Syscalls, Upper};
use crate::tree::{self, Built, LinkMode};

/// What to mount.
#[derive(Debug, Clone)]
pub struct MountRequest {
    /// The base artifact, then stacked ones (a later artifact's file wins):
    /// references or digests in the store.
    pub artifacts: Vec<String>,
    /// The mount point (created when missing).
    pub target: PathBuf,
    /// Mount only this directory or file of the volume.
    pub subpath: Option<String>,
    /// Read-only or read-write.
    pub access: Access,
    /// Mount `noexec`.
    pub noexec: bool,
    /// Never call mount(2): build a tree of hardlinks (read-only) or copies
    /// (read-write) at the target instead.
    pub no_mount: bool,
    /// Which layers of every artifact to use (all when empty).
    pub filter: LayerFilter,
}

impl MountRequest {
    /// A read-only mount of one artifact.
    pub fn new(artifact: impl Into<String>, target: impl Into<PathBuf>) -> MountRequest {
        MountRequest {
            artifacts: vec![artifact.into()],
            target: target.into(),
            subpath: None,
            access: Access::ReadOnly,
            noexec: false,
            no_mount: false,
            filter: LayerFilter::default(),
        }
    }
}

/// What [`mount`] did.
#[derive(Debug, Clone)]
pub struct Mounted {
    /// The record written for it.
    pub record: MountRecord,
    /// Layer cache entries built and reused.
    pub cache: CacheStats,
    /// Files placed, for the tree methods.
    pub tree: Built,
    /// Why ferry built a tree instead of mounting, when it fell back.
    pub fallback: Option<String>,
}

/// Undoes a half-made mount when dropped armed: unmounts what was mounted,
/// removes a target ferry created and the record directory.
struct Undo<'a> {
    sys: &'a dyn Syscalls,
    mounted: Vec<PathBuf>,
    created: Option<PathBuf>,
    placed: Option<(PathBuf, TreeIdentity)>,
    record: Option<RecordDir>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for point in self.mounted.iter().rev() {
            if let Err(e) = self.sys.umount(point, true) {
                tracing::warn!("cannot unmount {} while undoing: {e}", point.display());
            }
        }
        // Only what this mount placed: a tree by its identity, a mount
        // point if still empty, never whatever else is at the path now.
        if let Some((path, placed)) = &self.placed
            && let Err(e) = tree::remove_tree_if(path, *placed)
        {
            tracing::warn!("cannot remove {} while undoing: {e}", path.display());
        }
        if let Some(created) = &self.created {
            remove_created_target(created);
        }
        if let Some(record) = self.record.take()
            && let Err(e) = record.remove()
        {
            tracing::warn!("cannot remove mount record while undoing: {e}");
        }
    }
}

impl Undo<'_> {
    fn write(&self, record: &MountRecord) -> Result<()> {
        match &self.record {
            Some(dir) => dir.write(record),
            None => Err(MountError::Unsupported("mount record vanished".into())),
        }
    }

    fn disarm(mut self) {
        self.mounted.clear();
        self.created = None;
        self.placed = None;
        self.record = None;
    }
}

/// An artifact resolved in the store.
struct Resolved {
    artifact: MountedArtifact,
    sources: Vec<LayerSource>,
}

fn resolve(store: &Store, input: &str, filter: &LayerFilter) -> Result<Resolved> {
    let resolved = store.resolve(input)?;
    let descriptor = &resolved.descriptor;
    if descriptor.media_type().to_string() == MEDIA_TYPE_IMAGE_INDEX {
        return Err(MountError::Unsupported(format!(
            "{input} is an image index: pull one platform's manifest (--platform) to mount it"
        )));
    }
    let manifest = store.read_manifest(descriptor.digest())?;
    // The config names each layer's uncompressed digest (ModelPack's
    // modelfs.diffIds, an image config's rootfs.diff_ids): the cache checks it.
    let diff_ids = ferry_store::decompress::diff_ids(store, &manifest)?;
    let sources = manifest
        .layers()
        .iter()
        .enumerate()
        .filter(|(_, layer)| filter.accepts(layer))
        .map(|(i, layer)| {
            let diff_id = diff_ids.as_ref().and_then(|ids| ids.get(i)).cloned();
            LayerSource::of(layer).map(|source| source.expecting(diff_id))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Resolved {
        artifact: MountedArtifact {
            reference: resolved.reference.unwrap_or_else(|| input.to_string()),
            digest: descriptor.digest().to_string(),
        },
        sources,
    })
}

/// Mounts a volume.
///
/// Everything is checked before anything is mounted: the artifacts resolve,
/// every layer can be placed, the cache entries build (a hostile tar layer
/// fails here), the subpath exists. The record is written before mount(2),
/// so a crash leaves a record that `ferry mounts` recognises as stale.
pub fn mount(store: &Store, request: &MountRequest, sys: &dyn Syscalls) -> Result<Mounted> {
    if request.artifacts.is_empty() {
        return Err(MountError::Unsupported("no artifact to mount".into()));
    }
    let parts = request
        .subpath
        .as_deref()
        .map(plan::subpath_parts)
        .transpose()?;
    let target = absolute(&request.target)?;
    // Held until the record is written: rm and prune wait, so nothing this
    // mount uses disappears before the record pins it.
    let _ingest = store.lock_ingest()?;
    let resolved = request
        .artifacts
        .iter()
        .map(|input| resolve(store, input, &request.filter))
        .collect::<Result<Vec<_>>>()?;
    let sources: Vec<LayerSource> = resolved.iter().flat_map(|r| r.sources.clone()).collect();
    let artifacts: Vec<MountedArtifact> = resolved.into_iter().map(|r| r.artifact).collect();
    let names = artifacts
        .iter()
        .map(|a| a.reference.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    if sources.is_empty() {
        let selected = if request.filter.is_empty() {
            String::new()
        } else {
            format!(" selected by {}", request.filter.describe())
        };
        return Err(MountError::Unsupported(format!(
            "{names} has no layers{selected} to mount"
        )));
    }
    let cache = layers::ensure(store, &sources)?;
    let keys: Vec<LayerKey> = sources.iter().map(|s| s.key.clone()).collect();
    let keys = plan::dedupe_keep_topmost(&keys);
    let dirs: Vec<PathBuf> = keys.iter().map(|k| k.dir(store)).collect();
    let located = match (&parts, &request.subpath) {
        (Some(parts), Some(subpath)) => {
            plan::locate(&dirs, parts, subpath).map_err(|e| match e {
                MountError::SubpathMissing { subpath, .. } => MountError::SubpathMissing {
                    subpath,
                    artifacts: names.clone(),
                },
                other => other,
            })?
        }
        _ => Located::Dir(dirs.clone()),
    };
    if let (Some(parts), Some(subpath), Located::Dir(found)) = (&parts, &request.subpath, &located)
    {
        plan::check_links_stay_inside(found, parts, subpath)?;
    }
    let wants_file = matches!(located, Located::File(_));

    let _targets = lock_targets(store)?;
    let target = prepare_target(&target, wants_file, request.no_mount)?;
    if let Some(existing) = live_record_at(store, &target.path)? {
        if target.created {
            remove_created_target(&target.path);
        }
        return Err(MountError::AlreadyMounted {
            target: target.path,
            id: existing,
        });
    }
    let record_dir = match RecordDir::create(store) {
        Ok(dir) => dir,
        Err(e) => {
            if target.created {
                remove_created_target(&target.path);
            }
            return Err(e);
        }
    };
    let (upper_dir, work_dir, view_dir) =
        (record_dir.upper(), record_dir.work(), record_dir.view());
    let mut undo = Undo {
        sys,
        mounted: Vec::new(),
        created: target.created.then(|| target.path.clone()),
        placed: None,
        record: None,
    };
    let mut record = MountRecord {
        format: record::RECORD_FORMAT,
        id: record_dir.id.clone(),
        artifacts,
        target: target.path.clone(),
        subpath: request.subpath.clone(),
        access: request.access,
        noexec: request.noexec,
        method: Method::Overlay,
        layers: keys.iter().map(|k| k.to_string()).collect(),
        created_target: target.created,
        mount_id: None,
        unique_mount_id: None,
        tree: None,
        pid: std::process::id(),
        boot_id: record::boot_id(),
        mount_namespace: record::mount_namespace(),
        created: record::now(),
    };
    undo.record = Some(record_dir);
    let flags = Flags {
        read_only: request.access == Access::ReadOnly,
        noexec: request.noexec,
    };

    let mut fallback = None;
    if !request.no_mount {
        let view = ViewPlan {
            keys: &keys,
            dirs: &dirs,
            subpath: parts.as_deref(),
            target: &target.path,
            flags,
            upper: (request.access == Access::ReadWrite).then(|| Upper {
                upper: upper_dir.clone(),
                work: work_dir.clone(),
            }),
            view: view_dir.clone(),
            target_identity: target.identity,
        };
        match mount_view(store, &view, &mut undo, &mut record)? {
            None => {
                undo.disarm();
                return Ok(Mounted {
                    record,
                    cache,
                    tree: Built::default(),
                    fallback,
                });
            }
            Some(refused) => {
                // The tree replaces the target, which a mount would only
                // have covered: refuse to discard what is in it.
                if !target_is_empty(&target.path)? {
                    return Err(MountError::InvalidTarget {
                        target: target.path.clone(),
                        reason: format!(
                            "mount(2) was refused ({refused}) and the fallback builds the volume in place, so the target must be empty"
                        ),
                    });
                }
                fallback = Some(format!(
                    "mount(2) was refused ({refused}): built the volume as a tree of {} instead",
                    match request.access {
                        Access::ReadOnly => "read-only hardlinks to the layer cache",
                        Access::ReadWrite => "private copies",
                    }
                ));
                for dir in [&upper_dir, &work_dir, &view_dir] {
                    tree::remove_tree(dir)?;
                }
                record.layers = keys.iter().map(|k| k.to_string()).collect();
            }
        }
    }

    // No mount: the same view as a tree at the target.
    let mode = match request.access {
        Access::ReadOnly => LinkMode::Hardlink,
        Access::ReadWrite => LinkMode::Copy,
    };
    record.method = match mode {
        LinkMode::Hardlink => Method::Hardlink,
        LinkMode::Copy => Method::Copy,
    };
    undo.write(&record)?;
    let (built, identity) = build_tree(&located, &target.path, mode)?;
    // The tree took the mount point's place.
    undo.created = None;
    undo.placed = Some((target.path.clone(), identity));
    record.tree = Some(identity);
    undo.write(&record)?;
    undo.disarm();
    Ok(Mounted {
        record,
        cache,
        tree: built,
        fallback,
    })
}

/// What [`mount_view`] mounts.
struct ViewPlan<'a> {
    /// Cache keys, bottom first (deduplicated).
    keys: &'a [LayerKey],
    /// Their directories.
    dirs: &'a [PathBuf],
    /// The subpath's components, if only part of the view is mounted.
    subpath: Option<&'a [String]>,
    /// The mount point.
    target: &'a Path,
    /// Mount flags.
    flags: Flags,
    /// The private writable layer of a read-write volume.
    upper: Option<Upper>,
    /// The staging mount point of a subpath volume.
    view: PathBuf,
    /// What the target was when it was prepared.
    target_identity: TreeIdentity,
}

impl ViewPlan<'_> {
    /// Right before mounting: the target is still the object prepared (not
    /// swapped for another by someone who can write its parent).
    fn check_target(&self) -> Result<()> {
        // A target whose identity cannot be read now is not the one
        // prepared either.
        if TreeIdentity::of_path(self.target) == Some(self.target_identity) {
            return Ok(());
        }
        Err(MountError::InvalidTarget {
            target: self.target.to_path_buf(),
            reason: "it was replaced while the mount was prepared".into(),
        })
    }
}

/// Mounts the overlay (and binds the subpath). The record is written
/// before mount(2); whatever was mounted is registered with `undo`.
/// Returns the error when mount(2) said EPERM or ENODEV, so the caller can
/// fall back.
fn mount_view(
    store: &Store,
    plan: &ViewPlan<'_>,
    undo: &mut Undo<'_>,
    record: &mut MountRecord,
) -> Result<Option<io::Error>> {
    let sys = undo.sys;
    if let Some(upper) = &plan.upper {
        fs::create_dir(&upper.upper).ctx("creating", &upper.upper)?;
        fs::create_dir(&upper.work).ctx("creating", &upper.work)?;
    }
    let empty = layers::empty_dir(store)?;
    let lowers = match plan::choose_lowers(plan.dirs, plan.upper.as_ref(), &empty) {
        Lowers::Layers(dirs) => dirs,
        Lowers::Flatten => {
            let (merged, _) = layers::ensure_merged(store, plan.keys)?;
            record.layers = vec![merged.to_string()];
            vec![merged.dir(store)]
        }
    };
    let overlay = plan::overlay_for(lowers, plan.upper.clone(), &empty);
    let view = match plan.subpath {
        Some(_) => {
            fs::create_dir(&plan.view).ctx("creating", &plan.view)?;
            // The mount calls refuse symlinks on the way (the store may
            // sit under one).
            fs::canonicalize(&plan.view).ctx("resolving", &plan.view)?
        }
        None => plan.target.to_path_buf(),
    };
    undo.write(record)?;
    if plan.subpath.is_none() {
        plan.check_target()?;
    }
    match sys.mount_overlay(&overlay, &view, plan.flags) {
        Ok(()) => undo.mounted.push(view.clone()),
        // No privilege to mount (EPERM), or no overlayfs in this kernel
        // (ENODEV): the caller builds the same view without mounting.
        Err(e)
            if [rustix::io::Errno::PERM, rustix::io::Errno::NODEV]
                .iter()
                .any(|errno| e.raw_os_error() == Some(errno.raw_os_error())) =>
        {
            return Ok(Some(e));
        }
        Err(source) => {
            return Err(MountError::Syscall {
                what: "mounting the overlay",
                target: view,
                source,
            });
        }
    }
    let Some(parts) = plan.subpath else {
        remember_mount_id(sys, undo, record, &view)?;
        return Ok(None);
    };
    let syscall = |what: &'static str, target: &Path| {
        let target = target.to_path_buf();
        move |source| MountError::Syscall {
            what,
            target,
            source,
        }
    };
    plan.check_target()?;
    sys.bind(&view, parts, plan.target)
        .map_err(syscall("bind-mounting the subpath", plan.target))?;
    undo.mounted.push(plan.target.to_path_buf());
    sys.remount_bind(plan.target, plan.flags).map_err(syscall(
        "setting the flags of the subpath mount",
        plan.target,
    ))?;
    // The bind holds the overlay; the staging mount point is detached so
    // only the target stays visible.
    sys.umount(&view, true)
        .map_err(syscall("detaching the staging view", &view))?;
    undo.mounted.retain(|p| p != &view);
    remember_mount_id(sys, undo, record, plan.target)?;
    Ok(None)
}

/// Records the id of the mount now at `target`, so unmounting can tell it
/// from a mount someone else puts there later.
fn remember_mount_id(
    sys: &dyn Syscalls,
    undo: &Undo<'_>,
    record: &mut MountRecord,
    target: &Path,
) -> Result<()> {
    let mounts = sys
        .mounts()
        .ctx("reading the mount table for", target.to_path_buf())?;
    // Without the id, unmounting could not tell this mount from one put
    // there later: the mount is undone instead (the caller's `undo`).
    let entry = mountinfo::mount_at(&mounts, target)
        .filter(|entry| entry.fs_type == "overlay" && entry.source == sys::MOUNT_SOURCE)
        .ok_or_else(|| MountError::Replaced {
            target: target.to_path_buf(),
            found: "the mount table does not show ferry's overlay there right after mounting"
                .into(),
        })?;
    record.mount_id = Some(entry.mount_id);
    record.unique_mount_id = sys
        .unique_mount_id(target)
        .ctx("reading the mount id of", target.to_path_buf())?;
    undo.write(record)
}

/// Builds the tree of a no-mount volume beside the target, then renames it
/// over the (absent or empty) target: a failure leaves the target as it was.
/// Returns what was built and the identity of the object now at the target,
/// so unmounting removes that object and nothing else.
///
/// Someone who can write the target's parent can rename things in it at
/// any moment, so the staging directory is held by descriptor from its
/// creation: its identity is that descriptor's, both renames are relative
/// to the parent's descriptor, and the staging name is removed (by
/// identity) only when it still holds what ferry made there.
fn build_tree(located: &Located, target: &Path, mode: LinkMode) -> Result<(Built, TreeIdentity)> {
    let parent_path = target.parent().unwrap_or(Path::new("/"));
    let (parent, target_name) = crate::at::open_parent_no_symlinks(target)?;
    let (staging_name, staging) = crate::at::make_private_dir(parent.as_fd(), ".ferry-mount-")
        .ctx("creating staging directory in", parent_path)?;
    let staging_path = parent_path.join(&staging_name);
    let staging_identity = TreeIdentity::of_fd(&staging).ctx("reading", &staging_path)?;
    let rename = |from: BorrowedFd<'_>, name: &OsStr| {
        rustix::fs::renameat(from, name, &parent, &target_name)
            .map_err(io::Error::from)
            .ctx("moving the volume to", target)
    };
    let placed = match located {
        Located::Dir(sources) => {
            tree::merge_into_dir(sources, staging.as_fd(), &staging_path, mode).and_then(|built| {
                rename(parent.as_fd(), &staging_name)?;
                Ok((built, staging_identity))
            })
        }
        Located::File(source) => {
            let name = OsStr::new("file");
            let file_path = staging_path.join(name);
            tree::place_file_at(source, staging.as_fd(), name, &file_path, mode).and_then(|built| {
                // Inside the private staging directory nobody else can
                // swap the file.
                let identity =
                    TreeIdentity::of_at(&staging, name).ok_or_else(|| MountError::Io {
                        action: "reading",
                        path: file_path.clone(),
                        source: io::ErrorKind::NotFound.into(),
                    })?;
                rename(staging.as_fd(), name)?;
                Ok((built, identity))
            })
        }
    };
    crate::race::window("build_tree: renamed", &staging_name);
    // After a directory's rename the staging name is free for anyone to
    // reuse: whatever is there now is not ferry's.
    let staging_left = placed.is_err() || matches!(located, Located::File(_));
    if staging_left
        && let Err(e) = crate::at::remove_at_if(
            parent.as_fd(),
            &staging_name,
            &staging_identity,
            &staging_path,
        )
    {
        tracing::warn!("leaving {}: {e}", staging_path.display());
    }
    let (built, identity) = placed?;
    if TreeIdentity::of_at(&parent, &target_name) != Some(identity) {
        return Err(MountError::InvalidTarget {
            target: target.to_path_buf(),
            reason: "something else took the place of the volume while it was built".into(),
        });
    }
    Ok((built, identity))
}

/// Serialises "is this target free?" with writing the record that takes it.
fn lock_targets(store: &Store) -> Result<ferry_store::lock::LockGuard> {
    let root = record::mounts_root(store);
    fs::create_dir_all(&root).ctx("creating", &root)?;
    Ok(ferry_store::lock::exclusive(&root.join(".targets.lock"))?)
}

/// The id of a record that holds `target` and is live (or in progress).
fn live_record_at(store: &Store, target: &Path) -> Result<Option<String>> {
    let host = Host::current(store);
    for (dir, record) in record::read_all(store)? {
        let Ok(record) = record else { continue };
        if record.target != target {
            continue;
        }
        match RecordDir::lock(&dir, true)? {
            Lock::Busy => return Ok(Some(record.id)),
            Lock::Gone => continue,
            Lock::Locked(_) if record::liveness(&record, &host) == Liveness::Active => {
                return Ok(Some(record.id));
            }
            Lock::Locked(_) => {}
        }
    }
    Ok(None)
}

struct Target {
    path: PathBuf,
    created: bool,
    identity: TreeIdentity,
}

/// Makes sure the target exists as the right kind of thing (a directory,
/// or a file for a file subpath) and returns its canonical path. A no-mount
/// volume needs an absent or empty target, since the tree replaces it.
fn prepare_target(target: &Path, file: bool, no_mount: bool) -> Result<Target> {
    let invalid = |reason: &str| MountError::InvalidTarget {
        target: target.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = match fs::symlink_metadata(target) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).ctx("reading", target),
    };
    let created = match meta {
        None => {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).ctx("creating", parent)?;
            }
            if file {
                // create_new (O_EXCL) never follows a symlink put there
                // since the check above.
                fs::File::create_new(target).ctx("creating", target)?;
            } else {
                make_mount_point(target)?;
            }
            true
        }
        Some(meta) if meta.file_type().is_symlink() => {
            return Err(invalid("it is a symlink; name the directory it points to"));
        }
        Some(meta) if file && !meta.is_file() => {
            return Err(invalid(
                "the subpath is a file, so the target must be a file",
            ));
        }
        Some(meta) if !file && !meta.is_dir() => {
            return Err(invalid(
                "the volume is a directory, so the target must be a directory",
            ));
        }
        Some(_) => {
            if no_mount && !target_is_empty(target)? {
                return Err(invalid(
                    "without a mount the volume is built in place, so the target must be empty",
                ));
            }
            false
        }
    };
    crate::race::window("prepare_target: checked", target.as_os_str());
    // Opened once, not following a symlink in the last component: the path
    // every later step uses is this object's (as /proc/self/fd names it)
    // and so is the identity checked before mounting. Resolving the path
    // again would follow a symlink swapped in since the check above to
    // wherever it points (/etc, say) and mount there.
    let opened = rustix::fs::openat(
        rustix::fs::CWD,
        target,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(io::Error::from)
    .ctx("opening", target)?;
    let kind = rustix::fs::fstat(&opened)
        .map(|stat| crate::at::kind(&stat))
        .map_err(io::Error::from)
        .ctx("reading", target)?;
    let expected = match file {
        true => rustix::fs::FileType::RegularFile,
        false => rustix::fs::FileType::Directory,
    };
    if kind != expected {
        return Err(invalid("it was replaced while it was prepared"));
    }
    let identity = TreeIdentity::of_fd(&opened).ctx("reading", target)?;
    crate::race::window("prepare_target: resolved", target.as_os_str());
    let path =
        fs::read_link(format!("/proc/self/fd/{}", opened.as_raw_fd())).ctx("resolving", target)?;
    Ok(Target {
        path,
        created,
        identity,
    })
}

/// Creates the directory `target` with mode 0755 (whatever the umask).
/// The mode is set on the directory made, through its descriptor: by path,
/// chmod would follow a symlink swapped in meanwhile to any file.
fn make_mount_point(target: &Path) -> Result<()> {
    let (parent, name) = crate::at::open_parent(target)?;
    rustix::fs::mkdirat(&parent, &name, rustix::fs::Mode::from_raw_mode(0o700))
        .map_err(io::Error::from)
        .ctx("creating", target)?;
    crate::race::window("prepare_target: created", &name);
    let dir = crate::at::open_subdir(parent.as_fd(), &name).ctx("opening", target)?;
    crate::at::set_mode(dir.as_fd(), 0o755).ctx("setting mode of", target)
}

fn target_is_empty(path: &Path) -> Result<bool> {
    let meta = fs::symlink_metadata(path).ctx("reading", path)?;
    if meta.is_dir() {
        tree::is_empty_dir(path)
    } else {
        Ok(meta.len() == 0)
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().ctx("reading the current directory", ".")?;
    Ok(cwd.join(path))
}

/// Options of [`umount`].
#[derive(Debug, Clone, Default)]
pub struct UmountOptions {
    /// Copy what was written to a read-write volume here first (a new
    /// directory), as an OCI-style diff (`.wh.` files mark deletions).
    pub keep_changes: Option<PathBuf>,
}

/// What [`umount`] did.
#[derive(Debug, Clone)]
pub struct Unmounted {
    /// The record of the volume that is gone.
    pub record: MountRecord,
    /// Entries copied to `keep_changes`.
    pub kept: Option<usize>,
    /// Device nodes, fifos and sockets written to the volume that were not
    /// kept (each is logged with its path).
    pub skipped: usize,
}

/// Unmounts the volume at `target` and discards its record and writes.
/// A busy mount is left mounted and reported as [`MountError::Busy`].
pub fn umount(
    store: &Store,
    target: &Path,
    options: &UmountOptions,
    sys: &dyn Syscalls,
) -> Result<Unmounted> {
    let target = absolute(target)?;
    let canonical = fs::canonicalize(&target).unwrap_or_else(|_| target.clone());
    let dir = record_for(store, &target, &canonical)?;
    let Lock::Locked(record_dir) = RecordDir::lock(&dir, false)? else {
        return Err(MountError::NotMounted(target));
    };
    // Re-read under the lock: a concurrent umount may have finished.
    let record =
        record::read(&record_dir.path).map_err(|_| MountError::NotMounted(target.clone()))?;
    if let Some(keep) = &options.keep_changes {
        if record.access == Access::ReadOnly {
            return Err(MountError::Unsupported(format!(
                "{} is read-only: it has no changes to keep",
                record.target.display()
            )));
        }
        if fs::symlink_metadata(keep).is_ok() {
            return Err(MountError::InvalidTarget {
                target: keep.clone(),
                reason: "--keep-changes needs a directory that does not exist yet".into(),
            });
        }
    }
    let mut exported = None;
    match record.method {
        Method::Overlay => {
            if check_our_mount(store, &record, sys)? {
                crate::race::window("umount: mount checked", record.target.as_os_str());
                unmount_ours(&record, sys)?;
            }
            if let Some(keep) = &options.keep_changes {
                exported = Some(tree::export_changes(&record_dir.upper(), keep)?);
            }
            if record.created_target {
                remove_created_target(&record.target);
            }
        }
        Method::Hardlink | Method::Copy => {
            let placed = check_our_tree(&record)?;
            crate::race::window("umount: tree checked", record.target.as_os_str());
            if let Some(keep) = &options.keep_changes
                && let Some(placed) = placed
            {
                // Without an overlay there is no change set: the whole
                // tree is what the volume holds now.
                exported = Some(tree::export_tree_if(&record.target, placed, keep)?);
            }
            if let Some(placed) = placed {
                let is_file = fs::symlink_metadata(&record.target).is_ok_and(|m| m.is_file());
                tree::remove_tree_if(&record.target, placed)?;
                if !record.created_target {
                    // Leave the empty mount point the caller provided.
                    if is_file {
                        fs::File::create_new(&record.target).ctx("recreating", &record.target)?;
                    } else {
                        fs::create_dir(&record.target).ctx("recreating", &record.target)?;
                    }
                }
            }
        }
    }
    record_dir.remove()?;
    Ok(Unmounted {
        record,
        kept: exported.map(|e| e.copied),
        skipped: exported.map(|e| e.skipped).unwrap_or(0),
    })
}

/// The record directory for `target`: of the records naming it, a live one
/// first (a stale record may name the same place).
fn record_for(store: &Store, target: &Path, canonical: &Path) -> Result<PathBuf> {
    let host = Host::current(store);
    let mut candidates: Vec<(PathBuf, MountRecord)> = record::read_all(store)?
        .into_iter()
        .filter_map(|(dir, record)| record.ok().map(|r| (dir, r)))
        .filter(|(_, r)| r.target == canonical || r.target == target)
        .collect();
    candidates.sort_by_key(|(_, r)| record::liveness(r, &host) != Liveness::Active);
    candidates
        .into_iter()
        .next()
        .map(|(dir, _)| dir)
        .ok_or_else(|| MountError::NotMounted(target.to_path_buf()))
}

/// Whether ferry's mount is still at the record's target (true: unmount
/// it; false: it is already gone). A mount that is not the one ferry made
/// is refused, so nobody else's mount is ever unmounted.
fn check_our_mount(store: &Store, record: &MountRecord, sys: &dyn Syscalls) -> Result<bool> {
    let mounts = sys
        .mounts()
        .ctx("reading the mount table for", record.target.clone())?;
    let replaced = |found: String| MountError::Replaced {
        target: record.target.clone(),
        found,
    };
    match mountinfo::mount_at(&mounts, &record.target) {
        None => Ok(false),
        // This ferry records the id right after mounting (or undoes the
        // mount): a current record without one is of a mount interrupted
        // before that, and what is there cannot be told to be it.
        Some(_) if record.mount_id.is_none() && record.format >= record::RECORD_FORMAT => {
            Err(replaced(
                "the record does not say which mount ferry made (an interrupted mount); unmount it by hand"
                    .into(),
            ))
        }
        Some(entry) if record::is_our_mount(record, entry, &record::StorePaths::of(store)) => {
            let Some(expected) = record.unique_mount_id else {
                return Ok(true);
            };
            let found = sys
                .unique_mount_id(&record.target)
                .ctx("reading the mount id of", record.target.clone())?;
            match found == Some(expected) {
                true => Ok(true),
                false => Err(replaced(format!(
                    "another ferry overlay (mount id {}) is there",
                    entry.mount_id
                ))),
            }
        }
        Some(entry) => Err(MountError::Replaced {
            target: record.target.clone(),
            found: format!(
                "a {} mount of {} (id {}) is there",
                entry.fs_type, entry.source, entry.mount_id
            ),
        }),
    }
}

fn unmount_ours(record: &MountRecord, sys: &dyn Syscalls) -> Result<()> {
    // With the id, the mount checked is the mount unmounted (the check
    // before only read the mount table, by path).
    let result = match record.unique_mount_id {
        Some(expected) => sys.umount_if(&record.target, expected, false),
        None => sys.umount(&record.target, false),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if sys::is_other_mount(&e) => Err(MountError::Replaced {
            target: record.target.clone(),
            found: "another mount took its place while it was checked".into(),
        }),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
            Err(MountError::Busy {
                target: record.target.clone(),
            })
        }
        // Not mounted any more (someone else unmounted it meanwhile):
        // finish the cleanup.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(()),
        Err(source) => Err(MountError::Syscall {
            what: "unmounting",
            target: record.target.clone(),
            source,
        }),
    }
}

/// The identity of a no-mount volume that is still the tree ferry placed
/// (`None` when nothing is at its target any more). Anything else there is
/// refused: it is someone's, not the volume.
fn check_our_tree(record: &MountRecord) -> Result<Option<TreeIdentity>> {
    let Some(found) = TreeIdentity::of_path(&record.target) else {
        return Ok(None);
    };
    match record.tree {
        Some(placed) if placed == found => Ok(Some(placed)),
        Some(_) => Err(MountError::Replaced {
            target: record.target.clone(),
            found: "another file or directory is there".into(),
        }),
        None => Err(MountError::Replaced {
            target: record.target.clone(),
            found: "the record does not say which tree ferry placed (an interrupted mount or an older ferry); remove the tree by hand".into(),
        }),
    }
}

/// Removes a mount point ferry created, only if nothing is in it. What is
/// judged is what is removed: looked at and unlinked relative to the same
/// parent descriptor (opened without following a symlink), never by a
/// path looked up twice.
fn remove_created_target(target: &Path) {
    let result = (|| -> io::Result<()> {
        let (parent, name) =
            crate::at::open_parent_no_symlinks(target).map_err(io::Error::other)?;
        let (_, stat) = crate::at::open_entry(parent.as_fd(), &name)?;
        let flags = match crate::at::kind(&stat) {
            rustix::fs::FileType::Directory => rustix::fs::AtFlags::REMOVEDIR,
            rustix::fs::FileType::RegularFile if stat.st_size == 0 => rustix::fs::AtFlags::empty(),
            _ => return Ok(()),
        };
        // A directory that is not empty any more stays (ENOTEMPTY).
        Ok(rustix::fs::unlinkat(&parent, &name, flags)?)
    })();
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!("leaving mount point {}: {e}", target.display()),
    }
}

/// Active volumes, and the stale records removed while listing them.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Volumes that are there (or being set up right now).
    pub active: Vec<MountRecord>,
    /// Records whose volume was gone, with why; their directories (and any
    /// read-write layer) were removed.
    pub cleaned: Vec<(MountRecord, String)>,
    /// Record directories that could not be read (left alone).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Lists the volumes of this store, cleaning up stale records.
pub fn list(store: &Store, sys: &dyn Syscalls) -> Result<Listing> {
    let host = Host::current(store);
    let mut listing = Listing::default();
    for (dir, record) in record::read_all(store)? {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                // A directory without a record is debris of a mount killed
                // before it wrote one, unless that mount is still running.
                if !dir.join("record.json").exists() {
                    match RecordDir::lock(&dir, true)? {
                        // A mount about to write its record.
                        Lock::Busy => continue,
                        Lock::Locked(locked) => {
                            locked.remove()?;
                            continue;
                        }
                        // No lock file yet either: a mount may be between
                        // creating the directory and its lock, so only old
                        // debris goes.
                        Lock::Gone if older_than_a_minute(&dir) => {
                            tree::remove_tree(&dir)?;
                            continue;
                        }
                        Lock::Gone => continue,
                    }
                }
                listing.unreadable.push((dir, e.to_string()));
                continue;
            }
        };
        match record::liveness(&record, &host) {
            Liveness::Active => listing.active.push(record),
            Liveness::Stale(reason) => match RecordDir::lock(&dir, true)? {
                Lock::Busy => listing.active.push(record),
                Lock::Gone => {}
                Lock::Locked(locked) => {
                    clean_stale(&record, locked, sys)?;
                    listing.cleaned.push((record, reason.to_string()));
                }
            },
        }
    }
    Ok(listing)
}

fn older_than_a_minute(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(60))
}

fn clean_stale(record: &MountRecord, dir: RecordDir, sys: &dyn Syscalls) -> Result<()> {
    if record.method == Method::Overlay {
        // A mount killed between its bind and detaching the staging view
        // leaves the view mounted; detach it so the directory can go.
        let view = dir.view();
        if view.is_dir() {
            let view = fs::canonicalize(&view).unwrap_or(view);
            let _ = sys.umount(&view, true);
        }
        if record.created_target {
            remove_created_target(&record.target);
        }
    }
    dir.remove()
}

/// Manifests and cache entries that live volumes use.
pub(crate) fn active_records(store: &Store) -> Result<Vec<MountRecord>> {
    let host = Host::current(store);
    let mut out = Vec::new();
    for (dir, record) in record::read_all(store)? {
        let Ok(record) = record else { continue };
        let busy = matches!(RecordDir::lock(&dir, true)?, Lock::Busy);
        if busy || record::liveness(&record, &host) == Liveness::Active {
            out.push(record);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A store holding `localhost/demo:v1`.
    fn store_with_model(t: &Path) -> Store {
        let model = t.join("model");
        fs::create_dir(&model).unwrap();
        fs::write(model.join("weights.bin"), [7u8; 64]).unwrap();
        let store = Store::open(t.join("store")).unwrap();
        let reference = "localhost/demo:v1".parse().unwrap();
        ferry_store::pack::pack(&store, &model, &reference, &Default::default()).unwrap();
        store
    }

    #[test]
    fn a_mount_replaced_after_the_check_is_not_unmounted() {
        let t = tempfile::tempdir().unwrap();
        let store = store_with_model(t.path());
        let sys = std::sync::Arc::new(crate::fake::RecordingSyscalls::new());
        let target = t.path().join("mnt");
        mount(
            &store,
            &MountRequest::new("localhost/demo:v1", &target),
            &*sys,
        )
        .unwrap();
        // Between the mount-table check and the unmount, the volume is
        // unmounted and someone else's mount takes its place.
        let racer = sys.clone();
        let _staged = crate::race::staged::stage("umount: mount checked", move |at| {
            racer.unmount_behind_our_back(Path::new(at));
            racer.mount_foreign(Path::new(at), "tmpfs");
        });
        let result = umount(&store, &target, &UmountOptions::default(), &*sys);
        assert!(
            matches!(result, Err(MountError::Replaced { .. })),
            "{result:?}"
        );
        let mounts = sys.mounts().unwrap();
        let there = mountinfo::mount_at(&mounts, &target).map(|e| e.fs_type.clone());
        assert_eq!(there.as_deref(), Some("tmpfs"), "the other mount stays");
    }

    #[test]
    fn a_tree_swapped_in_after_the_check_is_not_kept() {
        let t = tempfile::tempdir().unwrap();
        let store = store_with_model(t.path());
        let sys = crate::fake::RecordingSyscalls::new();
        let target = t.path().join("copy");
        let request = MountRequest {
            access: Access::ReadWrite,
            no_mount: true,
            ..MountRequest::new("localhost/demo:v1", &target)
        };
        mount(&store, &request, &sys).unwrap();
        // Right after the volume was checked, another tree takes its place.
        let moved = t.path().join("moved");
        let _staged = crate::race::staged::stage("umount: tree checked", move |at| {
            fs::rename(at, &moved).unwrap();
            fs::create_dir(at).unwrap();
            fs::write(Path::new(at).join("secret"), b"not the volume's").unwrap();
        });
        let kept = t.path().join("kept");
        let options = UmountOptions {
            keep_changes: Some(kept.clone()),
        };
        let result = umount(&store, &target, &options, &sys);
        assert!(
            matches!(result, Err(MountError::Replaced { .. })),
            "{result:?}"
        );
        assert!(!kept.exists(), "the swapped-in tree was copied");
        assert!(target.join("secret").exists());
    }

    #[test]
    fn a_symlink_swapped_for_a_new_mount_point_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let store = store_with_model(t.path());
        let victim = t.path().join("shadow");
        fs::write(&victim, b"secret").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        // Right after ferry made the mount point, it becomes a symlink.
        let parent = t.path().to_path_buf();
        let link_to = victim.clone();
        let _staged = crate::race::staged::stage("prepare_target: created", move |name| {
            let at = parent.join(name);
            fs::remove_dir(&at).unwrap();
            std::os::unix::fs::symlink(&link_to, &at).unwrap();
        });
        let sys = crate::fake::RecordingSyscalls::new();
        let request = MountRequest::new("localhost/demo:v1", t.path().join("mnt"));
        let result = mount(&store, &request, &sys);
        assert!(result.is_err(), "{result:?}");
        assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o777, 0o600);
        assert!(sys.calls().is_empty(), "mounted: {:?}", sys.calls());
    }

    #[test]
    fn a_target_swapped_for_a_symlink_after_the_check_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let store = store_with_model(t.path());
        let (target, elsewhere) = (t.path().join("mnt"), t.path().join("etc"));
        fs::create_dir(&target).unwrap();
        fs::create_dir(&elsewhere).unwrap();
        // Once ferry saw a directory, the target becomes a symlink to a
        // directory ferry must not mount over.
        let link_to = elsewhere.clone();
        let _staged = crate::race::staged::stage("prepare_target: checked", move |at| {
            fs::remove_dir(at).unwrap();
            std::os::unix::fs::symlink(&link_to, at).unwrap();
        });
        let sys = crate::fake::RecordingSyscalls::new();
        let result = mount(
            &store,
            &MountRequest::new("localhost/demo:v1", &target),
            &sys,
        );
        assert!(
            matches!(result, Err(MountError::InvalidTarget { .. })),
            "{result:?}"
        );
        assert!(sys.calls().is_empty(), "mounted: {:?}", sys.calls());
    }

    #[test]
    fn a_target_that_cannot_be_identified_is_not_mounted_on() {
        let t = tempfile::tempdir().unwrap();
        let store = store_with_model(t.path());
        // The target goes right after it was resolved: its identity cannot
        // be read when prepared, nor later when checked.
        let _staged = crate::race::staged::stage("prepare_target: resolved", |target| {
            fs::remove_dir(target).unwrap();
        });
        let sys = crate::fake::RecordingSyscalls::new();
        let request = MountRequest::new("localhost/demo:v1", t.path().join("mnt"));
        let result = mount(&store, &request, &sys);
        assert!(
            matches!(result, Err(MountError::InvalidTarget { .. })),
            "{result:?}"
        );
        assert!(sys.calls().is_empty(), "mounted: {:?}", sys.calls());
    }

    #[test]
    fn a_directory_renamed_to_the_staging_name_after_the_build_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let source = t.path().join("layer");
        fs::create_dir(&source).unwrap();
        fs::write(source.join("weights.bin"), b"w").unwrap();
        let victim = t.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("thesis.tex"), b"years of work").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
        // Someone who can write the target's parent moves their directory
        // to the staging name once the volume took the target's place.
        let parent = t.path().to_path_buf();
        let moved_to = std::rc::Rc::new(std::cell::RefCell::new(None));
        let moved = moved_to.clone();
        let _staged = crate::race::staged::stage("build_tree: renamed", move |staging| {
            let at = parent.join(staging);
            fs::rename(&victim, &at).unwrap();
            *moved.borrow_mut() = Some(at);
        });
        let target = t.path().join("volume");
        let (_, placed) = build_tree(&Located::Dir(vec![source]), &target, LinkMode::Copy).unwrap();
        assert_eq!(TreeIdentity::of_path(&target), Some(placed));
        let moved = moved_to.borrow().clone().expect("the swap was staged");
        assert_eq!(
            fs::read(moved.join("thesis.tex")).unwrap(),
            b"years of work"
        );
        assert_eq!(fs::metadata(&moved).unwrap().mode() & 0o777, 0o755);
    }
}
