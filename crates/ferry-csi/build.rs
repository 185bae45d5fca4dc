//! Compiles the CSI protocol (proto/csi.proto, package csi.v1) with protox,
//! a protobuf compiler written in Rust, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/csi.proto");
    let descriptors = protox::compile(["csi.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The client is what the tests (and kubelet's side) speak.
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
