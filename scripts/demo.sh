#!/usr/bin/env bash
# ferry's main job end to end on the embedded defaults: build ferry, pack the
# example model, start ferry's own registry, push, remove the local copy,
# pull it back, extract it and check every file came back byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
ferry=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo.XXXXXX")
export FERRY_HOME="$work/store"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

printf '\n\033[1m$ %s\033[0m\n' "ferry serve --root $work/registry --addr 127.0.0.1:0 &"
"$ferry" serve --root "$work/registry" --addr 127.0.0.1:0 2>"$work/serve.log" &
server=$!
registry=""
for _ in $(seq 100); do
  registry=$(sed -n 's#.*listening on http://\([^ ]*\).*#\1#p' "$work/serve.log")
  [ -n "$registry" ] && break
  sleep 0.1
done
[ -n "$registry" ] || { cat "$work/serve.log"; exit 1; }
echo "listening on $registry"
ref=$registry/demo/tiny-model:v1

step "$ferry" pack examples/tiny-model -t "$ref"
step "$ferry" inspect "$ref"

step "$ferry" push "$ref"
step "$ferry" rm "$ref"
step "$ferry" ls
step "$ferry" pull "$ref"
step "$ferry" extract "$ref" "$work/extracted"
step diff -r examples/tiny-model "$work/extracted"
step "$ferry" fsck
printf '\nok: packed, pushed to ferry serve, removed, pulled back and extracted byte-identical (work dir: %s)\n' "$work"
