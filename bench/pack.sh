#!/usr/bin/env bash
# Benchmark: `ferry pack` of a 2 GiB bf16 model against `cp -r` and
# `sha256sum` of the same files, side by side in one run.
#
#   bench/pack.sh [--size-gb 2] [--runs 3] [--model DIR]
#
# ferry fsyncs every blob (durable store); `cp -r && sync` is the fair
# comparison for that, `cp -r` the lower bound.
#
# Prints median wall time, CPU time (user+sys) and peak RSS of each. Every
# command reads the model from a warm page cache, as a re-pack would.
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=2 runs=3 model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-gb) size_gb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
cargo build --release --quiet
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
cargo build --release --quiet -p ferry-testkit
gen_model=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry-gen-model
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -z "$model" ]; then
  model=$work/model
  "$gen_model" --out "$model" --total-gb "$size_gb" --shards 4 --seed 1 >/dev/null
fi
bytes=$(du -sb "$model" | cut -f1)
cat "$model"/* >/dev/null # warm the page cache for everyone

# run NAME CMD...: times CMD $runs times, prints "NAME wall cpu rss" (medians).
run() {
  local name=$1; shift
  local walls=() cpus=() rsss=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/out" "$work/store"; sync
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>&1
    read -r wall user sys rss < "$work/time"
    walls+=("$wall"); cpus+=("$(echo "$user + $sys" | bc)"); rsss+=("$rss")
  done
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  local w c r
  w=$(median "${walls[@]}"); c=$(median "${cpus[@]}"); r=$(median "${rsss[@]}")
  printf '%-22s %8.2f s %8.2f s %9.1f MiB %9.0f MB/s\n' "$name" "$w" "$c" "$(echo "$r / 1024" | bc -l)" \
    "$(echo "$bytes / 1000000 / $w" | bc -l)"
}

printf 'model: %s (%s bytes), %s runs each, median\n' "$model" "$bytes" "$runs"
printf '%-22s %10s %10s %13s %14s\n' command wall cpu "peak RSS" throughput
run "ferry pack (raw)" "$ferry" --store "$work/store" pack "$model" -t bench/model:v1 -q
run "ferry pack (tar)" "$ferry" --store "$work/store" pack "$model" -t bench/model:v1 -q --layer-format tar
run "cp -r" cp -r "$model" "$work/out"
run "cp -r && sync" sh -c "cp -r '$model' '$work/out' && sync"
run "sha256sum" sh -c "sha256sum '$model'/*"
