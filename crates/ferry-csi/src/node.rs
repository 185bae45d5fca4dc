//! The Node service: publish = bring the artifacts into the store (the
//! policy decides) and mount them at the target with the `ferry mount`
//! engine; unpublish = unmount and forget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use ferry_mount::{Access, LinuxSyscalls, MountError, MountRequest, UmountOptions};
use ferry_registry::admission::{admit_local, pull_admitted};
use ferry_registry::progress::NoProgress;
use ferry_store::StoreError;

use crate::attributes::{PullPolicy, VolumeSpec, is_ephemeral};
use crate::driver::Driver;
use crate::proto::node_server::Node;
use crate::proto::node_service_capability::{Rpc, rpc};
use crate::proto::volume_capability::{AccessType, access_mode::Mode};
use crate::proto::volume_usage::Unit;
use crate::proto::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, VolumeCapability, VolumeUsage,
    node_service_capability,
};
use crate::records::Published;
use crate::status::{from_admission, from_io, from_mount, from_store, invalid};

/// The Node service of one driver.
#[derive(Debug, Clone)]
pub struct NodeService {
    driver: Arc<Driver>,
}

impl NodeService {
    /// The service for `driver`.
    pub fn new(driver: Arc<Driver>) -> NodeService {
        NodeService { driver }
    }
}

/// A required string field, or `InvalidArgument` naming it.
pub(crate) fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(invalid(format!("{field} is required")));
    }
    Ok(value)
}

/// The target path: absolute, without `.` or `..` components (kubelet
/// sends clean paths; anything else is a hostile or broken request).
pub(crate) fn clean_path(field: &str, value: &str) -> Result<PathBuf, Status> {
    let path = Path::new(required(field, value)?);
    if !path.is_absolute() {
        return Err(invalid(format!("{field} {value:?} is not absolute")));
    }
    // By segment: `Path::components` drops an inner `.` silently.
    if value.contains('\0')
        || value
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Err(invalid(format!("{field} {value:?} is not a clean path")));
    }
    Ok(path.to_path_buf())
}

/// Only mounted filesystems, in an access mode the volume can honour:
/// every reader mode, and single-node writers (each publish writes to its
/// own private layer, so writers on several nodes could never share).
pub(crate) fn check_capability(capability: &VolumeCapability) -> Result<(), String> {
    match &capability.access_type {
        Some(AccessType::Mount(_)) => {}
        Some(AccessType::Block(_)) => return Err("block volumes are not supported".into()),
        None => return Err("the capability has no access type".into()),
    }
    let mode = capability
        .access_mode
        .as_ref()
        .and_then(|m| Mode::try_from(m.mode).ok())
        .unwrap_or(Mode::Unknown);
    match mode {
        Mode::SingleNodeReaderOnly
        | Mode::MultiNodeReaderOnly
        | Mode::SingleNodeWriter
        | Mode::SingleNodeSingleWriter
        | Mode::SingleNodeMultiWriter => Ok(()),
        Mode::MultiNodeSingleWriter | Mode::MultiNodeMultiWriter => Err(format!(
            "access mode {}: writes stay private to each mount, so writers on several nodes cannot share them",
            mode.as_str_name()
        )),
        Mode::Unknown => Err("the access mode is missing or unknown".into()),
    }
}

