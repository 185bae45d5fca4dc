//! The Identity service: who the plugin is, what it serves, whether it is
//! ready.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::driver::Driver;
use crate::proto::identity_server::Identity;
use crate::proto::plugin_capability::{Service, Type, service};
use crate::proto::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};

/// The Identity service of one driver.
#[derive(Debug, Clone)]
pub struct IdentityService {
    driver: Arc<Driver>,
}

impl IdentityService {
    /// The service for `driver`.
    pub fn new(driver: Arc<Driver>) -> IdentityService {
        IdentityService { driver }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.driver.options.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: service::Type::ControllerService as i32,
                })),
            }],
        }))
    }

    /// Ready when the store's index reads and its temp directory takes a
    /// file: what every publish needs.
    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        let store = self.driver.store.clone();
        let usable = tokio::task::spawn_blocking(move || -> Result<(), String> {
            store.read_index().map_err(|e| e.to_string())?;
            tempfile::tempfile_in(store.tmp_dir())
                .map(drop)
                .map_err(|e| format!("{}: {e}", store.tmp_dir().display()))
        })
        .await
        .map_err(|e| Status::internal(format!("the probe task failed: {e}")))?;
        match usable {
            Ok(()) => Ok(Response::new(ProbeResponse { ready: Some(true) })),
            Err(reason) => Err(Status::failed_precondition(format!(
                "the store is unusable: {reason}"
            ))),
        }
    }
}
