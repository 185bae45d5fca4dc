//! The Controller service: volumes for PersistentVolumeClaims, created
//! idempotently by name, deleted, and their capabilities validated.

use std::collections::HashMap;

use ferry_csi::proto::volume_capability::access_mode::Mode;
use ferry_csi::proto::{
    CreateVolumeRequest, DeleteVolumeRequest, ValidateVolumeCapabilitiesRequest,
};
use tonic::Code;

use crate::common::*;

fn parameters(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn create(name: &str, reference: &str) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        volume_capabilities: vec![capability(Mode::MultiNodeReaderOnly)],
        parameters: parameters(&[
            ("reference", reference),
            ("csi.storage.k8s.io/pvc/name", "models"),
        ]),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_are_created_by_name_deleted_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), None).await;
    let mut controller = harness.controller();
    let volume = controller
        .create_volume(create("pvc-1", "r.example/m:v1"))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert!(
        volume.volume_id.len() <= 128,
        "CSI ids are at most 128 bytes"
    );
    assert_eq!(volume.volume_context["reference"], "r.example/m:v1");
    assert_eq!(volume.volume_context["readOnly"], "true");
    assert!(
        !volume
            .volume_context
            .contains_key("csi.storage.k8s.io/pvc/name"),
        "Kubernetes' own keys are not part of the volume"
    );
    // The same name and parameters: the same volume. Other parameters:
    // AlreadyExists.
    let again = controller
        .create_volume(create("pvc-1", "r.example/m:v1"))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again.volume_id, volume.volume_id);
    let status = controller
        .create_volume(create("pvc-1", "r.example/m:v2"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    for (what, request) in [
        (
            "no name",
            CreateVolumeRequest {
                name: String::new(),
                ..create("x", "r.example/m:v1")
            },
        ),
        (
            "no reference",
            CreateVolumeRequest {
                parameters: HashMap::new(),
                ..create("x", "r.example/m:v1")
            },
        ),
        (
            "no capabilities",
            CreateVolumeRequest {
                volume_capabilities: vec![],
                ..create("x", "r.example/m:v1")
            },
        ),
        (
            "multi-node writers",
            CreateVolumeRequest {
                volume_capabilities: vec![capability(Mode::MultiNodeMultiWriter)],
                ..create("x", "r.example/m:v1")
            },
        ),
    ] {
        let status = controller.create_volume(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }

    // Validation: reader modes are confirmed, multi-node writers are not;
    // a static volume (any id) is known by its context.
    let validate = |id: &str, mode: Mode, context: HashMap<String, String>| {
        ValidateVolumeCapabilitiesRequest {
            volume_id: id.into(),
            volume_context: context,
            volume_capabilities: vec![capability(mode)],
            ..Default::default()
        }
    };
    let confirmed = controller
        .validate_volume_capabilities(validate(
            &volume.volume_id,
            Mode::MultiNodeReaderOnly,
            HashMap::new(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(confirmed.confirmed.is_some(), "{confirmed:?}");
    let refused = controller
        .validate_volume_capabilities(validate(
            &volume.volume_id,
            Mode::MultiNodeMultiWriter,
            HashMap::new(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        refused.confirmed.is_none() && !refused.message.is_empty(),
        "{refused:?}"
    );
    let static_volume = controller
        .validate_volume_capabilities(validate(
            "any-handle",
            Mode::SingleNodeReaderOnly,
            parameters(&[("reference", "r.example/m:v1")]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(static_volume.confirmed.is_some());
    let status = controller
        .validate_volume_capabilities(validate(
            "unknown",
            Mode::SingleNodeReaderOnly,
            HashMap::new(),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: volume.volume_id.clone(),
            secrets: HashMap::new(),
        })
        .await
        .unwrap();
    controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: volume.volume_id.clone(),
            secrets: HashMap::new(),
        })
        .await
        .expect("deleting twice succeeds");
    let status = controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: String::new(),
            secrets: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // Deleted: the name is free for other parameters.
    controller
        .create_volume(create("pvc-1", "r.example/m:v2"))
        .await
        .expect("the name is free again");
    harness.stop().await;
}