impl NodeService {
    async fn publish(&self, request: NodePublishVolumeRequest) -> Result<(), Status> {
        let volume_id = required("volume_id", &request.volume_id)?.to_string();
        let target = clean_path("target_path", &request.target_path)?;
        let capability = request
            .volume_capability
            .as_ref()
            .ok_or_else(|| invalid("volume_capability is required"))?;
        check_capability(capability).map_err(invalid)?;
        let spec = VolumeSpec::parse(&request.volume_context, request.readonly)
            .map_err(|e| invalid(e.to_string()))?;
        let fingerprint = spec.fingerprint();
        let busy = self.driver.begin(&volume_id)?;

        let records = &self.driver.records;
        if let Some(existing) = records
            .published(&target)
            .map_err(|e| from_io("reading the publish record", &e))?
        {
            if existing.volume_id != volume_id || existing.fingerprint != fingerprint {
                return Err(Status::already_exists(format!(
                    "{} holds volume {} ({}), not this one",
                    target.display(),
                    existing.volume_id,
                    existing.spec.reference
                )));
            }
            if self.is_mounted(&target).await? {
                return Ok(());
            }
            // The same volume, whose mount is gone (a reboot): again.
        }

        for artifact in spec.artifacts() {
            self.bring_in(&artifact, &spec, &request.secrets).await?;
        }
        let driver = Arc::clone(&self.driver);
        let record = Published {
            volume_id,
            target: target.clone(),
            fingerprint,
            spec,
            ephemeral: is_ephemeral(&request.volume_context),
        };
        tokio::task::spawn_blocking(move || {
            // Busy until mounted, even if the caller gave up waiting.
            let _busy = busy;
            mount(&driver, &record)
        })
        .await
        .map_err(|e| Status::internal(format!("the mount task failed: {e}")))?
    }

    /// Puts `artifact` in the store as `spec.pull_policy` says, with the
    /// policy's verdict, pulling each reference once however many
    /// publishes ask for it at the same time.
    async fn bring_in(
        &self,
        artifact: &str,
        spec: &VolumeSpec,
        secrets: &HashMap<String, String>,
    ) -> Result<(), Status> {
        let store = &self.driver.store;
        let pulling = self.driver.pull_lock(artifact).await;
        let present = match store.resolve(artifact) {
            Ok(_) => true,
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(from_store(&e)),
        };
        let pull = match spec.pull_policy {
            PullPolicy::Never if !present => {
                return Err(Status::not_found(format!(
                    "{artifact} is not in the store and pullPolicy is Never"
                )));
            }
            PullPolicy::Never => false,
            PullPolicy::IfNotPresent => !present,
            PullPolicy::Always => true,
        };
        let reference =
            ferry_store::index::normalize_reference(artifact).map_err(|e| from_store(&e))?;
        let options = &self.driver.options;
        let client = options.registries.client(secrets, reference.registry())?;
        if !pull {
            // A request with credentials may only use a copy another pod
            // brought in if those credentials reach it on the registry too.
            if !secrets.is_empty() && spec.pull_policy == PullPolicy::IfNotPresent {
                check_access(client, &reference).await?;
            }
            return Ok(());
        }
        let (store, policy) = (store.clone(), options.policy.clone());
        let (platform, concurrency) = (spec.platform(), options.concurrency);
        // The registry client's futures are not provably Send across the
        // gRPC service's await points: the pull runs on a blocking thread
        // driven by this runtime's handle.
        let runtime = tokio::runtime::Handle::current();
        let pulled = tokio::task::spawn_blocking(move || {
            // Held until the pull ends, even if the caller gave up waiting:
            // a retry waits for it instead of pulling again.
            let _pulling = pulling;
            runtime.block_on(pull_admitted(
                &client,
                &store,
                policy.as_deref(),
                &reference,
                platform.as_ref(),
                concurrency,
                &NoProgress,
            ))
        })
        .await
        .map_err(|e| Status::internal(format!("the pull task failed: {e}")))?
        .map_err(|e| from_admission(&e))?;
        self.driver.metrics.pulled(pulled.bytes);
        Ok(())
    }

    async fn is_mounted(&self, target: &Path) -> Result<bool, Status> {
        let driver = Arc::clone(&self.driver);
        let target = target.to_path_buf();
        tokio::task::spawn_blocking(move || {
            ferry_mount::list(&driver.store, &LinuxSyscalls)
                .map(|listing| listing.active.iter().any(|r| r.target == target))
                .map_err(|e| from_mount(&e))
        })
        .await
        .map_err(|e| Status::internal(format!("the listing task failed: {e}")))?
    }

