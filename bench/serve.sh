#!/usr/bin/env bash
# Benchmark: the embedded registry (`ferry serve`) against Debian's
# distribution 2.8 (`docker-registry`), side by side in one run, both on
# loopback with fresh storage roots.
#
#   bench/serve.sh [--size-gb 2] [--runs 3] [--rounds 4] [--model DIR]
#
# For each server, with the same clients:
#   push  the model's blobs with curl (POST + one PUT per blob, sequential and
#         4 in parallel; empty storage each run) and with `ferry push`
#   pull  the blobs with curl (GET to files, sequential and 4 in parallel) and
#         with `ferry pull` into an empty store
#   load  32 concurrent curl clients, each fetching one blob --rounds times
#         over one connection: all the same blob, then 32 different blobs
#         (each blob 1/32 of the model, so every load moves rounds x the model)
# while a Python client measures p50/p99 of sequential manifest GETs (one
# keep-alive connection), idle and under each load. Reports client-side
# throughput in MB/s (bytes/1e6/s), the server's CPU seconds (utime+stime from
# /proc/PID/stat) and its peak RSS (VmHWM from /proc/PID/status, reset before
# each run through /proc/PID/clear_refs); medians over --runs.
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=2 runs=3 rounds=4 model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-gb) size_gb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
need() { command -v "$1" >/dev/null || { echo "needs $1 ($2)" >&2; exit 1; }; }
need docker-registry "apt-get install docker-registry"
need curl "apt-get install curl"
need python3 "apt-get install python3"
[ "${BASH_VERSINFO[0]}" -ge 5 ] || { echo "needs bash 5 (EPOCHREALTIME)" >&2; exit 1; }

servers=(ferry dist)
declare -A PID PORT LABEL=([ferry]="ferry serve" [dist]="distribution $(docker-registry --version | awk '{print $3}')")
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
stop_server() {
  local pid=${PID[$1]:-}
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; PID[$1]=""; fi
}
cleanup() {
  local s
  for s in "${servers[@]}"; do stop_server "$s"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
cargo build --release --quiet -p ferry-testkit
gen_model=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry-gen-model
export FERRY_HOME=$work/home # nothing outside $work is touched

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for s in "${servers[@]}"; do PORT[$s]=$(free_port); done

# start_server S: (re)starts server S on its port with an empty root.
start_server() {
  local s=$1 root=$work/$1-root i
  stop_server "$s"
  rm -rf "$root"; mkdir -p "$root"
  if [ "$s" = ferry ]; then
    "$ferry" serve -q --root "$root" --addr "127.0.0.1:${PORT[$s]}" >"$work/$s.log" 2>&1 &
  else
    cat > "$work/dist.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${PORT[$s]}
EOF
    docker-registry serve "$work/dist.yml" >"$work/$s.log" 2>&1 &
  fi
  PID[$s]=$!
  for i in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$s]}/v2/" || true)" = 200 ]; then return 0; fi
    kill -0 "${PID[$s]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "${LABEL[$s]} did not come up on 127.0.0.1:${PORT[$s]}:" >&2; cat "$work/$s.log" >&2; exit 1
}
clk_tck=$(getconf CLK_TCK)
# Server CPU seconds so far (utime + stime, all threads).
server_cpu() { sed 's/.*) //' "/proc/${PID[$1]}/stat" | awk -v t="$clk_tck" '{print ($12 + $13) / t}'; }
# Server peak RSS in KiB since the last reset_peak.
server_peak() { awk '/^VmHWM:/ {print $2}' "/proc/${PID[$1]}/status"; }
reset_peak() { echo 5 > "/proc/${PID[$1]}/clear_refs" 2>/dev/null || true; }

# The model, packed into a local store, and its blobs as "hex size" lines.
if [ -z "$model" ]; then
  model=$work/model
  "$gen_model" --out "$model" --total-gb "$size_gb" --shards 4 --seed 1 \
    >/dev/null 2>"$work/gen.log" || { cat "$work/gen.log" >&2; exit 1; }
fi
model=$(cd "$model" && pwd)
ref=bench.invalid/bench/model:v1
store=$work/store
"$ferry" --store "$store" pack "$model" -t "$ref" -q >/dev/null
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

