#!/usr/bin/env bash
# The service's own suites (test/unit, test/integration) on the Node.js the service image ships: the release in
# images/node-release.sh, fetched from the npm registry (`node-linux-<arch>`, the official binary), checked against
# the registry's sha512 integrity pinned there, and cached under ${CHATMIRROR_CACHE:-~/.cache/chatmirror}/node, so
# a second run downloads nothing. Development machines may run another Node (see package.json `engines`); this is
# what keeps the shipped one tested.
#
#   bash test/platform/node-lts.sh                      # test/unit test/integration
#   bash test/platform/node-lts.sh test/unit/cli         # other vitest arguments instead
#
# Needs node_modules (npm ci) and a node + npm on PATH to fetch with; the suites then run with the fetched node
# first on PATH, so child processes (`node`, `npx`, the server the tests spawn) run on it too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=images/node-release.sh
source images/node-release.sh
cache=${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node-lts.sh: no pinned Node.js build for $(uname -m)" >&2; exit 1 ;;
esac
integrity=${NODE_INTEGRITY[$arch]}
home=$cache/node/v$NODE_VERSION-linux-$arch
node=$home/bin/node
log() { printf '[node-lts] %s\n' "$*" >&2; }

[ -x node_modules/.bin/vitest ] || { echo "node-lts.sh: no node_modules: run ONNXRUNTIME_NODE_INSTALL=skip npm ci first" >&2; exit 1; }

if [ ! -x "$node" ]; then
  tarball=$(fetch_npm_tarball "node-linux-$arch" "$NODE_VERSION" "$integrity" "$cache/downloads")
  unpacked=$(mktemp -d "$cache/node/.unpack.XXXXXX" 2>/dev/null || { mkdir -p "$cache/node" && mktemp -d "$cache/node/.unpack.XXXXXX"; })
  tar -xzf "$tarball" -C "$unpacked" package/bin/node package/LICENSE
  mkdir -p "$unpacked/package/bin"
  rm -rf "$home"
  mv "$unpacked/package" "$home" # whole or not at all: a killed run leaves no half-extracted node behind
  rm -rf "$unpacked"
fi
[ "$("$node" --version)" = "v$NODE_VERSION" ] || { echo "node-lts.sh: $node is not v$NODE_VERSION" >&2; exit 1; }

if [ $# -eq 0 ]; then set -- test/unit test/integration; fi
log "vitest run $* on Node $("$node" --version) ($node)"
PATH="$home/bin:$PATH" exec "$node" node_modules/vitest/vitest.mjs run "$@"
