#!/usr/bin/env bash
# Builds service/native/ort.c into service/native/build/chatmirror-ort.node, the engine's binding to onnxruntime's
# C API (service/engine/ort-native.ts loads it; without it the engine runs on onnxruntime-node, slower: ort.c says
# why). Needs a C compiler, the Node-API headers (npm's node-api-headers, a devDependency; else Node's own
# include/node) and onnxruntime's C API headers (c-api-headers.sh fetches them once, pinned by hash). Links
# against the libonnxruntime.so.1 in onnxruntime-node's package, found at run time relative to the binding
# ($ORIGIN/../../../node_modules), which holds in the repository and in the image.
#
#   bash service/native/build.sh              # fails if it cannot build
#   bash service/native/build.sh --optional   # npm's postinstall: says why it could not, and exits 0
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/service/native/build/chatmirror-ort.node"

build() {
  local cc="${CC:-cc}" node_include="" dir ort_lib include
  command -v "$cc" >/dev/null || { echo "no C compiler ($cc)"; return 1; }
  # Node-API is one ABI across Node releases, so its headers need not come from the Node that runs: the npm
  # package first (npm's node-linux-<arch>, the images' Node, ships none), then Node's own, beside an official
  # binary or where Debian's nodejs puts them.
  for dir in "$ROOT/node_modules/node-api-headers/include" \
    "$(node -p 'require("path").resolve(process.execPath, "../../include/node")')" /usr/include/node \
    /usr/local/include/node; do
    [ -f "$dir/node_api.h" ] && { node_include="$dir"; break; }
  done
  [ -n "$node_include" ] || { echo "no node_api.h (Node's headers) found"; return 1; }
  ort_lib="$(ls -d "$ROOT"/node_modules/onnxruntime-node/bin/napi-v*/linux/"$(node -p process.arch)" 2>/dev/null | head -1)"
  [ -f "$ort_lib/libonnxruntime.so.1" ] || { echo "onnxruntime-node's libonnxruntime.so.1 is not installed"; return 1; }
  include="$(bash "$ROOT/service/native/c-api-headers.sh")" || { echo "could not fetch onnxruntime's C API headers"; return 1; }
  mkdir -p "$(dirname "$OUT")"
  "$cc" -O2 -Wall -Wextra -Werror -shared -fPIC -o "$OUT.part" "$ROOT/service/native/ort.c" -I"$node_include" \
    -I"$include" -L"$ort_lib" -l:libonnxruntime.so.1 -lpthread \
    -Wl,-rpath,"\$ORIGIN/../../../${ort_lib#"$ROOT"/}" || { echo "the compiler failed"; return 1; }
  mv "$OUT.part" "$OUT"
}

if ! reason="$(build 2>&1)"; then
  if [ "${1:-}" = --optional ]; then
    echo "chatmirror: the onnxruntime binding was not built ($(echo "$reason" | tail -1)); the engine runs on onnxruntime-node, slower (bash service/native/build.sh)" >&2
    exit 0
  fi
  echo "$reason" >&2
  exit 1
fi
echo "built $OUT" >&2
