#!/usr/bin/env bash
# Benchmark: `ferry scan` against picklescan and modelscan (PyPI) on the
# same directory (not a timed test): a safetensors model from
# ferry-gen-model plus a pickle checkpoint of NumPy arrays, as a
# training run leaves them.
#
#   bench/scan.sh [--safetensors-gb 2] [--pickle-mb 500] [--runs 3]
#
# Goal: ferry at least 10x faster, and its safetensors time independent of
# the files' size (headers only). Wall clock and peak RSS, medians.
set -euo pipefail
cd "$(dirname "$0")/.."
safetensors_gb=2 pickle_mb=500 runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --safetensors-gb) safetensors_gb=$2; shift 2 ;;
    --pickle-mb) pickle_mb=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in picklescan modelscan; do
  command -v "$tool" >/dev/null || { echo "needs $tool (pip install $tool)" >&2; exit 1; }
done
python3 -c 'import numpy' 2>/dev/null || { echo "needs numpy" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-scan.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

cargo build --release --quiet -p ferry -p ferry-testkit
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
"$bin/ferry-gen-model" --out "$work/model" --total-gb "$safetensors_gb" --shards 4 --seed 1 >/dev/null 2>&1
python3 - "$work/model/optimizer.pkl" "$pickle_mb" <<'PY'
import pickle, sys
import numpy as np
path, mb = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
arrays = {f"layer.{i}.exp_avg": rng.standard_normal(1 << 20, dtype=np.float32) for i in range(mb // 4)}
with open(path, "wb") as f:
    pickle.dump({"state": arrays, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999)}]}, f, protocol=4)
PY

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# measure NAME CMD...: median wall seconds and peak RSS (MB) over $runs runs.
measure() {
  local name=$1; shift
  local walls=() rss=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>&1 || true
    read -r wall kb <"$work/time"
    walls+=("$wall"); rss+=("$((kb / 1024))")
  done
  printf '%-28s %10s s %10s MB\n' "$name" "$(median "${walls[@]}")" "$(median "${rss[@]}")"
}

size=$(du -sh "$work/model" | cut -f1)
printf '\n%s: %s GiB safetensors in 4 shards + a %s MB pickle (%s)\n\n' \
  "$work/model" "$safetensors_gb" "$pickle_mb" "$size"
measure "ferry scan" "$bin/ferry" scan "$work/model"
measure "picklescan" picklescan --path "$work/model"
measure "modelscan" modelscan -p "$work/model"
# The safetensors part alone: time must not grow with the files' size.
rm "$work/model/optimizer.pkl"
measure "ferry scan (safetensors only)" "$bin/ferry" scan "$work/model"
