#!/usr/bin/env bash
# Prints the folder holding onnxruntime's C API headers (onnxruntime_c_api.h), fetching them into the cache first
# if they are not there. Used by service/native/build.sh and test/bench/native/decode-step.sh.
#
# onnxruntime's C API is a table of function pointers that only ever grows, so a header of an older API version
# works with a newer library. No registry here serves onnxruntime's own headers (neither the npm package nor the
# wheel carries them, Maven Central serves no onnxruntime artifact); the Go module proxy serves
# github.com/yalue/onnxruntime_go, which vendors Microsoft's onnxruntime_c_api.h (ORT_API_VERSION 24) unchanged,
# MIT. Pinned by the sha256 of the module zip; the proxy notes that this version is served from an earlier copy.
#
#   bash service/native/c-api-headers.sh         # the include folder (fetched and verified if not cached)
#   bash service/native/c-api-headers.sh --zip   # the verified module zip itself (images/build.sh hands it to the
#                                                # image build, which cannot reach the proxy)
# ORT_C_API_ZIP=FILE: use that copy of the module zip instead of fetching it (it is checked against the same hash).
set -euo pipefail

CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
MODULE=github.com/yalue/onnxruntime_go
VERSION=v1.27.0
ZIP_SHA256=5b7c7e6878caa1f1bf5d5acc09bfdd9de4c2f1e1beee1ff5529570139c540cb0
INCLUDE="$CACHE/native/ort-c-api-$VERSION"

zip="$CACHE/downloads/onnxruntime_go-$VERSION.zip"
if [ ! -f "$zip" ]; then
  mkdir -p "$CACHE/downloads"
  if [ -n "${ORT_C_API_ZIP:-}" ]; then
    cp "$ORT_C_API_ZIP" "$zip.part"
  else
    # GOPROXY's first entry when go is installed and points at a mirror; the public proxy otherwise.
    PROXY="$( (go env GOPROXY 2>/dev/null || true) | cut -d, -f1)"
    case "$PROXY" in http*) ;; *) PROXY=https://proxy.golang.org ;; esac
    curl -fsSL -o "$zip.part" "$PROXY/$MODULE/@v/$VERSION.zip" >&2
  fi
  echo "$ZIP_SHA256  $zip.part" | sha256sum -c --quiet >&2
  mv "$zip.part" "$zip"
fi
if [ "${1:-}" = --zip ]; then
  echo "$zip"
  exit 0
fi
if [ ! -f "$INCLUDE/onnxruntime_c_api.h" ]; then
  mkdir -p "$INCLUDE"
  unzip -o -q -j "$zip" "$MODULE@$VERSION/onnxruntime_c_api.h" "$MODULE@$VERSION/onnxruntime_ep_c_api.h" \
    "$MODULE@$VERSION/LICENSE" -d "$INCLUDE" >&2
fi
echo "$INCLUDE"
