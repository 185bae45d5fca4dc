//! `ferry csi` driven by a Python gRPC client (grpcio, the stubs compiled
//! from the repository's proto by grpcio-tools), the way kubelet drives a
//! plugin: over its unix socket, real mounts, then SIGTERM.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// The client: identity, publish, read, refused write, stats, hostile
/// requests, unpublish. Prints `ok` when every check passed.
const CLIENT: &str = r#"
import os, sys
import grpc
sys.path.insert(0, sys.argv[1])
import csi_pb2 as pb, csi_pb2_grpc as rpc

socket, pods, expected = sys.argv[2], sys.argv[3], sys.argv[4]
# grpc-go (kubelet) names unix peers "localhost"; grpcio would send the path.
channel = grpc.insecure_channel("unix://" + socket, options=[("grpc.default_authority", "localhost")])
grpc.channel_ready_future(channel).result(timeout=10)
identity, node = rpc.IdentityStub(channel), rpc.NodeStub(channel)

info = identity.GetPluginInfo(pb.GetPluginInfoRequest())
assert info.name == "csi.ferry.dev", info
assert identity.Probe(pb.ProbeRequest()).ready.value
assert node.NodeGetInfo(pb.NodeGetInfoRequest()).node_id == "node-py"

reader = pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_READER_ONLY)
capability = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(), access_mode=reader)
target = os.path.join(pods, "pod-1", "volumes", "model")
os.makedirs(os.path.dirname(target))
context = {"reference": "localhost/models/m:v1", "pullPolicy": "Never",
           "csi.storage.k8s.io/ephemeral": "true"}
request = pb.NodePublishVolumeRequest(volume_id="csi-1", target_path=target,
                                      volume_capability=capability, volume_context=context)
node.NodePublishVolume(request)
node.NodePublishVolume(request)  # idempotent
with open(os.path.join(target, "config.json")) as f:
    assert f.read() == expected, "wrong content"
try:
    open(os.path.join(target, "new"), "w")
    raise AssertionError("a write went through")
except OSError as e:
    assert e.errno == 30, e  # EROFS

stats = node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id="csi-1", volume_path=target))
assert any(u.unit == pb.VolumeUsage.BYTES and u.used > 0 for u in stats.usage), stats

for hostile in ["../../etc", "relative", ""]:
    try:
        node.NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id="h", target_path=hostile, volume_capability=capability, volume_context=context))
        raise AssertionError("accepted " + hostile)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (hostile, e.code())
try:
    node.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id="other", target_path=target, volume_capability=capability, volume_context=context))
    raise AssertionError("a second volume at one target")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.ALREADY_EXISTS, e.code()

node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id="csi-1", target_path=target))
assert not os.path.exists(target), "the target is left"
node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id="csi-1", target_path=target))
print("ok")
"#;

#[test]
fn a_python_grpc_client_publishes_and_unpublishes_through_ferry_csi() {
    if !ferry_testkit::require::require_root("the CSI driver mounts volumes")
        || !ferry_testkit::require::require_python(&["grpc", "grpc_tools"])
    {
        return;
    }
    let cli = Cli::new();
    tiny_model(&cli.path("model"), 21);
    cli.ferry.pack(&cli.path("model"), "localhost/models/m:v1");
    let expected = std::fs::read_to_string(cli.path("model/config.json")).unwrap();

    let stubs = cli.path("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferry-csi/proto");
    let compiled = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto)
        .arg(format!("--python_out={}", s(&stubs)))
        .arg(format!("--grpc_python_out={}", s(&stubs)))
        .arg(proto.join("csi.proto"))
        .output()
        .unwrap();
    assert_success(&compiled, "grpc_tools.protoc csi.proto");

    let policy = cli.path("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let socket = cli.path("plugin/csi.sock");
    let driver = KillOnDrop::spawn(cli.command(&[
        "csi",
        "--endpoint",
        &format!("unix://{}", s(&socket)),
        "--node-id",
        "node-py",
        "--policy",
        s(&policy),
    ]));
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = cli.path("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let client = Command::new("python3")
        .arg(&script)
        .arg(&stubs)
        .arg(&socket)
        .arg(cli.path("pods"))
        .arg(&expected)
        .output()
        .unwrap();
    let stopped = driver.terminate();
    assert_success(&client, "the Python CSI client");
    assert_eq!(String::from_utf8_lossy(&client.stdout).trim(), "ok");
    assert!(
        stopped.status.success(),
        "SIGTERM stops ferry csi cleanly: {}",
        show(&stopped)
    );
    assert!(!socket.exists(), "the socket is removed at exit");
}
