#!/usr/bin/env bash
# Prints the folder holding onnxruntime's C API headers (onnxruntime_c_api.h), fetching them into the cache first
# if they are not there. Used by service/native/build.sh and test/bench/native/decode-step.sh.
#
# onnxruntime's C API is a table of function pointers that only ever grows, so a header of an older API version
# works with a newer library. No registry here serves onnxruntime's own headers (neither the npm package nor the
# wheel carries them, Maven Central serves no onnxruntime artifact); the Go module proxy serves
# github.com/yalue/onnxruntime_go, which vendors Microsoft's onnxruntime_c_api.h (ORT_API_VERSION 24) unchanged,
# MIT. Pinned by the sha256 of the module zip; the proxy notes that this version is served from an earlier copy.
set -euo pipefail

CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
MODULE=github.com/yalue/onnxruntime_go
VERSION=v1.27.0
ZIP_SHA256=5b7c7e6878caa1f1bf5d5acc09bfdd9de4c2f1e1beee1ff5529570139c540cb0
INCLUDE="$CACHE/native/ort-c-api-$VERSION"

if [ ! -f "$INCLUDE/onnxruntime_c_api.h" ]; then
  # GOPROXY's first entry when go is installed and points at a mirror; the public proxy otherwise.
  PROXY="$( (go env GOPROXY 2>/dev/null || true) | cut -d, -f1)"
  case "$PROXY" in http*) ;; *) PROXY=https://proxy.golang.org ;; esac
  mkdir -p "$CACHE/downloads" "$INCLUDE"
  zip="$CACHE/downloads/onnxruntime_go-$VERSION.zip"
  curl -fsSL -o "$zip.part" "$PROXY/$MODULE/@v/$VERSION.zip" >&2
  echo "$ZIP_SHA256  $zip.part" | sha256sum -c --quiet >&2
  mv "$zip.part" "$zip"
  unzip -o -q -j "$zip" "$MODULE@$VERSION/onnxruntime_c_api.h" "$MODULE@$VERSION/onnxruntime_ep_c_api.h" \
    "$MODULE@$VERSION/LICENSE" -d "$INCLUDE" >&2
fi
echo "$INCLUDE"
