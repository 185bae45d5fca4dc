#!/usr/bin/env bash
# Benchmark: pulling large models, over a slow long-distance link and over
# loopback, side by side with skopeo, the Python `oras` client and curl.
#
#   bench/pull.sh [--runs 3] [--wan-runs 1] [--rate-mb 25] [--delay-ms 40]
#                 [--connections 8]
#
# Part 1 (a long-distance link): Debian's distribution 2.8 on loopback
# behind bench/throttle-proxy.py, which holds every TCP connection to
# --rate-mb MB/s and delays its start by --delay-ms (what one connection
# across regions or through a cloud load balancer carries). A model whose
# weights are one 1 GiB file is pulled by ferry (ranged, --connections per
# blob), ferry over one connection per blob, skopeo and oras-py.
# Goals: ferry >= 4x skopeo and oras-py, and >= 80% of rate x connections.
#
# Part 2 (loopback, no limit): a 2 GiB model in 4 shards. ferry pull into the
# store (every blob fsynced before it is named; the probe finds one
# connection fast enough), ferry with ranges forced, against curl fetching the
# same blobs with 4 parallel transfers, with and without a `sync` after it,
# skopeo and oras-py; then the same while another process writes 1 GiB to
# the same disk (dd, fsynced), the case where a flush per blob hurts.
# Goal: ferry's durable pull no slower than curl x4 + sync.
#
# Part 3: ferry's peak RSS with 1, 4, 8 and 16 connections per blob (all
# blobs share --max-connections, default 16), and with 64 connections.
# Goal: under 64 MiB, flat with the default cap.
#
# Prints median wall time, CPU (user+sys), peak RSS and throughput
# (bytes/1e6/s over the artifact's config and layers) per command.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 wan_runs=1 rate_mb=25 delay_ms=40 connections=8
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --wan-runs) wan_runs=$2; shift 2 ;;
    --rate-mb) rate_mb=$2; shift 2 ;;
    --delay-ms) delay_ms=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
