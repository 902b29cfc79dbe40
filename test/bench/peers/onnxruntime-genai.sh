#!/usr/bin/env bash
# onnxruntime-genai for `npm run bench:compare`: a venv from the hash-pinned requirements-genai.txt, under
# ${CHATMIRROR_CACHE:-~/.cache/chatmirror}/peers/venv-genai, keyed by that file's sha256. Never part of npm test
# or CI.
#
#   bash test/bench/peers/onnxruntime-genai.sh      # prints the venv's python on stdout
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
VENV="$CACHE/peers/venv-genai"
REQ="$HERE/requirements-genai.txt"
KEY="$(sha256sum "$REQ" | cut -d' ' -f1)"
STAMP="$VENV/.chatmirror-requirements.sha256"

mkdir -p "$CACHE/peers"
exec 9>"$CACHE/peers/.genai.lock"
flock 9
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$KEY" ]; then
  echo "installing onnxruntime-genai into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --require-hashes -r "$REQ" >&2
  echo "$KEY" >"$STAMP"
fi
echo "$VENV/bin/python"
