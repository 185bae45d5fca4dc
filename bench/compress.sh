#!/usr/bin/env bash
# Benchmark: ferry's layer compression against the zstd and pigz tools at
# the same level, on a bf16 model (weights opted in) and on its text files
# alone, plus `--compress auto` against `--compress none`.
#
#   bench/compress.sh [--size-gb 2] [--runs 3] [--level 3] [--gzip-level 6] [--model DIR]
#
# Prints, per input: compressed/original size ratio, compression MB/s and
# decompression MB/s (MB of uncompressed input per wall second, median of
# the runs). ferry compresses with `pack --compress zstd|gzip
# --compress-weights --min-saving 0` and decompresses with `ferry extract`;
# the tools compress a tar of the same files and decompress into files
# (`zstd -d | tar -x`), so both sides write the same bytes to disk.
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=2 runs=3 level=3 glevel=6 model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-gb) size_gb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --level) level=$2; shift 2 ;;
    --gzip-level) glevel=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in zstd pigz tar bc; do
  command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
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
text=$work/text
mkdir -p "$text"
(cd "$model" && find . -type f ! -name '*.safetensors' ! -name '*.bin' ! -name '*.gguf' -print0 |
  xargs -0 -I{} cp --parents {} "$text/")

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timed CMD...: median wall seconds of $runs runs; `prep` is run before each.
prep() { :; }
timed() {
  local walls=()
  for _ in $(seq "$runs"); do
    prep; sync
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    walls+=("$(echo "$end - $start" | bc -l)")
  done
  median "${walls[@]}"
}
blob_bytes() { find "$1" -path '*blobs/sha256/*' -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
mbps() { echo "$1 / 1000000 / $2" | bc -l; }
row() { # name ratio comp_s decomp_s bytes
  printf '%-26s %8.4f %12.0f %12.0f\n' "$1" "$2" "$(mbps "$5" "$3")" "$(mbps "$5" "$4")"
}

bench_input() { # label dir
  local label=$1 dir=$2 bytes
  bytes=$(du -sb --apparent-size "$dir" | cut -f1)
  cat "$dir"/* >/dev/null 2>&1 || true
  printf '\n%s: %s bytes, level zstd %s / gzip %s, median of %s\n' "$label" "$bytes" "$level" "$glevel" "$runs"
  printf '%-26s %8s %12s %12s\n' tool ratio "comp MB/s" "decomp MB/s"
  for codec in zstd gzip; do
    local lv=$level; [ $codec = gzip ] && lv=$glevel
    prep() { rm -rf "$work/store"; }
    local c d size
    c=$(timed "$ferry" --store "$work/store" pack "$dir" -t bench/c:v1 -q \
      --compress $codec --level "$lv" --compress-weights --min-saving 0)
    size=$(blob_bytes "$work/store")
    prep() { rm -rf "$work/out"; }
    d=$(timed "$ferry" --store "$work/store" extract bench/c:v1 "$work/out")
    cmp -s <(cd "$dir" && find . -type f -exec sha256sum {} + | sort) \
           <(cd "$work/out" && find . -type f -exec sha256sum {} + | sort) ||
      { echo "ferry extract differs from the input" >&2; exit 1; }
    row "ferry $codec" "$(echo "$size / $bytes" | bc -l)" "$c" "$d" "$bytes"
    eval "ferry_${codec}_ratio=$(echo "$size / $bytes" | bc -l) ferry_${codec}_c=$c ferry_${codec}_d=$d"
  done
  prep() { rm -f "$work/a.zst"; }
  local c d size
  c=$(timed sh -c "tar -C '$dir' -cf - . | zstd -T0 -$level -q -o '$work/a.zst'")
  size=$(stat -c %s "$work/a.zst")
  prep() { rm -rf "$work/out"; mkdir -p "$work/out"; }
  d=$(timed sh -c "zstd -d -q -c '$work/a.zst' | tar -C '$work/out' -xf -")
  row "zstd -T0 -$level | tar" "$(echo "$size / $bytes" | bc -l)" "$c" "$d" "$bytes"
  zstd_ratio=$(echo "$size / $bytes" | bc -l) zstd_c=$c zstd_d=$d
  prep() { rm -f "$work/a.gz"; }
  c=$(timed sh -c "tar -C '$dir' -cf - . | pigz -$glevel > '$work/a.gz'")
  size=$(stat -c %s "$work/a.gz")
  prep() { rm -rf "$work/out"; mkdir -p "$work/out"; }
  d=$(timed sh -c "pigz -d -c '$work/a.gz' | tar -C '$work/out' -xf -")
  row "pigz -$glevel | tar" "$(echo "$size / $bytes" | bc -l)" "$c" "$d" "$bytes"
  pigz_ratio=$(echo "$size / $bytes" | bc -l)
  printf 'goals: zstd ratio within 1%%: %s (%.4f vs %.4f); compression >= 90%% of zstd -T0: %s (%.0f%%); decompression >= zstd -d: %s (%.0f%%)\n' \
    "$(echo "($ferry_zstd_ratio - $zstd_ratio) / $zstd_ratio <= 0.01" | bc -l | sed 's/1/met/;s/0/MISSED/')" \
    "$ferry_zstd_ratio" "$zstd_ratio" \
    "$(echo "$zstd_c / $ferry_zstd_c >= 0.9" | bc -l | sed 's/1/met/;s/0/MISSED/')" \
    "$(echo "100 * $zstd_c / $ferry_zstd_c" | bc -l)" \
    "$(echo "$zstd_d / $ferry_zstd_d >= 1" | bc -l | sed 's/1/met/;s/0/MISSED/')" \
    "$(echo "100 * $zstd_d / $ferry_zstd_d" | bc -l)"
  printf 'gzip (for reference): ferry ratio %.4f, pigz %.4f\n' "$ferry_gzip_ratio" "$pigz_ratio"
}

bench_input "model (weights compressed)" "$model"
bench_input "text files only" "$text"

bytes=$(du -sb --apparent-size "$model" | cut -f1)
prep() { rm -rf "$work/store"; }
none=$(timed "$ferry" --store "$work/store" pack "$model" -t bench/a:v1 -q --compress none)
auto=$(timed "$ferry" --store "$work/store" pack "$model" -t bench/a:v1 -q --compress auto)
printf '\npack --compress none: %.2f s (%.0f MB/s); --compress auto: %.2f s (%.0f MB/s)\n' \
  "$none" "$(mbps "$bytes" "$none")" "$auto" "$(mbps "$bytes" "$auto")"
printf 'goal: auto no slower than none (10%% noise allowed): %s\n' \
  "$(echo "$auto <= $none * 1.1" | bc -l | sed 's/1/met/;s/0/MISSED/')"
