#!/usr/bin/env bash
# The Python venv test/readme/examples.test.ts runs the README's Python example in: the official openai client
# from PyPI, every package pinned by PyPI's sha256 (test/readme/requirements.txt, pip --require-hashes), in
# ${CHATMIRROR_CACHE:-~/.cache/chatmirror}/venv-readme-openai. Idempotent: a second run with the same
# requirements only checks the stamp (well under a second). Prints the venv's python on stdout.
#
#   bash test/readme/python-venv.sh && CHATMIRROR_README_PY=1 npx vitest run test/readme
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cache=${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}
venv=$cache/venv-readme-openai
requirements=test/readme/requirements.txt
stamp=$venv/.chatmirror-requirements.sha256

command -v python3 >/dev/null || { echo "python-venv.sh: needs python3 (3.10 or later) with its venv module" >&2; exit 1; }
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  echo "python-venv.sh: creating $venv (openai from PyPI, hash-checked)" >&2
  python3 -m venv "$venv"
  # --no-deps: the requirements list the whole set; --only-binary: wheels only, the kind the hashes are of.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$requirements"
  "$venv/bin/python" -c 'import openai; print(f"python-venv.sh: openai {openai.__version__}")' >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
