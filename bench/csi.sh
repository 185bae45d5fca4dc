#!/usr/bin/env bash
# Benchmark: publishing a model through `ferry csi`'s socket, as kubelet
# does (not a timed test). Needs root (it mounts), python3 with grpcio and
# grpcio-tools (the stubs are compiled from crates/ferry-csi/proto).
#
#   bench/csi.sh [--size-gb 2] [--pods 10]
#
# A model from ferry-gen-model (4 shards, seed 1) is packed and pushed to
# `ferry serve` on loopback. Then, each on a fresh store:
#   ferry pull            the pull alone (what a first publish must at least do)
#   publish, pod 1        NodePublishVolume: resolve, pull, check, mount
#   publish, pod 2..N     the same model for more pods on the node
#   copy per volume       what a driver that gives each volume its own
#                         directory does for pods 2..N: `cp -r` of the model
# Goal: pods 2..N under 50 ms each, and no bytes added on disk.
#
# Times are wall clock (the client's view of the gRPC call), medians for
# pods 2..N; disk is what `du` counts under the store (or the copies).
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=2 pods=10
while [ $# -gt 0 ]; do
  case "$1" in
    --size-gb) size_gb=$2; shift 2 ;;
    --pods) pods=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (it mounts)" >&2; exit 1; }
python3 -c 'import grpc, grpc_tools' 2>/dev/null \
  || { echo "needs python3 with grpcio and grpcio-tools" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-csi.XXXXXX")
pids=()
cleanup() {
  for m in $(awk -v w="$work" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet -p ferry -p ferry-testkit
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
ferry=$bin/ferry

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
"$ferry" serve --addr "$host" --root "$work/registry" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

"$bin/ferry-gen-model" --out "$work/model" --total-gb "$size_gb" --shards 4 --seed 1 >/dev/null 2>&1
ref=$host/bench/model:v1
"$ferry" --store "$work/publisher" pack "$work/model" -t "$ref" -q >/dev/null
"$ferry" --store "$work/publisher" push "$ref" --plain-http -q >/dev/null
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/policy.json"

ms_since() { echo "scale=1; ($(date +%s%N) - $1) / 1000000" | bc; }
du_bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

sync; start=$(date +%s%N)
"$ferry" --store "$work/pull-only" pull "$ref" --plain-http -q --policy "$work/policy.json" >/dev/null
pull_ms=$(ms_since "$start")

python3 -m grpc_tools.protoc -I crates/ferry-csi/proto --python_out="$work" \
  --grpc_python_out="$work" crates/ferry-csi/proto/csi.proto
"$ferry" --store "$work/node" csi --endpoint "unix://$work/csi.sock" --node-id bench \
  --plain-http --policy "$work/policy.json" >"$work/csi.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/csi.sock" ] && break; sleep 0.1; done

sync
python3 - "$work" "$ref" "$pods" >"$work/publish.txt" <<'PY'
import os, sys, time
work, ref, pods = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, work)
import grpc, csi_pb2 as pb, csi_pb2_grpc as rpc
channel = grpc.insecure_channel("unix://" + work + "/csi.sock",
                                options=[("grpc.default_authority", "localhost")])
node = rpc.NodeStub(channel)
mode = pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY)
capability = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(), access_mode=mode)
for pod in range(1, pods + 1):
    target = f"{work}/pods/pod-{pod}/volumes/model"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    started = time.monotonic()
    node.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id=f"vol-{pod}", target_path=target, volume_capability=capability,
        volume_context={"reference": ref, "csi.storage.k8s.io/ephemeral": "true"}))
    print(pod, round((time.monotonic() - started) * 1000, 1))
PY
node_bytes_after_first=$(du_bytes "$work/node")
first_ms=$(awk '$1 == 1 {print $2}' "$work/publish.txt")
more_ms=$(awk '$1 > 1 {print $2}' "$work/publish.txt" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
max_ms=$(awk '$1 > 1 {print $2}' "$work/publish.txt" | sort -g | tail -1)
node_bytes=$(du_bytes "$work/node")
files=$(find "$work/pods/pod-$pods/volumes/model" -type f | wc -l)

# A directory per volume, from a warm copy of the model's files.
"$ferry" --store "$work/node" extract "$ref" "$work/extracted" >/dev/null
copies=()
mkdir -p "$work/copies"
for pod in $(seq 2 "$pods"); do
  sync; start=$(date +%s%N)
  cp -r "$work/extracted" "$work/copies/vol-$pod"
  sync
  copies+=("$(ms_since "$start")")
done
copy_ms=$(printf '%s\n' "${copies[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
copy_bytes=$(du_bytes "$work/copies")

model_bytes=$(du_bytes "$work/model")
printf '\nmodel: %s GiB in %s files, %s pods on one node\n\n' "$size_gb" "$files" "$pods"
printf '%-44s %12s %16s\n' "" "wall ms" "disk added"
printf '%-44s %12s %16s\n' "ferry pull (alone)" "$pull_ms" "$(du_bytes "$work/pull-only")"
printf '%-44s %12s %16s\n' "publish, pod 1 (pull + check + mount)" "$first_ms" "$node_bytes_after_first"
printf '%-44s %12s %16s\n' "publish, pods 2..$pods (median; max $max_ms)" "$more_ms" "$((node_bytes - node_bytes_after_first))"
printf '%-44s %12s %16s\n' "copy per volume, pods 2..$pods (median)" "$copy_ms" "$copy_bytes"
printf '\nmodel files: %s bytes\n' "$model_bytes"
