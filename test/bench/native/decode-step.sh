#!/usr/bin/env bash
# Issue 12's next lever, measured before it is built (decode-step.c says what the two ways are): builds
# decode-step.c against onnxruntime's C API headers and the libonnxruntime.so.1 that onnxruntime-node ships, and
# runs `copy` and `share` interleaved on the SmolLM2 graphs (test/fixtures/models/build.sh smollm2), at 1 and at
# 16 rows. Prints the load average before and after. Never part of npm test or CI.
#
#   bash test/bench/native/decode-step.sh            # REPS=2 STEPS=64 PROMPT=46 ROWS="1 16" PRECISIONS="int8 fp32"
#
# The headers: onnxruntime's C API is a table of function pointers that only ever grows, so a header of an older
# API version works with a newer library. No registry here serves onnxruntime's own (neither the npm package nor
# the wheel carries them, Maven Central serves no onnxruntime artifact); the Go module proxy serves
# github.com/yalue/onnxruntime_go, which vendors Microsoft's onnxruntime_c_api.h (ORT_API_VERSION 24) unchanged,
# MIT. Pinned by the sha256 of the module zip; the proxy notes that this version is served from an earlier copy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
MODULE=github.com/yalue/onnxruntime_go
VERSION=v1.27.0
ZIP_SHA256=5b7c7e6878caa1f1bf5d5acc09bfdd9de4c2f1e1beee1ff5529570139c540cb0
PROXY="$(go env GOPROXY 2>/dev/null | cut -d, -f1 || true)"
case "$PROXY" in http*) ;; *) PROXY=https://proxy.golang.org ;; esac
INCLUDE="$CACHE/native/ort-c-api-$VERSION"

if [ ! -f "$INCLUDE/onnxruntime_c_api.h" ]; then
  mkdir -p "$CACHE/downloads" "$INCLUDE"
  zip="$CACHE/downloads/onnxruntime_go-$VERSION.zip"
  curl -fsSL -o "$zip.part" "$PROXY/$MODULE/@v/$VERSION.zip"
  echo "$ZIP_SHA256  $zip.part" | sha256sum -c --quiet
  mv "$zip.part" "$zip"
  unzip -o -q -j "$zip" "$MODULE@$VERSION/onnxruntime_c_api.h" "$MODULE@$VERSION/onnxruntime_ep_c_api.h" \
    "$MODULE@$VERSION/LICENSE" -d "$INCLUDE"
fi

ORT_LIB="$(ls -d "$ROOT"/node_modules/onnxruntime-node/bin/napi-v*/linux/x64 | head -1)"
BIN="$CACHE/native/decode-step"
gcc -O2 -Wall -o "$BIN" "$ROOT/test/bench/native/decode-step.c" -I"$INCLUDE" -L"$ORT_LIB" -l:libonnxruntime.so.1 \
  -Wl,-rpath,"$ORT_LIB"

MODEL="$CACHE/models/smollm2-135m-instruct/onnx"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for precision in ${PRECISIONS:-int8 fp32}; do
  graph="$MODEL/model.onnx"
  [ "$precision" = int8 ] && graph="$MODEL/model_quantized.onnx"
  for rows in ${ROWS:-1 16}; do
    for _ in $(seq "${REPS:-2}"); do
      for mode in copy share; do
        echo "$precision $("$BIN" "$graph" "$rows" "${PROMPT:-46}" "${STEPS:-64}" "$mode")"
      done
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
