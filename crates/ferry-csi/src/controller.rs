//! The Controller service, so PersistentVolumeClaims work: a volume is
//! created from StorageClass or PVC `parameters` naming the artifact and
//! handed back with those parameters as its context (what kubelet passes
//! to the node at publish). Nothing is provisioned: the node pulls and
//! mounts at publish, so the controller only records names for
//! idempotency. A static PersistentVolume with any `volumeHandle` and a
//! `reference` in its `volumeAttributes` needs no controller at all.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tonic::{Request, Response, Status};

use crate::attributes::VolumeSpec;
use crate::driver::Driver;
use crate::node::{check_capability, required};
use crate::proto::controller_server::Controller;
use crate::proto::controller_service_capability::{Rpc, rpc};
use crate::proto::validate_volume_capabilities_response::Confirmed;
use crate::proto::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse,
    ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse,
    ControllerGetVolumeRequest, ControllerGetVolumeResponse, ControllerModifyVolumeRequest,
    ControllerModifyVolumeResponse, ControllerPublishVolumeRequest,
    ControllerPublishVolumeResponse, ControllerServiceCapability, ControllerUnpublishVolumeRequest,
    ControllerUnpublishVolumeResponse, CreateSnapshotRequest, CreateSnapshotResponse,
    CreateVolumeRequest, CreateVolumeResponse, DeleteSnapshotRequest, DeleteSnapshotResponse,
    DeleteVolumeRequest, DeleteVolumeResponse, GetCapacityRequest, GetCapacityResponse,
    ListSnapshotsRequest, ListSnapshotsResponse, ListVolumesRequest, ListVolumesResponse,
    ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse, Volume,
    VolumeCapability, controller_service_capability,
};
use crate::records::Created;
use crate::status::{from_io, invalid};

/// The Controller service of one driver.
#[derive(Debug, Clone)]
pub struct ControllerService {
    driver: Arc<Driver>,
}

impl ControllerService {
    /// The service for `driver`.
    pub fn new(driver: Arc<Driver>) -> ControllerService {
        ControllerService { driver }
    }

    fn create(&self, request: CreateVolumeRequest) -> Result<CreateVolumeResponse, Status> {
        let name = required("name", &request.name)?;
        check_capabilities(&request.volume_capabilities)?;
        let spec =
            VolumeSpec::parse(&request.parameters, false).map_err(|e| invalid(e.to_string()))?;
        let fingerprint = spec.fingerprint();
        let _busy = self.driver.begin(name)?;
        let records = &self.driver.records;
        let volume_id = match records
            .created(name)
            .map_err(|e| from_io("reading the volume record", &e))?
        {
            Some(existing) if existing.fingerprint == fingerprint => existing.volume_id,
            Some(existing) => {
                return Err(Status::already_exists(format!(
                    "volume {name} exists ({}) with other parameters",
                    existing.volume_id
                )));
            }
            None => {
                let created = Created {
                    name: name.to_string(),
                    volume_id: volume_id(name, &fingerprint),
                    fingerprint,
                };
                records
                    .put_created(&created)
                    .map_err(|e| from_io("writing the volume record", &e))?;
                created.volume_id
            }
        };
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                // Nothing is allocated: the model is as large as it is.
                capacity_bytes: request
                    .capacity_range
                    .map_or(0, |range| range.required_bytes.max(0)),
                volume_id,
                volume_context: spec.to_attributes().into_iter().collect(),
                content_source: None,
                accessible_topology: Vec::new(),
            }),
        })
    }

    fn delete(&self, request: DeleteVolumeRequest) -> Result<(), Status> {
        let volume_id = required("volume_id", &request.volume_id)?;
        let _busy = self.driver.begin(volume_id)?;
        let records = &self.driver.records;
        // An unknown id is already deleted.
        if let Some(created) = records
            .created_by_id(volume_id)
            .map_err(|e| from_io("reading the volume records", &e))?
        {
            records
                .remove_created(&created.name)
                .map_err(|e| from_io("removing the volume record", &e))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        request: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        let volume_id = required("volume_id", &request.volume_id)?;
        if request.volume_capabilities.is_empty() {
            return Err(invalid("volume_capabilities is required"));
        }
        let known = self
            .driver
            .records
            .created_by_id(volume_id)
            .map_err(|e| from_io("reading the volume records", &e))?
            .is_some();
        // A static volume is known by its context naming an artifact.
        let spec = VolumeSpec::parse(&request.volume_context, false);
        if !known && spec.is_err() {
            return Err(Status::not_found(format!(
                "volume {volume_id} was not created here and its context names no artifact"
            )));
        }
        if let Err(reason) = check_capabilities(&request.volume_capabilities) {
            return Ok(ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: reason.message().to_string(),
            });
        }
        Ok(ValidateVolumeCapabilitiesResponse {
            confirmed: Some(Confirmed {
                volume_context: request.volume_context,
                volume_capabilities: request.volume_capabilities,
                parameters: request.parameters,
                mutable_parameters: request.mutable_parameters,
            }),
            message: String::new(),
        })
    }
}

/// Every capability must be one a published volume can honour.
fn check_capabilities(capabilities: &[VolumeCapability]) -> Result<(), Status> {
    if capabilities.is_empty() {
        return Err(invalid("volume_capabilities is required"));
    }
    for capability in capabilities {
        check_capability(capability).map_err(invalid)?;
    }
    Ok(())
}

/// A stable id for `name` with these parameters, within CSI's 128 bytes.
fn volume_id(name: &str, fingerprint: &str) -> String {
    let digest = Sha256::digest(format!("{name}\0{fingerprint}"));
    format!("ferry-{}", hex::encode(&digest[..16]))
}

fn unimplemented<T>(what: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{what} is not offered (see ControllerGetCapabilities)"
    )))
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        self.create(request.into_inner()).map(Response::new)
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        self.delete(request.into_inner())?;
        Ok(Response::new(DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        _request: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        unimplemented("ControllerPublishVolume (attachRequired is false)")
    }

    async fn controller_unpublish_volume(
        &self,
        _request: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        unimplemented("ControllerUnpublishVolume (attachRequired is false)")
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        self.validate(request.into_inner()).map(Response::new)
    }

    async fn list_volumes(
        &self,
        _request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        unimplemented("ListVolumes")
    }

    async fn get_capacity(
        &self,
        _request: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        unimplemented("GetCapacity")
    }

    async fn controller_get_capabilities(
        &self,
        _request: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: vec![ControllerServiceCapability {
                r#type: Some(controller_service_capability::Type::Rpc(Rpc {
                    r#type: rpc::Type::CreateDeleteVolume as i32,
                })),
            }],
        }))
    }

    async fn create_snapshot(
        &self,
        _request: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        unimplemented("CreateSnapshot")
    }

    async fn delete_snapshot(
        &self,
        _request: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        unimplemented("DeleteSnapshot")
    }

    async fn list_snapshots(
        &self,
        _request: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        unimplemented("ListSnapshots")
    }

    async fn controller_expand_volume(
        &self,
        _request: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        unimplemented("ControllerExpandVolume")
    }

    async fn controller_get_volume(
        &self,
        _request: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        unimplemented("ControllerGetVolume")
    }

    async fn controller_modify_volume(
        &self,
        _request: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        unimplemented("ControllerModifyVolume")
    }
}
