//! The Identity service: name, version, capabilities, and a probe that
//! fails while the store is unusable.

use ferry_csi::proto::node_service_capability;
use ferry_csi::proto::plugin_capability::{Type, service};
use ferry_csi::proto::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, NodeGetCapabilitiesRequest,
    NodeGetInfoRequest, ProbeRequest,
};
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn identity_and_node_info_describe_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), None).await;
    let mut identity = harness.identity();
    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.ferry.dev");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    let capabilities = identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    assert!(capabilities.iter().any(|c| matches!(
        c.r#type,
        Some(Type::Service(s)) if s.r#type == service::Type::ControllerService as i32
    )));
    let probe = identity.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true));

    let mut node = harness.node();
    let info = node
        .node_get_info(NodeGetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-a");
    let capabilities = node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let rpcs: Vec<i32> = capabilities
        .iter()
        .filter_map(|c| {
            c.r#type
                .as_ref()
                .map(|node_service_capability::Type::Rpc(rpc)| rpc.r#type)
        })
        .collect();
    assert_eq!(
        rpcs,
        [node_service_capability::rpc::Type::GetVolumeStats as i32]
    );

    // A corrupt index makes the store unusable: the probe says so.
    std::fs::write(harness.store_root.join("artifacts/index.json"), b"not json").unwrap();
    let status = identity.probe(ProbeRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_path_that_is_not_a_socket_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin/csi.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, b"important").unwrap();
    let driver = ferry_csi::Driver::new(ferry_csi::DriverOptions {
        store_root: dir.path().join("store"),
        node_id: "n".into(),
        driver_name: "d".into(),
        policy: None,
        registries: ferry_csi::RegistrySettings::default(),
        concurrency: 1,
    })
    .unwrap();
    let error = ferry_csi::serve(driver, &format!("unix://{}", socket.display()), async {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("other than a socket"), "{error}");
    assert_eq!(std::fs::read(&socket).unwrap(), b"important");
    assert!(ferry_csi::socket_path("tcp://0.0.0.0:1").is_err());
    assert_eq!(
        ferry_csi::socket_path("unix:///csi/csi.sock").unwrap(),
        std::path::PathBuf::from("/csi/csi.sock")
    );
}
