//! Registry clients for a publish: the driver's own settings (TLS, mirrors,
//! a docker config it is given, e.g. from a mounted Secret), with the
//! credentials of the request's `nodePublishSecretRef` taking their place
//! when the request carries any.

use std::collections::HashMap;
use std::path::PathBuf;

use tonic::Status;

use ferry_registry::credentials::{DockerConfig, Secret};
use ferry_registry::hosts::RegistriesConfig;
use ferry_registry::{Client, ClientOptions};

/// Secret keys of a `kubernetes.io/dockerconfigjson` secret and of the
/// older `kubernetes.io/dockercfg`.
const DOCKER_CONFIG_JSON: &str = ".dockerconfigjson";
const DOCKER_CFG: &str = ".dockercfg";

/// How the driver reaches registries.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Plain HTTP for every registry.
    pub plain_http: bool,
    /// TLS without verifying certificates.
    pub insecure: bool,
    /// An extra CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// `registries.toml` (mirrors, per-registry TLS).
    pub registries_config: Option<PathBuf>,
    /// A docker `config.json` with the node's credentials.
    pub docker_config: Option<PathBuf>,
    /// How large blobs are split across connections.
    pub ranges: ferry_registry::RangeOptions,
}

impl RegistrySettings {
    /// A client for one publish: the request's `secrets` (a docker config
    /// secret, or `username` and `password` for `registry`) replace the
    /// node's credentials when present.
    pub fn client(
        &self,
        secrets: &HashMap<String, String>,
        registry: &str,
    ) -> Result<Client, Status> {
        let registries = match &self.registries_config {
            Some(path) => RegistriesConfig::load(path)
                .map_err(|e| Status::failed_precondition(e.to_string()))?,
            None => RegistriesConfig::default(),
        };
        let docker_config = match from_secrets(secrets, registry)? {
            Some(config) => Some(config),
            None => match &self.docker_config {
                Some(path) => Some(
                    DockerConfig::load(path.clone())
                        .map_err(|e| Status::failed_precondition(e.to_string()))?,
                ),
                None => None,
            },
        };
        Ok(Client::new(ClientOptions {
            plain_http: self.plain_http,
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            registries,
            docker_config,
            ranges: self.ranges,
            ..ClientOptions::default()
        }))
    }
}

/// Credentials carried by the request, if any.
fn from_secrets(
    secrets: &HashMap<String, String>,
    registry: &str,
) -> Result<Option<DockerConfig>, Status> {
    for key in [DOCKER_CONFIG_JSON, DOCKER_CFG] {
        if let Some(document) = secrets.get(key) {
            return DockerConfig::from_secret(&format!("secret key {key}"), document.as_bytes())
                .map(Some)
                .map_err(|e| Status::invalid_argument(e.to_string()));
        }
    }
    match (secrets.get("username"), secrets.get("password")) {
        (Some(username), Some(password)) => Ok(Some(DockerConfig::with_login(
            registry,
            username,
            &Secret::new(password.clone()),
        ))),
        (None, None) => Ok(None),
        _ => Err(Status::invalid_argument(
            "the secret has a username or a password, not both",
        )),
    }
}