# 32 distinct blobs for the load, each 1/32 of the model's weights.
mkdir -p "$work/chunks"
python3 - "$work/chunks" "$model" > "$work/chunk-digests" <<'EOF'
import hashlib, os, sys
out, model = sys.argv[1], sys.argv[2]
files = sorted(os.path.join(model, f) for f in os.listdir(model) if f.endswith(".safetensors"))
size = sum(os.path.getsize(f) for f in files) // 32
def stream():
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                yield block
it, buf = stream(), b""
for i in range(32):
    h, n = hashlib.sha256(), 0
    with open(os.path.join(out, "tmp"), "wb") as fh:
        while n < size:
            if not buf:
                buf = next(it)
            part, buf = buf[: size - n], buf[size - n :]
            fh.write(part); h.update(part); n += len(part)
    os.rename(os.path.join(out, "tmp"), os.path.join(out, h.hexdigest()))
    print(h.hexdigest())
EOF
chunk_size=$(stat -c %s "$work/chunks/$(head -n1 "$work/chunk-digests")")
load_bytes=$((chunk_size * 32 * rounds))
[ "$(sort -u "$work/chunk-digests" | wc -l)" = 32 ] || { echo "load blobs are not distinct" >&2; exit 1; }
yes "$(head -n1 "$work/chunk-digests")" | head -n 32 > "$work/same-digests" || true
cat "$model"/* "$store"/artifacts/blobs/sha256/* "$work"/chunks/* >/dev/null # warm the page cache

# curl-blob.sh up|down|load HEX: one blob with curl against $BASE/v2/$REPO:
# POST + monolithic PUT of $BLOBS/HEX, GET to $OUT/HEX, or $ROUNDS GETs to
# /dev/null over one connection.
cat > "$work/curl-blob.sh" <<'EOF'
#!/bin/sh
set -eu
op=$1 hex=$2
url=$BASE/v2/$REPO/blobs
case "$op" in
up)
  loc=$(curl -sSf -X POST -D - -o /dev/null "$url/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  case "$loc" in /*) loc=$BASE$loc ;; esac
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  # -T streams the file; --data-binary @FILE would first read it all into memory.
  curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    -T "$BLOBS/$hex" "$loc${sep}digest=sha256:$hex" ;;
down)
  curl -sSfL -o "$OUT/$hex" "$url/sha256:$hex" ;;
load)
  set --
  i=0
  while [ "$i" -lt "$ROUNDS" ]; do set -- "$@" -o /dev/null "$url/sha256:$hex"; i=$((i + 1)); done
  curl -sSfL "$@" ;;
esac
EOF
chmod +x "$work/curl-blob.sh"

# probe.py URL DIR [COUNT]: sequential manifest GETs on one keep-alive
# connection, from when DIR/go exists until DIR/stop does (or COUNT GETs);
# bounded to 10 minutes and 10^6 GETs. Prints "p50_ms p99_ms count".
cat > "$work/probe.py" <<'EOF'
import http.client, os, sys, time, urllib.parse
url, d = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else None
accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
def get():
    conn.request("GET", url.path, headers={"Accept": accept})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or not body:
        sys.exit(f"manifest GET: HTTP {r.status}")
get()  # connect
open(os.path.join(d, "ready"), "w").close()
deadline = time.monotonic() + 600
while not os.path.exists(os.path.join(d, "go")):
    if time.monotonic() > deadline:
        sys.exit("probe: never told to go")
    time.sleep(0.001)
lat = []
stop = os.path.join(d, "stop")
while len(lat) < (count or 10**6) and time.monotonic() < deadline:
    if count is None and os.path.exists(stop):
        break
    t = time.perf_counter()
    get()
    lat.append(time.perf_counter() - t)
if not lat:
    sys.exit("probe: no sample")
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"{pct(0.50):.3f} {pct(0.99):.3f} {len(lat)}")
EOF

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A MBS CPU RSS P50 P99 MAXRSS
for s in "${servers[@]}"; do MAXRSS[$s]=0; done

# Per-run preparations (not timed); $1 is the server.
fresh_root() { rm -rf "$work/out"; start_server "$1"; sync; }
fresh_out() { rm -rf "$work/out"; mkdir -p "$work/out"; sync; }
probe_start() { # starts the latency probe and waits until it is connected
  rm -rf "$work/probe"; mkdir -p "$work/probe"
  python3 "$work/probe.py" "http://127.0.0.1:${PORT[$1]}/v2/bench/model/manifests/v1" "$work/probe" \
    >"$work/probe/out" 2>&1 &
  probe_pid=$!
  local i
  for i in $(seq 200); do [ -e "$work/probe/ready" ] && break; sleep 0.05; done
  [ -e "$work/probe/ready" ] || { echo "latency probe did not start:" >&2; cat "$work/probe/out" >&2; exit 1; }
  touch "$work/probe/go"
}
probe_stop() {
  touch "$work/probe/stop"
  wait "$probe_pid" || { echo "latency probe failed:" >&2; cat "$work/probe/out" >&2; exit 1; }
  read -r probe_p50 probe_p99 _ < "$work/probe/out"
}

# The timed commands; $1 is the server.
base() { echo "http://127.0.0.1:${PORT[$1]}"; }
push_curl() { BASE=$(base "$1") REPO=bench/curl BLOBS=$store/artifacts/blobs/sha256 xargs -a "$work/digests" -n1 -P"$2" "$work/curl-blob.sh" up; }
push_curl_seq() { push_curl "$1" 1; }
push_curl_par() { push_curl "$1" 4; }
push_ferry() { "$ferry" --store "$store" push -q "$ref" "127.0.0.1:${PORT[$1]}/bench/model:v1"; }
pull_curl() { BASE=$(base "$1") REPO=bench/model OUT=$work/out xargs -a "$work/digests" -n1 -P"$2" "$work/curl-blob.sh" down; }
pull_curl_seq() { pull_curl "$1" 1; }
pull_curl_par() { pull_curl "$1" 4; }
pull_ferry() { "$ferry" --store "$work/out/store" pull -q "127.0.0.1:${PORT[$1]}/bench/model:v1"; }
load() { BASE=$(base "$1") REPO=bench/load ROUNDS=$rounds xargs -a "$work/$2" -n1 -P32 "$work/curl-blob.sh" load; }
load_same() { load "$1" same-digests; }
load_diff() { load "$1" chunk-digests; }

# measure ROW S NBYTES PREP CMD [POST]: $runs times PREP, CMD timed, POST;
# keeps the medians of MB/s, server CPU s and server peak RSS (MiB) in
# MBS/CPU/RSS[ROW|S], and of the probe's p50/p99 in P50/P99 when POST is probe_stop.
measure() {
  local row=$1 s=$2 n=$3 prep=$4 cmd=$5 post=${6:-}
  local mbs=() cpus=() rsss=() p50s=() p99s=() t0 t1 c0 c1 peak
  for _ in $(seq "$runs"); do
    "$prep" "$s"
    reset_peak "$s"
    c0=$(server_cpu "$s")
    t0=$EPOCHREALTIME
    if ! "$cmd" "$s" >"$work/cmd.out" 2>&1; then
      echo "$row against ${LABEL[$s]} failed:" >&2; tail -n 20 "$work/cmd.out" "$work/$s.log" >&2; exit 1
    fi
    t1=$EPOCHREALTIME
    c1=$(server_cpu "$s"); peak=$(server_peak "$s")
    [ -n "$post" ] && "$post" "$s"
    mbs+=("$(awk -v b="$n" -v a="$t0" -v z="$t1" 'BEGIN {print b / 1e6 / (z - a)}')")
    cpus+=("$(awk -v a="$c0" -v z="$c1" 'BEGIN {print z - a}')")
    rsss+=("$(awk -v k="$peak" 'BEGIN {print k / 1024}')")
    [ "$post" = probe_stop ] && p50s+=("$probe_p50") && p99s+=("$probe_p99")
    if awk -v a="$peak" -v b="${MAXRSS[$s]}" 'BEGIN {exit !(a > b)}'; then MAXRSS[$s]=$peak; fi
  done
  MBS[$row|$s]=$(median "${mbs[@]}") CPU[$row|$s]=$(median "${cpus[@]}") RSS[$row|$s]=$(median "${rsss[@]}")
  if [ "$post" = probe_stop ]; then P50[$row|$s]=$(median "${p50s[@]}") P99[$row|$s]=$(median "${p99s[@]}"); fi
}
# row NAME NBYTES PREP CMD [POST]: measures both servers and prints one line.
row() {
  local s line
  line=$(printf '%-34s' "$1")
  for s in "${servers[@]}"; do
    measure "$1" "$s" "${@:2}"
    line+=$(printf ' %9.0f %8.2f s %8.1f MiB  ' "${MBS[$1|$s]}" "${CPU[$1|$s]}" "${RSS[$1|$s]}")
  done
  echo "$line"
}
# idle_latency S: p50/p99 of 2000 manifest GETs with no other load.
idle_latency() {
  local s=$1 p50s=() p99s=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/probe"; mkdir -p "$work/probe"; touch "$work/probe/go"
    read -r p50 p99 _ < <(python3 "$work/probe.py" "$(base "$s")/v2/bench/model/manifests/v1" "$work/probe" 2000)
    p50s+=("$p50"); p99s+=("$p99")
  done
  P50[idle|$s]=$(median "${p50s[@]}") P99[idle|$s]=$(median "${p99s[@]}")
}

for s in "${servers[@]}"; do start_server "$s"; done
printf 'model: %s (%s bytes in %s blobs); load: 32 clients x %s GETs of %s-byte blobs\n' \
  "$model" "$bytes" "$nblobs" "$rounds" "$chunk_size"
printf '%s runs each, median; throughput seen by the client, CPU and peak RSS of the server\n\n' "$runs"
hdr=$(printf '%-34s' "")
sub=$(printf '%-34s' operation)
for s in "${servers[@]}"; do
  hdr+=$(printf ' %-36s' "${LABEL[$s]}")
  sub+=$(printf ' %9s %10s %12s  ' MB/s "srv CPU" "srv peak RSS")
done
echo "$hdr"; echo "$sub"
row "push: curl, sequential" "$bytes" fresh_root push_curl_seq
row "push: curl, 4 parallel" "$bytes" fresh_root push_curl_par
row "push: ferry push" "$bytes" fresh_root push_ferry
# Every server now holds the model (bench/model); add the load blobs (untimed).
for s in "${servers[@]}"; do
  BASE=$(base "$s") REPO=bench/load BLOBS=$work/chunks xargs -a "$work/chunk-digests" -n1 -P4 "$work/curl-blob.sh" up
done
row "pull: curl, sequential" "$bytes" fresh_out pull_curl_seq
row "pull: curl, 4 parallel" "$bytes" fresh_out pull_curl_par
row "pull: ferry pull" "$bytes" fresh_out pull_ferry
row "32 clients, same blob" "$load_bytes" probe_start load_same probe_stop
row "32 clients, different blobs" "$load_bytes" probe_start load_diff probe_stop
for s in "${servers[@]}"; do idle_latency "$s"; done
line=$(printf '%-34s' "server peak RSS, whole run")
for s in "${servers[@]}"; do line+=$(printf ' %9s %10s %8.1f MiB  ' "" "" "$(awk -v k="${MAXRSS[$s]}" 'BEGIN {print k / 1024}')"); done
echo "$line"

echo
echo "manifest GET latency (sequential GETs on one connection), ms"
hdr=$(printf '%-34s' "")
sub=$(printf '%-34s' "while")
for s in "${servers[@]}"; do hdr+=$(printf ' %-22s' "${LABEL[$s]}"); sub+=$(printf ' %9s %9s   ' p50 p99); done
echo "$hdr"; echo "$sub"
for r in idle "32 clients, same blob" "32 clients, different blobs"; do
  line=$(printf '%-34s' "$r")
  for s in "${servers[@]}"; do line+=$(printf ' %9.2f %9.2f   ' "${P50[$r|$s]}" "${P99[$r|$s]}"); done
  echo "$line"
done

# Goals.
verdict() { if awk "BEGIN {exit !($1)}"; then echo met; else echo MISSED; fi; }
echo
echo "goals (ferry serve vs distribution):"
for r in "push: curl, sequential" "push: curl, 4 parallel" "push: ferry push"; do
  x=$(awk -v a="${MBS[$r|ferry]}" -v b="${MBS[$r|dist]}" 'BEGIN {print a / b}')
  printf '  %-60s %-20s %s\n' "receives >= 3x faster ($r)" "$(printf '%.2fx' "$x")" "$(verdict "$x >= 3")"
done
for r in "pull: curl, sequential" "pull: curl, 4 parallel" "pull: ferry pull" \
  "32 clients, same blob" "32 clients, different blobs"; do
  x=$(awk -v a="${MBS[$r|ferry]}" -v b="${MBS[$r|dist]}" 'BEGIN {print a / b}')
  printf '  %-60s %-20s %s\n' "serves at least as fast ($r)" "$(printf '%.2fx' "$x")" "$(verdict "$x >= 1")"
done
printf '  %-60s %-20s %s\n' "less memory (peak RSS, whole run)" \
  "$(awk -v a="${MAXRSS[ferry]}" -v b="${MAXRSS[dist]}" 'BEGIN {printf "%.1f vs %.1f MiB", a / 1024, b / 1024}')" \
  "$(verdict "${MAXRSS[ferry]} < ${MAXRSS[dist]}")"
