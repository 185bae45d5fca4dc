//! ferry-csi: a Kubernetes CSI v1 plugin that mounts ModelPack artifacts
//! into pods with the `ferry mount` engine.
