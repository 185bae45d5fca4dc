#!/usr/bin/env bash
# Benchmark: `ferry push` / `ferry pull` of a 2 GiB bf16 model on loopback
# against Debian's distribution 2.8 (`docker-registry`), side by side with the
# Python `oras` client, `skopeo copy` and plain `curl` of the same blobs (the
# ceiling: one POST + one monolithic PUT per blob, one GET per blob).
#
#   bench/transfer.sh [--size-gb 2] [--runs 3] [--model DIR]
#
# Every push goes to a registry with fresh, empty storage; every pull goes to
# a fresh local store or directory. Prints the median wall time, CPU time
# (user+sys) and peak RSS of each client, and throughput in MB/s
# (bytes/1e6/s, bytes = the artifact's layers and config). The re-push of an
# unchanged model (every blob already there) is timed only.
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=2 runs=3 model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-gb) size_gb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
need() { command -v "$1" >/dev/null || { echo "needs $1 ($2)" >&2; exit 1; }; }
need /usr/bin/time "apt-get install time"
need docker-registry "apt-get install docker-registry"
need curl "apt-get install curl"
need python3 "apt-get install python3"
have_skopeo=1 have_oras=1
command -v skopeo >/dev/null || { have_skopeo=0; echo "skopeo not found (apt-get install skopeo): skipping its rows" >&2; }
python3 -c 'import oras.client' 2>/dev/null || { have_oras=0; echo "Python oras not found (pip install oras): skipping its rows" >&2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
reg_pid=""
cleanup() {
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
cargo build --release --quiet -p ferry-testkit
gen_model=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry-gen-model
export FERRY_HOME=$work/home # nothing outside $work is touched

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
base=http://$host

# start_registry: (re)starts docker-registry on $port with empty storage.
start_registry() {
  stop_registry
  rm -rf "$work/registry"; mkdir -p "$work/registry"
  cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $host
EOF
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  reg_pid=$!
  local i
  for i in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/v2/" || true)" = 200 ]; then return 0; fi
    kill -0 "$reg_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "docker-registry did not come up on $host:" >&2; cat "$work/registry.log" >&2; exit 1
}
stop_registry() {
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; reg_pid=""; fi
}

if [ -z "$model" ]; then
  model=$work/model
  "$gen_model" --out "$model" --total-gb "$size_gb" --shards 4 --seed 1 \
    >/dev/null 2>"$work/gen.log" || { cat "$work/gen.log" >&2; exit 1; }
fi
model=$(cd "$model" && pwd)
ref=$host/bench/model:v1
store=$work/store
"$ferry" --store "$store" pack "$model" -t "$ref" -q >/dev/null

# The artifact's blobs (config + layers) as "hex size" lines, from the store.
python3 - "$store/artifacts" "$ref" > "$work/blobs" <<'EOF'
import json, sys
root, ref = sys.argv[1], sys.argv[2]
index = json.load(open(f"{root}/index.json"))
desc = next(m for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)
manifest = json.load(open(f"{root}/blobs/{desc['digest'].replace(':', '/')}"))
for d in [manifest["config"]] + manifest["layers"]:
    print(d["digest"].split(":", 1)[1], d["size"])
EOF
bytes=$(awk '{s += $2} END {print s}' "$work/blobs")
cut -d' ' -f1 "$work/blobs" > "$work/digests"
nblobs=$(wc -l < "$work/digests")
cat "$model"/* "$store"/artifacts/blobs/sha256/* >/dev/null # warm the page cache for everyone

# curl-blob.sh up|down HEX: one blob with curl (POST + monolithic PUT, or GET).
cat > "$work/curl-blob.sh" <<'EOF'
#!/bin/sh
set -eu
op=$1 hex=$2
if [ "$op" = up ]; then
  loc=$(curl -sSf -X POST -D - -o /dev/null "$BASE/v2/bench/curl/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  case "$loc" in /*) loc=$BASE$loc ;; esac
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  # -T streams the file; --data-binary @FILE would first read it all into memory.
  curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    -T "$BLOBS/$hex" "$loc${sep}digest=sha256:$hex"
else
  curl -sSfL -o "$OUT/$hex" "$BASE/v2/bench/curl/blobs/sha256:$hex"
fi
EOF
chmod +x "$work/curl-blob.sh"
export BASE=$base BLOBS=$store/artifacts/blobs/sha256 OUT=$work/out

oras_push='
import os, sys, oras.client
host, model = sys.argv[1], sys.argv[2]
os.chdir(model)
c = oras.client.OrasClient(hostname=host, insecure=True)
c.push(target=host + "/bench/oras:v1", files=sorted(os.listdir(".")), quiet=True)
'
oras_pull='
import sys, oras.client
host, out = sys.argv[1], sys.argv[2]
c = oras.client.OrasClient(hostname=host, insecure=True)
c.pull(target=host + "/bench/oras:v1", outdir=out)
'

# Preparations run before each timed run (not timed).
fresh_registry() { rm -rf "$work/out"; start_registry; sync; }
fresh_out() { rm -rf "$work/out" "$work/pull-store"; mkdir -p "$work/out"; sync; }
keep() { :; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A WALL MBS RSS
# run NAME PREP TIMEONLY CMD...: PREP, then CMD timed, $runs times; prints the
# medians as one row and keeps them in WALL/MBS/RSS (RSS in MiB).
run() {
  local name=$1 prep=$2 timeonly=$3; shift 3
  local walls=() cpus=() rsss=() wall user sys rss
  for _ in $(seq "$runs"); do
    "$prep"
    if ! /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/cmd.out" 2>&1; then
      echo "$name failed:" >&2; tail -n 20 "$work/cmd.out" "$work/time" >&2; exit 1
    fi
    read -r wall user sys rss < "$work/time"
    walls+=("$wall"); cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')"); rsss+=("$rss")
  done
  local w c r
  w=$(median "${walls[@]}"); c=$(median "${cpus[@]}"); r=$(median "${rsss[@]}")
  r=$(awk -v r="$r" 'BEGIN {print r / 1024}')
  WALL[$name]=$w RSS[$name]=$r
  # /usr/bin/time has 10 ms resolution; floor the wall time there.
  MBS[$name]=$(awk -v b="$bytes" -v w="$w" 'BEGIN {if (w < 0.01) w = 0.01; print b / 1e6 / w}')
  if [ "$timeonly" = 1 ]; then
    printf '%-28s %8.2f s %10s %13s %14s\n' "$name" "$w" - - -
  else
    printf '%-28s %8.2f s %8.2f s %9.1f MiB %9.0f MB/s\n' "$name" "$w" "$c" "$r" "${MBS[$name]}"
  fi
}

printf 'model: %s (%s bytes in %s blobs), registry: docker-registry %s on %s\n' "$model" "$bytes" "$nblobs" \
  "$(docker-registry --version | awk '{print $3}')" "$host"
printf '%s runs each, median; pushes to empty registry storage, pulls to an empty store\n' "$runs"
printf '%-28s %10s %10s %13s %14s\n' command wall cpu "peak RSS" throughput
run "ferry push" fresh_registry 0 "$ferry" --store "$store" push "$ref" -q
run "ferry re-push (unchanged)" keep 1 "$ferry" --store "$store" push "$ref" -q
run "ferry pull" fresh_out 0 "$ferry" --store "$work/pull-store" pull "$ref" -q
if [ "$have_oras" = 1 ]; then
  run "oras-py push" fresh_registry 0 python3 -c "$oras_push" "$host" "$model"
  run "oras-py pull" fresh_out 0 python3 -c "$oras_pull" "$host" "$work/out"
fi
if [ "$have_skopeo" = 1 ]; then
  run "skopeo copy oci: -> registry" fresh_registry 0 skopeo --insecure-policy copy -q --dest-tls-verify=false \
    "oci:$store/artifacts:$ref" "docker://$host/bench/skopeo:v1"
  run "skopeo copy registry -> oci:" fresh_out 0 skopeo --insecure-policy copy -q --src-tls-verify=false \
    "docker://$host/bench/skopeo:v1" "oci:$work/out/layout:m"
fi
run "curl upload, sequential" fresh_registry 0 xargs -a "$work/digests" -n1 -P1 "$work/curl-blob.sh" up
run "curl upload, 4 parallel" fresh_registry 0 xargs -a "$work/digests" -n1 -P4 "$work/curl-blob.sh" up
run "curl download, sequential" fresh_out 0 xargs -a "$work/digests" -n1 -P1 "$work/curl-blob.sh" down
run "curl download, 4 parallel" fresh_out 0 xargs -a "$work/digests" -n1 -P4 "$work/curl-blob.sh" down
stop_registry

# Goals.
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }
pull=${MBS["ferry pull"]} push=${MBS["ferry push"]} curl4=${MBS["curl upload, 4 parallel"]}
repush=${WALL["ferry re-push (unchanged)"]}
rss=$(printf '%s\n' "${RSS["ferry push"]}" "${RSS["ferry pull"]}" "${RSS["ferry re-push (unchanged)"]}" | sort -g | tail -n1)
echo
echo "goals:"
printf '  %-46s %-34s %s\n' "ferry pull >= 750 MB/s" "$(printf '%.0f MB/s' "$pull")" \
  "$(verdict "$(awk -v a="$pull" 'BEGIN {print (a >= 750)}')")"
printf '  %-46s %-34s %s\n' "ferry push >= 90% of 4-parallel curl upload" \
  "$(awk -v a="$push" -v b="$curl4" 'BEGIN {printf "%.0f%% (%.0f of %.0f MB/s)", 100 * a / b, a, b}')" \
  "$(verdict "$(awk -v a="$push" -v b="$curl4" 'BEGIN {print (a >= 0.9 * b)}')")"
printf '  %-46s %-34s %s\n' "ferry peak RSS < 64 MiB (push, pull, re-push)" "$(printf '%.1f MiB' "$rss")" \
  "$(verdict "$(awk -v a="$rss" 'BEGIN {print (a < 64)}')")"
printf '  %-46s %-34s %s\n' "ferry re-push of an unchanged model < 0.2 s" "$(printf '%.2f s' "$repush")" \
  "$(verdict "$(awk -v a="$repush" 'BEGIN {print (a < 0.2)}')")"
