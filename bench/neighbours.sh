#!/usr/bin/env bash
# Benchmark: models in the neighbours' shapes.
#
#   bench/neighbours.sh [--size-gb 2] [--runs 3]
#
# Part 1, a Hugging Face hub cache: a model of --size-gb in 4 shards laid out
# as `models--org--name/snapshots/REV`, every file a link into `blobs/`.
# `ferry pack SNAPSHOT` against `ferry pack` of the same files as a plain
# directory, and `cp -rL && sync` (what resolving the links by hand costs
# before any packer can read them). Goal: the snapshot packs as fast as a
# plain directory.
#
# Part 2, a KitOps ModelKit of the same model (model directory in one tar
# layer, as `kit pack` writes it) in the store: `ferry convert` to ModelPack
# against the two-step way (`ferry extract` then `ferry pack`). Goal: convert
# no slower than the two steps, peak RSS flat (< 64 MiB) whatever the size.
# KitOps' own `kit` binary is not packaged for Debian, so it is not run here.
#
# Prints median wall time, CPU (user+sys), peak RSS and throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=2 runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size-gb) size_gb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }
cargo build --release --quiet
cargo build --release --quiet -p ferry-testkit
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
ferry=$bin/ferry
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
serve_pid=""
cleanup() { if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

model=$work/model
"$bin/ferry-gen-model" --out "$model" --total-gb "$size_gb" --shards 4 --seed 1 >/dev/null
bytes=$(du -sb "$model" | cut -f1)

# The hub cache layout: blobs named by their SHA-256, the snapshot links.
repo=$work/hub/models--bench-org--tiny
rev=0123456789abcdef0123456789abcdef01234567
mkdir -p "$repo/blobs" "$repo/snapshots/$rev" "$repo/refs"
echo -n "$rev" > "$repo/refs/main"
(cd "$model" && find . -type f | sed 's|^\./||') | while read -r rel; do
  sum=$(sha256sum "$model/$rel" | cut -d' ' -f1)
  cp "$model/$rel" "$repo/blobs/$sum"
  mkdir -p "$(dirname "$repo/snapshots/$rev/$rel")"
  up=$(echo "$rel" | awk -F/ '{s="../.."; for (i=1;i<NF;i++) s=s"/.."; print s}')
  ln -s "$up/blobs/$sum" "$repo/snapshots/$rev/$rel"
done
snapshot=$repo/snapshots/$rev

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A WALLS CPUS RSSS
# measure NAME PREP CMD...: PREP (a shell command, untimed), then one timed run of CMD.
measure() {
  local name=$1 prep=$2; shift 2
  sh -c "$prep"; sync
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/cmd.out" 2>&1 \
    || { cat "$work/cmd.out" >&2; exit 1; }
  read -r wall user sys rss < "$work/time"
  WALLS[$name]+="$wall " CPUS[$name]+="$(echo "$user + $sys" | bc) " RSSS[$name]+="$rss "
}
# report NAME: prints NAME's medians; keeps wall and RSS (MiB) in LAST_WALL, LAST_RSS.
report() {
  local name=$1 w c r
  # shellcheck disable=SC2086
  w=$(median ${WALLS[$name]}); c=$(median ${CPUS[$name]}); r=$(median ${RSSS[$name]})
  printf '%-40s %8.2f s %8.2f s %9.1f MiB %9.0f MB/s\n' "$name" "$w" "$c" "$(echo "$r / 1024" | bc -l)" \
    "$(echo "$bytes / 1000000 / $w" | bc -l)"
  LAST_WALL=$w LAST_RSS=$(echo "$r / 1024" | bc -l)
}
header() { printf '%-40s %10s %10s %13s %14s\n' command wall cpu "peak RSS" throughput; }
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }

cat "$model"/* "$repo"/blobs/* >/dev/null # a warm page cache for everyone
echo "== 1. Hugging Face hub cache: $bytes bytes in 4 shards; $runs rounds, commands alternating, median"
header
# The commands alternate within each round: the disk's speed drifts.
for _ in $(seq "$runs"); do
  measure "ferry pack SNAPSHOT (links into blobs/)" "rm -rf '$work/store'" \
    "$ferry" --store "$work/store" pack "$snapshot" -t bench/hf:v1 -q
  measure "ferry pack DIR (plain files)" "rm -rf '$work/store'" \
    "$ferry" --store "$work/store" pack "$model" -t bench/hf:v1 -q
  measure "cp -rL SNAPSHOT && sync" "rm -rf '$work/copy'" \
    sh -c "cp -rL '$snapshot' '$work/copy' && sync"
done
report "ferry pack SNAPSHOT (links into blobs/)"; snapshot_wall=$LAST_WALL
report "ferry pack DIR (plain files)"; plain_wall=$LAST_WALL
report "cp -rL SNAPSHOT && sync"
printf '  %-52s %s\n' "snapshot within 10% of a plain directory" \
  "$(verdict "$(echo "$snapshot_wall <= $plain_wall * 1.10" | bc)")"

# A ModelKit of the model: the model directory as one tar layer (what
# `kit pack` writes for `model: {path: .}`), the Kitfile as the config.
python3 - "$model" "$work/layout" <<'EOF'
import hashlib, io, json, os, sys, tarfile
model, layout = sys.argv[1], sys.argv[2]
os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)
def put(data=None, path=None):
    """Stores bytes, or moves a file, under its digest."""
    h = hashlib.sha256()
    if path is None:
        h.update(data)
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    target = f"{layout}/blobs/sha256/{h.hexdigest()}"
    if path is None:
        open(target, "wb").write(data)
    else:
        os.replace(path, target)
    return f"sha256:{h.hexdigest()}", os.path.getsize(target)
tmp = f"{layout}/layer.tar"
with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
    for name in sorted(os.listdir(model)):
        tar.add(f"{model}/{name}", arcname=name)
layer_digest, layer_size = put(path=tmp)
kitfile = {"manifestVersion": "1.0.0",
           "package": {"name": "bench-kit", "version": "1.0.0"},
           "model": {"name": "bench", "path": ".", "format": "safetensors",
                     "framework": "pytorch", "digest": layer_digest}}
config = json.dumps(kitfile).encode()
config_digest, config_size = put(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.kitops.modelkit.config.v1+json",
               "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": "application/vnd.kitops.modelkit.model.v1.tar",
                "digest": layer_digest, "size": layer_size}]}).encode()
manifest_digest, manifest_size = put(manifest)
open(f"{layout}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(f"{layout}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
    "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ferry" --store "$work/serve-store" serve --addr "127.0.0.1:$port" --root "$work/registry" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
kit=127.0.0.1:$port/bench/kit:v1
"$ferry" --store "$work/kits" copy -q --plain-http "oci:$work/layout:v1" "$kit" >/dev/null
# Each run starts from a store holding only the pulled ModelKit.
"$ferry" --store "$work/kits" pull -q --plain-http "$kit" >/dev/null
fresh_kits="rm -rf '$work/store' '$work/out' && cp -a '$work/kits' '$work/store'"

echo
echo "== 2. KitOps ModelKit -> ModelPack: $bytes bytes, one tar layer; $runs rounds, alternating, median"
header
for _ in $(seq "$runs"); do
  measure "ferry convert KIT REF" "$fresh_kits" \
    "$ferry" --store "$work/store" convert "$kit" bench/converted:v1
  measure "ferry extract KIT DIR && ferry pack DIR" "$fresh_kits" \
    sh -c "'$ferry' --store '$work/store' extract '$kit' '$work/out' >/dev/null && '$ferry' --store '$work/store' pack '$work/out' -t bench/converted:v1 -q"
  measure "ferry convert KIT dir:DIR" "$fresh_kits" \
    "$ferry" --store "$work/store" convert "$kit" "dir:$work/out"
done
report "ferry convert KIT REF"; convert_wall=$LAST_WALL convert_rss=$LAST_RSS
report "ferry extract KIT DIR && ferry pack DIR"; steps_wall=$LAST_WALL
report "ferry convert KIT dir:DIR"
printf '  %-52s %s\n' "convert no slower than extract + pack" \
  "$(verdict "$(echo "$convert_wall <= $steps_wall * 1.05" | bc)")"
printf '  %-52s %s\n' "convert peak RSS < 64 MiB" \
  "$(verdict "$(echo "$convert_rss < 64" | bc)")"