    async fn unpublish(&self, request: NodeUnpublishVolumeRequest) -> Result<(), Status> {
        let volume_id = required("volume_id", &request.volume_id)?.to_string();
        let target = clean_path("target_path", &request.target_path)?;
        let busy = self.driver.begin(&volume_id)?;
        let driver = Arc::clone(&self.driver);
        tokio::task::spawn_blocking(move || {
            let _busy = busy;
            unmount(&driver, &volume_id, &target)
        })
        .await
        .map_err(|e| Status::internal(format!("the unmount task failed: {e}")))?
    }

    async fn stats(
        &self,
        request: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse, Status> {
        let volume_id = required("volume_id", &request.volume_id)?.to_string();
        let path = clean_path("volume_path", &request.volume_path)?;
        let published = self
            .driver
            .records
            .published(&path)
            .map_err(|e| from_io("reading the publish record", &e))?;
        if published.is_none_or(|p| p.volume_id != volume_id) {
            return Err(Status::not_found(format!(
                "volume {volume_id} is not published at {}",
                path.display()
            )));
        }
        let (bytes, inodes) = tokio::task::spawn_blocking(move || usage(&path))
            .await
            .map_err(|e| Status::internal(format!("the usage task failed: {e}")))?
            .map_err(|e| from_io("measuring the volume", &e))?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(NodeGetVolumeStatsResponse {
            usage: vec![
                VolumeUsage {
                    available: 0,
                    total: count(bytes),
                    used: count(bytes),
                    unit: Unit::Bytes as i32,
                },
                VolumeUsage {
                    available: 0,
                    total: count(inodes),
                    used: count(inodes),
                    unit: Unit::Inodes as i32,
                },
            ],
        })
    }
}

/// Whether `client` (the request's credentials) may read `reference` on
/// its registry: a manifest request, on a blocking thread like the pulls.
async fn check_access(
    client: ferry_registry::Client,
    reference: &ferry_spec::Reference,
) -> Result<(), Status> {
    let reference = reference.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(ferry_registry::referrers::resolve_descriptor(
            &client, &reference,
        ))
    })
    .await
    .map_err(|e| Status::internal(format!("the access check failed: {e}")))?
    .map(drop)
    .map_err(|e| crate::status::from_client(&e))
}

/// Mounts `record`'s volume at its target and records it; an unprivileged
/// fallback (a tree of hardlinks into the shared cache, which a root
/// container could write through) is undone and refused.
fn mount(driver: &Driver, record: &Published) -> Result<(), Status> {
    let spec = &record.spec;
    for artifact in spec.artifacts() {
        admit_local(&driver.store, driver.options.policy.as_deref(), &artifact)
            .map_err(|e| from_admission(&e))?;
    }
    let request = MountRequest {
        artifacts: spec.artifacts(),
        target: record.target.clone(),
        subpath: spec.sub_path.clone(),
        access: if spec.read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        },
        noexec: false,
        no_mount: false,
        filter: spec.layer_filter().map_err(|e| from_store(&e))?,
    };
    let mounted =
        ferry_mount::mount(&driver.store, &request, &LinuxSyscalls).map_err(|e| from_mount(&e))?;
    if let Some(reason) = mounted.fallback {
        let _ = ferry_mount::umount(
            &driver.store,
            &record.target,
            &UmountOptions::default(),
            &LinuxSyscalls,
        );
        return Err(Status::failed_precondition(format!(
            "the driver cannot mount (it needs CAP_SYS_ADMIN in the host's mount namespace): {reason}"
        )));
    }
    if let Err(e) = driver.records.put_published(record) {
        let _ = ferry_mount::umount(
            &driver.store,
            &record.target,
            &UmountOptions::default(),
            &LinuxSyscalls,
        );
        return Err(from_io("writing the publish record", &e));
    }
    Ok(())
}

