#!/usr/bin/env bash
# Fuzzes ferry: every cargo-fuzz target in fuzz/ runs for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60 s, every target)
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, -Cpasses=sancov-module
# with -Zllvm-args); RUSTC_BOOTSTRAP=1 lets a stable toolchain take them.
# Each target starts from its seeds in fuzz/corpus/<target>/ (never written
# to) and keeps what it finds in fuzz/work/<target>/ (gitignored), so a
# later run goes on from there. A crash, a panic, a timeout or an
# out-of-memory fails the script and names the input that caused it:
#
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
#
# replays it. FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-jobs=2).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
# The fuzz crate builds into its own fuzz/target unless told otherwise.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# One build for every target (optimized, with debug assertions and overflow
# checks, AddressSanitizer): `cargo fuzz run` below then finds it up to date.
start=$(date +%s)
cargo fuzz build
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - start)) s" >&2

failed=()
for target in "${targets[@]}"; do
  work="fuzz/work/$target"
  mkdir -p "$work" "fuzz/artifacts/$target"
  args=(-max_total_time="$seconds" -timeout=20 -print_final_stats=1)
  if [ -f "fuzz/dicts/$target.dict" ]; then
    args+=(-dict="fuzz/dicts/$target.dict")
  fi
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
  args+=(${FUZZ_ARGS:-})
  echo "fuzz: $target for ${seconds} s" >&2
  log="fuzz/work/$target.log"
  if cargo fuzz run "$target" "$work" "fuzz/corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log" | sed "s/^/fuzz: $target: /" >&2 || true
  else
    tail -n 60 "$log" >&2
    crash=$(grep -oE "fuzz/artifacts/$target/[^ ]+" "$log" | tail -n 1 || true)
    echo "fuzz: $target FAILED; input: ${crash:-see $log}" >&2
    echo "fuzz: replay with: RUSTC_BOOTSTRAP=1 cargo fuzz run $target ${crash:-fuzz/artifacts/$target/<file>}" >&2
    failed+=("$target: ${crash:-$log}")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
