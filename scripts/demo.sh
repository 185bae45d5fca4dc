#!/usr/bin/env bash
# ferry's main job end to end on the embedded defaults: build ferry, pack the
# example model into a fresh store, list and inspect it, extract it again and
# check that every file came back byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
ferry=target/release/ferry
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo.XXXXXX")
export FERRY_HOME="$work/store"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step $ferry pack examples/tiny-model -t localhost/tiny-model:v1
step $ferry ls
step $ferry inspect localhost/tiny-model:v1
step $ferry extract localhost/tiny-model:v1 "$work/extracted"
step diff -r examples/tiny-model "$work/extracted"
step $ferry fsck
printf '\nok: packed, stored, inspected and extracted byte-identical (store: %s)\n' "$FERRY_HOME"
