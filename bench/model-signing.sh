#!/usr/bin/env bash
# Benchmark: `ferry sign-model` / `ferry verify-model` against the OpenSSF
# reference CLI (`model_signing sign key` / `model_signing verify key`,
# PyPI model-signing 1.1.1) on the same 2 GiB model and P-256 key, side by
# side in one run.
#
#   bench/model-signing.sh [--size 2GiB] [--runs 3] [--model DIR]
#
# Prints median wall time, CPU time (user+sys) and peak RSS of each. Every
# command reads the model from a warm page cache. Both tools hash every file
# with SHA-256 ("files" method); each tool verifies its own signature, and
# each verifies the other's once (interop check, not timed).
set -euo pipefail
cd "$(dirname "$0")/.."
size=2GiB runs=3 model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
command -v model_signing >/dev/null || { echo "needs model_signing (pip install model-signing==1.1.1)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }
cargo build --release --quiet -p ferry
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
cargo build --release --quiet -p ferry-testkit
gen_model=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry-gen-model
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -z "$model" ]; then
  model=$work/model
  "$gen_model" --out "$model" --size "$size" --shards 4 --seed 1 >/dev/null
fi
bytes=$(du -sb "$model" | cut -f1)
# One P-256 key both tools read: plain SEC1 PEM (model_signing reads no
# cosign-encrypted keys).
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem" 2>/dev/null
openssl ec -in "$work/key.pem" -pubout -out "$work/key.pub" 2>/dev/null
cat "$model"/* >/dev/null # warm the page cache for everyone

# run NAME CMD...: times CMD $runs times, prints "NAME wall cpu rss" (medians).
run() {
  local name=$1; shift
  local walls=() cpus=() rsss=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" \
      || { echo "$name failed:" >&2; cat "$work/stderr" >&2; exit 1; }
    read -r wall user sys rss < "$work/time"
    walls+=("$wall"); cpus+=("$(echo "$user + $sys" | bc)"); rsss+=("$rss")
  done
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  local w c r
  w=$(median "${walls[@]}"); c=$(median "${cpus[@]}"); r=$(median "${rsss[@]}")
  printf '%-28s %8.2f s %8.2f s %9.1f MiB %9.0f MB/s\n' "$name" "$w" "$c" "$(echo "$r / 1024" | bc -l)" \
    "$(echo "$bytes / 1000000 / $w" | bc -l)"
}

ferry_sig=$work/ferry.sig
ms_sig=$work/model_signing.sig
printf 'model: %s (%s bytes), %s runs each, median\n' "$model" "$bytes" "$runs"
printf '%-28s %10s %10s %13s %14s\n' command wall cpu "peak RSS" throughput
run "ferry sign-model" "$ferry" sign-model "$model" --key "$work/key.pem" --signature "$ferry_sig"
run "model_signing sign key" model_signing sign key "$model" --private_key "$work/key.pem" --signature "$ms_sig"
run "ferry verify-model" "$ferry" verify-model "$model" --key "$work/key.pub" --signature "$ferry_sig"
run "model_signing verify key" model_signing verify key "$model" --signature "$ms_sig" --public_key "$work/key.pub"
# Interop, untimed: each verifies the other's signature.
"$ferry" verify-model "$model" --key "$work/key.pub" --signature "$ms_sig" >/dev/null
model_signing verify key "$model" --signature "$ferry_sig" --public_key "$work/key.pub" >/dev/null 2>&1 \
  || { echo "model_signing refused ferry's signature" >&2; exit 1; }
echo "interop: each tool verified the other's signature"
