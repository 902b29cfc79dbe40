#!/usr/bin/env bash
# The locust venv: ${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}/venv-locust with test/load/requirements.txt,
# installed from PyPI with --require-hashes (every package pinned by version and sha256). Idempotent: a stamp of
# the requirements' hash skips the install when nothing changed. Prints the venv's locust on success.
#
#   bash test/load/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
VENV="$CACHE/venv-locust"
REQ=test/load/requirements.txt

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.chatmirror-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$REQ"
  echo "$want" >"$STAMP"
fi
"$VENV/bin/locust" --version >&2
echo "$VENV/bin/locust"