need() { command -v "$1" >/dev/null || { echo "needs $1 ($2)" >&2; exit 1; }; }
need /usr/bin/time "apt-get install time"
need docker-registry "apt-get install docker-registry"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need skopeo "apt-get install skopeo"
python3 -c 'import oras.client' 2>/dev/null || { echo "needs the Python oras client (pip install oras)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
reg_pid="" proxy_pid="" noise_pid=""
stop() { if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() { stop "$noise_pid"; stop "$proxy_pid"; stop "$reg_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
cargo build --release --quiet -p ferry-testkit
gen_model=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry-gen-model
export FERRY_HOME=$work/home # nothing outside $work is touched

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
host=127.0.0.1:$(free_port)
slow=127.0.0.1:$(free_port)

mkdir -p "$work/registry"
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $host
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for i in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$host/v2/" || true)" = 200 ] && break
  kill -0 "$reg_pid" 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
  sleep 0.1
done
python3 bench/throttle-proxy.py --listen "$slow" --upstream "$host" \
  --rate-mb "$rate_mb" --delay-ms "$delay_ms" >"$work/proxy.out" 2>&1 &
proxy_pid=$!
for i in $(seq 100); do grep -q ready "$work/proxy.out" 2>/dev/null && break; sleep 0.05; done

# pack_push NAME GB SHARDS: generates a model, pushes it as bench/NAME:v1 and
# writes its blobs ("hex size" lines) to $work/NAME.blobs.
pack_push() {
  local name=$1 gb=$2 shards=$3
  "$gen_model" --out "$work/$name" --total-gb "$gb" --shards "$shards" --seed 3 \
    >/dev/null 2>"$work/gen.log" || { cat "$work/gen.log" >&2; exit 1; }
  "$ferry" --store "$work/src-store" pack "$work/$name" -t "$host/bench/$name:v1" -q >/dev/null
  "$ferry" --store "$work/src-store" push "$host/bench/$name:v1" -q >/dev/null
  python3 - "$work/src-store/artifacts" "$host/bench/$name:v1" > "$work/$name.blobs" <<'EOF'
import json, sys
root, ref = sys.argv[1], sys.argv[2]
index = json.load(open(f"{root}/index.json"))
desc = next(m for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)
manifest = json.load(open(f"{root}/blobs/{desc['digest'].replace(':', '/')}"))
for d in [manifest["config"]] + manifest["layers"]:
    print(d["digest"].split(":", 1)[1], d["size"])
EOF
  rm -rf "$work/$name"
}

oras_pull='
import sys, oras.client
target, out = sys.argv[1], sys.argv[2]
c = oras.client.OrasClient(hostname=target.split("/")[0], insecure=True)
c.pull(target=target, outdir=out)
'
# curl-get.sh HEX: one blob of bench/wide into $OUT.
cat > "$work/curl-get.sh" <<'EOF'
#!/bin/sh
exec curl -sSfL -o "$OUT/$1" "$BASE/v2/bench/wide/blobs/sha256:$1"
EOF
chmod +x "$work/curl-get.sh"

fresh() { rm -rf "$work/out" "$work/store"; mkdir -p "$work/out"; sync; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A WALLS CPUS RSSS WALL MBS RSS
# measure NAME CMD...: one timed run of CMD after `fresh`, kept under NAME.
measure() {
  local name=$1; shift
  local wall user sys rss
  fresh
  if ! /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/cmd.out" 2>&1; then
    echo "$name failed:" >&2; tail -n 20 "$work/cmd.out" "$work/time" >&2; exit 1
  fi
  read -r wall user sys rss < "$work/time"
  WALLS[$name]+="$wall " CPUS[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') " RSSS[$name]+="$rss "
}
# report NAME BYTES: prints NAME's medians, keeps them in WALL/MBS/RSS (RSS in MiB).
report() {
  local name=$1 bytes=$2 w c r
  # shellcheck disable=SC2086 # the lists are space-separated numbers
  w=$(median ${WALLS[$name]}); c=$(median ${CPUS[$name]}); r=$(median ${RSSS[$name]})
  r=$(awk -v r="$r" 'BEGIN {print r / 1024}')
  WALL[$name]=$w RSS[$name]=$r
  MBS[$name]=$(awk -v b="$bytes" -v w="$w" 'BEGIN {if (w < 0.01) w = 0.01; print b / 1e6 / w}')
  printf '%-44s %8.2f s %8.2f s %9.1f MiB %9.0f MB/s\n' "$name" "$w" "$c" "$r" "${MBS[$name]}"
}
# run NAME RUNS BYTES CMD...: RUNS measurements in a row, then the report.
run() {
  local name=$1 n=$2 bytes=$3; shift 3
  for _ in $(seq "$n"); do measure "$name" "$@"; done
  report "$name" "$bytes"
}
header() { printf '%-44s %10s %10s %13s %14s\n' command wall cpu "peak RSS" throughput; }
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }
goal() { printf '  %-52s %-34s %s\n' "$1" "$2" "$(verdict "$3")"; }

pack_push long 1 1
pack_push wide 2 4
long_bytes=$(awk '{s += $2} END {print s}' "$work/long.blobs")
wide_bytes=$(awk '{s += $2} END {print s}' "$work/wide.blobs")
cut -d' ' -f1 "$work/wide.blobs" > "$work/wide.digests"
export BASE=http://$host OUT=$work/out

echo "registry: docker-registry $(docker-registry --version | awk '{print $3}') on $host; $(nproc) cores"
echo
echo "1. long-distance link: $rate_mb MB/s and ${delay_ms} ms per TCP connection (bench/throttle-proxy.py);"
echo "   model: 1 GiB weights in one file ($long_bytes bytes); $wan_runs run(s), median"
header
run "ferry pull ($connections connections per blob)" "$wan_runs" "$long_bytes" \
  "$ferry" --store "$work/store" pull "$slow/bench/long:v1" -q --connections-per-blob "$connections"
run "ferry pull --extract ($connections connections)" "$wan_runs" "$long_bytes" \
  "$ferry" --store "$work/store" pull "$slow/bench/long:v1" -q --connections-per-blob "$connections" \
  --extract "$work/out/files"
run "ferry pull (1 connection per blob)" "$wan_runs" "$long_bytes" \
  "$ferry" --store "$work/store" pull "$slow/bench/long:v1" -q --connections-per-blob 1
run "skopeo copy registry -> oci: (slow link)" "$wan_runs" "$long_bytes" \
  skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$slow/bench/long:v1" "oci:$work/out/layout:m"
run "oras-py pull (slow link)" "$wan_runs" "$long_bytes" python3 -c "$oras_pull" "$slow/bench/long:v1" "$work/out"

echo
echo "2. loopback, no limit: 2 GiB model in 4 shards ($wide_bytes bytes); $runs rounds, the"
echo "   commands alternating within each round (the disk's speed drifts); median"
header
curl_sync="xargs -a '$work/wide.digests' -n1 -P4 '$work/curl-get.sh' && sync"
round() {
  local suffix=$1
  measure "ferry pull (durable)$suffix" "$ferry" --store "$work/store" pull "$host/bench/wide:v1" -q
  measure "curl, 4 parallel + sync$suffix" sh -c "$curl_sync"
  measure "ferry pull, ranges forced$suffix" "$ferry" --store "$work/store" pull "$host/bench/wide:v1" -q \
    --split-below 0
}
for _ in $(seq "$runs"); do
  round ""
  measure "curl, 4 parallel (not durable)" xargs -a "$work/wide.digests" -n1 -P4 "$work/curl-get.sh"
  measure "skopeo copy registry -> oci:" skopeo --insecure-policy copy -q --src-tls-verify=false \
    "docker://$host/bench/wide:v1" "oci:$work/out/layout:m"
  measure "oras-py pull" python3 -c "$oras_pull" "$host/bench/wide:v1" "$work/out"
done
for name in "ferry pull (durable)" "ferry pull, ranges forced" "curl, 4 parallel + sync" \
  "curl, 4 parallel (not durable)" "skopeo copy registry -> oci:" "oras-py pull"; do
  report "$name" "$wide_bytes"
done
# Another writer keeps the disk busy meanwhile (1 GiB, fsynced, in a loop).
( while :; do dd if=/dev/zero of="$work/noise" bs=1M count=1024 conv=fsync status=none; done ) &
noise_pid=$!
for _ in $(seq "$runs"); do round ", disk busy"; done
stop "$noise_pid"; noise_pid=""; rm -f "$work/noise"
for name in "ferry pull (durable)" "ferry pull, ranges forced" "curl, 4 parallel + sync"; do
  report "$name, disk busy" "$wide_bytes"
done

echo
echo "3. ferry's memory by connections per blob (loopback, 2 GiB model, ranges forced with"
echo "   --split-below 0; all blobs share --max-connections, default 16)"
header
for n in 1 4 8 16; do
  run "ferry pull, $n connections per blob" 1 "$wide_bytes" \
    "$ferry" --store "$work/store" pull "$host/bench/wide:v1" -q --connections-per-blob "$n" --split-below 0
done
run "ferry pull, 16 per blob, --max-connections 64" 1 "$wide_bytes" \
  "$ferry" --store "$work/store" pull "$host/bench/wide:v1" -q --connections-per-blob 16 --max-connections 64 \
  --split-below 0
run "ferry pull --extract, 8 per blob" 1 "$wide_bytes" \
  "$ferry" --store "$work/store" pull "$host/bench/wide:v1" -q --extract "$work/out/files" --split-below 0

fast=${MBS["ferry pull ($connections connections per blob)"]}
ceiling=$(awk -v r="$rate_mb" -v c="$connections" 'BEGIN {print r * c}')
rss=$(for n in 1 4 8 16; do echo "${RSS["ferry pull, $n connections per blob"]}"; done | sort -g | tail -n1)
rss_extract=${RSS["ferry pull --extract, 8 per blob"]}
echo
echo "goals:"
for peer in "skopeo copy registry -> oci: (slow link)" "oras-py pull (slow link)"; do
  goal "ferry >= 4x ${peer% (slow link)} (slow link)" \
    "$(awk -v a="$fast" -v b="${MBS[$peer]}" 'BEGIN {printf "%.1fx (%.0f vs %.0f MB/s)", a / b, a, b}')" \
    "$(awk -v a="$fast" -v b="${MBS[$peer]}" 'BEGIN {print (a >= 4 * b)}')"
done
goal "ferry >= 80% of $rate_mb MB/s x $connections connections" \
  "$(awk -v a="$fast" -v c="$ceiling" 'BEGIN {printf "%.0f%% (%.0f of %.0f MB/s)", 100 * a / c, a, c}')" \
  "$(awk -v a="$fast" -v c="$ceiling" 'BEGIN {print (a >= 0.8 * c)}')"
for suffix in "" ", disk busy"; do
  f=${WALL["ferry pull (durable)$suffix"]} c=${WALL["curl, 4 parallel + sync$suffix"]}
  goal "durable ferry pull <= curl x4 + sync$suffix" "$(printf '%.2f s vs %.2f s' "$f" "$c")" \
    "$(awk -v f="$f" -v c="$c" 'BEGIN {print (f <= c)}')"
done
goal "ferry pull peak RSS < 64 MiB, 1..16 per blob" "$(printf '%.1f MiB' "$rss")" \
  "$(awk -v a="$rss" 'BEGIN {print (a < 64)}')"
goal "ferry pull --extract peak RSS < 64 MiB" "$(printf '%.1f MiB' "$rss_extract")" \
  "$(awk -v a="$rss_extract" 'BEGIN {print (a < 64)}')"