/// Unmounts what ferry mounted at `target` for `volume_id` (a writable
/// layer is discarded) and forgets the record; nothing there is success.
/// Another volume's target is left alone: the CSI spec's answer for a
/// volume not published there is success without action.
fn unmount(driver: &Driver, volume_id: &str, target: &Path) -> Result<(), Status> {
    let published = driver
        .records
        .published(target)
        .map_err(|e| from_io("reading the publish record", &e))?;
    if published.is_some_and(|p| p.volume_id != volume_id) {
        tracing::warn!(
            "unpublish of {volume_id} at {}: another volume is published there; left alone",
            target.display()
        );
        return Ok(());
    }
    match ferry_mount::umount(
        &driver.store,
        target,
        &UmountOptions::default(),
        &LinuxSyscalls,
    ) {
        Ok(_) | Err(MountError::NotMounted(_)) => {}
        Err(e) => return Err(from_mount(&e)),
    }
    driver
        .records
        .remove_published(target)
        .map_err(|e| from_io("removing the publish record", &e))?;
    // Kubelet expects the target gone; ferry removes a target it created,
    // and an empty one left by an earlier driver goes too.
    match std::fs::remove_dir(target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(from_io(&format!("removing {}", target.display()), &e)),
    }
}

/// Bytes of regular files and entries under `path`, without following
/// links.
fn usage(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut bytes = 0;
    let mut inodes = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&dir)?;
        inodes += 1;
        if !metadata.is_dir() {
            bytes += metadata.len();
            continue;
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(entry.path());
            } else {
                inodes += 1;
                if file_type.is_file() {
                    bytes += entry.metadata()?.len();
                }
            }
        }
    }
    Ok((bytes, inodes))
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        _request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "the driver does not stage volumes (no STAGE_UNSTAGE_VOLUME capability)",
        ))
    }

    async fn node_unstage_volume(
        &self,
        _request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "the driver does not stage volumes (no STAGE_UNSTAGE_VOLUME capability)",
        ))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let started = Instant::now();
        let result = self.publish(request.into_inner()).await;
        self.driver.metrics.published(&result, started.elapsed());
        if let Err(status) = &result {
            tracing::warn!("publish failed: {status}");
        }
        result.map(|()| Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        self.unpublish(request.into_inner()).await?;
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        Ok(Response::new(self.stats(request.into_inner()).await?))
    }

    async fn node_expand_volume(
        &self,
        _request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented("model volumes are not expanded"))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        let capability = |kind: rpc::Type| NodeServiceCapability {
            r#type: Some(node_service_capability::Type::Rpc(Rpc {
                r#type: kind as i32,
            })),
        };
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![capability(rpc::Type::GetVolumeStats)],
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.driver.options.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::volume_capability::{AccessMode, BlockVolume, MountVolume};

    fn capability(access: Option<AccessType>, mode: Mode) -> VolumeCapability {
        VolumeCapability {
            access_type: access,
            access_mode: Some(AccessMode { mode: mode as i32 }),
        }
    }

    #[test]
    fn target_paths_must_be_clean_and_absolute() {
        assert!(clean_path("t", "/var/lib/kubelet/pods/x/volumes/v").is_ok());
        for hostile in [
            "",
            "relative/dir",
            "../../etc",
            "/var/lib/../../etc",
            "/a/./b",
            "/a\0b",
        ] {
            let status = clean_path("target_path", hostile).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{hostile:?}");
        }
    }

    #[test]
    fn capabilities_allow_mounts_readers_and_single_node_writers() {
        let mount = Some(AccessType::Mount(MountVolume::default()));
        for mode in [
            Mode::SingleNodeReaderOnly,
            Mode::MultiNodeReaderOnly,
            Mode::SingleNodeWriter,
        ] {
            assert!(check_capability(&capability(mount.clone(), mode)).is_ok());
        }
        for mode in [Mode::MultiNodeMultiWriter, Mode::Unknown] {
            assert!(check_capability(&capability(mount.clone(), mode)).is_err());
        }
        let block = Some(AccessType::Block(BlockVolume {}));
        let error = check_capability(&capability(block, Mode::SingleNodeReaderOnly)).unwrap_err();
        assert!(error.contains("block"), "{error}");
        assert!(check_capability(&capability(None, Mode::SingleNodeReaderOnly)).is_err());
    }
}
