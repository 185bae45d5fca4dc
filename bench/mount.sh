#!/usr/bin/env bash
# Benchmark: `ferry mount` of pulled models (not a timed test). Needs root.
#
#   bench/mount.sh [--sizes-gb "0.1953125 2"] [--tar-gb 2] [--runs 5]
#
# Raw layers: for each size (GiB; 0.1953125 = 200 MiB) a model from
# ferry-gen-model (crates/ferry-testkit; 4 shards, seed 1) is packed, pushed to
# `ferry serve` and pulled into a fresh store, then mounted read-only:
#   first   the layer cache is empty (entries are hardlinks of the blobs)
#   again   the layer cache is there (a new mount reuses it)
# Goal: under 50 ms, and the same for every size (no data is copied).
#
# Tar layers (`ferry pack --layer-format tar`) of the --tar-gb model: the
# first mount (unpack every layer into the cache, verifying digests, synced
# to disk) against `tar -x` of one tar of the same files, and `tar -x` +
# `sync` (which is what the cache's durability costs). Goal: no slower than
# `tar -x`.
#
# Times are wall clock of the whole `ferry` process, medians over --runs;
# the page cache is warm for every command (the data was just written).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="0.1953125 2" tar_gb=2 runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes-gb) sizes=$2; shift 2 ;;
    --tar-gb) tar_gb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (it mounts)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-mount.XXXXXX")
reg_pid=""
mounted=()
cleanup() {
  for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet -p ferry
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
cargo build --release --quiet -p ferry-testkit
gen_model=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry-gen-model
export FERRY_HOME=$work/home

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
"$ferry" serve --addr "$host" --root "$work/registry" >"$work/serve.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

ms_since() { echo "scale=1; ($(date +%s%N) - $1) / 1000000" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# model SIZE_GB DIR: generates a model once.
model() {
  [ -d "$2" ] || "$gen_model" --out "$2" --total-gb "$1" --shards 4 --seed 1 >/dev/null 2>&1
}

# publish DIR REF STORE [PACK ARGS...]: pack, push, pull into STORE (fresh).
publish() {
  local dir=$1 ref=$2 store=$3; shift 3
  "$ferry" --store "$work/publisher" pack "$dir" -t "$ref" -q "$@" >/dev/null
  "$ferry" --store "$work/publisher" push "$ref" --plain-http -q >/dev/null
  "$ferry" --store "$store" pull "$ref" --plain-http -q >/dev/null
}

# time_mount STORE REF TARGET COLD: one timed `ferry mount` (ms); COLD
# empties the layer cache first. Unmounts afterwards.
time_mount() {
  local store=$1 ref=$2 target=$3 cold=$4 start t
  if [ "$cold" = 1 ]; then rm -rf "$store/layers"; fi
  sync
  start=$(date +%s%N)
  "$ferry" --store "$store" mount "$ref" "$target" -q >/dev/null
  t=$(ms_since "$start")
  mounted+=("$target")
  "$ferry" --store "$store" umount "$target" >/dev/null
  echo "$t"
}

printf 'median of %s runs, wall clock in ms\n\n' "$runs"
printf '%-28s %10s %10s %10s\n' "raw layers, pulled" "size" "first" "again"
for size in $sizes; do
  dir=$work/model-$size
  model "$size" "$dir"
  bytes=$(du -sb "$dir" | cut -f1)
  ref=$host/bench/raw-$size:v1
  store=$work/store-raw-$size
  publish "$dir" "$ref" "$store"
  firsts=() agains=()
  for _ in $(seq "$runs"); do
    firsts+=("$(time_mount "$store" "$ref" "$work/mnt" 1)")
    agains+=("$(time_mount "$store" "$ref" "$work/mnt" 0)")
  done
  printf '%-28s %8s MiB %10s %10s\n' "ferry mount" "$((bytes / 1048576))" "$(median "${firsts[@]}")" "$(median "${agains[@]}")"
done

echo
dir=$work/model-$tar_gb
model "$tar_gb" "$dir"
bytes=$(du -sb "$dir" | cut -f1)
ref=$host/bench/tar:v1
store=$work/store-tar
publish "$dir" "$ref" "$store" --layer-format tar
tar -cf "$work/model.tar" -C "$dir" .
cat "$work/model.tar" >/dev/null
ferries=() tars=() synced=()
for _ in $(seq "$runs"); do
  ferries+=("$(time_mount "$store" "$ref" "$work/mnt" 1)")
  rm -rf "$work/out"; mkdir "$work/out"; sync
  start=$(date +%s%N); tar -xf "$work/model.tar" -C "$work/out"; tars+=("$(ms_since "$start")")
  rm -rf "$work/out"; mkdir "$work/out"; sync
  start=$(date +%s%N); tar -xf "$work/model.tar" -C "$work/out"; sync; synced+=("$(ms_since "$start")")
done
printf '%-28s %10s %10s\n' "tar layers, first mount" "size" "time"
printf '%-28s %8s MiB %10s\n' "ferry mount (cold cache)" "$((bytes / 1048576))" "$(median "${ferries[@]}")"
printf '%-28s %8s MiB %10s\n' "tar -x" "$((bytes / 1048576))" "$(median "${tars[@]}")"
printf '%-28s %8s MiB %10s\n' "tar -x; sync" "$((bytes / 1048576))" "$(median "${synced[@]}")"
