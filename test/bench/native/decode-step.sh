#!/usr/bin/env bash
# Issue 12's next lever, measured before it is built (decode-step.c says what the two ways are): builds
# decode-step.c against onnxruntime's C API headers and the libonnxruntime.so.1 that onnxruntime-node ships, and
# runs `copy` and `share` interleaved on the SmolLM2 graphs (test/fixtures/models/build.sh smollm2), at 1 and at
# 16 rows. Prints the load average before and after. Never part of npm test or CI.
#
#   bash test/bench/native/decode-step.sh            # REPS=2 STEPS=64 PROMPT=46 ROWS="1 16" PRECISIONS="int8 fp32"
#
# The C API headers come from service/native/c-api-headers.sh (it says where from, pinned by hash).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
INCLUDE="$(bash "$ROOT/service/native/c-api-headers.sh")"

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
