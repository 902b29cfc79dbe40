#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-server, llama-bench, llama-quantize) from the llama.cpp source tree vendored
# in PyPI's llama-cpp-python sdist, hash-pinned, for `npm run bench:compare`. Never part of `npm test` or CI.
#
#   bash test/bench/peers/llama-cpp.sh        # prints the bin directory on stdout
#
# Cached under ${CHATMIRROR_CACHE:-~/.cache/chatmirror}/peers/llama.cpp-<version>, keyed by this script's
# sha256; a second run only prints. Built for this CPU (GGML_NATIVE) without AMX, with nothing fetched at build or
# run time (no web UI, no curl, no OpenSSL: the bench talks to it over loopback HTTP).
#
# Why no AMX: on this machine's Xeon (amx_tile/amx_int8 in its flags) ggml's AMX kernels segfault in
# ggml_backend_amx_mul_mat on the first prompt batch of a Q8_0 or Q4_1 model (llama-bench -p 37: SIGSEGV, seen
# with gdb); F32 runs. GCC keeps explicit -mno-* flags over -march=native, so the rest of the ISA stays native.
set -euo pipefail

VERSION=0.3.36
# The sdist's sha256 as PyPI's simple index lists it (https://pypi.org/simple/llama-cpp-python/).
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
DEST="$CACHE/peers/llama.cpp-$VERSION"
TOOLS=(llama-server llama-bench llama-quantize)

KEY="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
built() { [ -f "$DEST/.built" ] && [ "$(cat "$DEST/.built")" = "$KEY" ]; }
if built; then
  echo "$DEST/bin"
  exit 0
fi
# One build at a time: a second caller waits for the first, then finds it built.
mkdir -p "$CACHE/peers"
exec 9>"$CACHE/peers/.llama-cpp.lock"
flock 9
if built; then
  echo "$DEST/bin"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "llama-cpp-python==$VERSION --hash=sha256:$SHA256" >"$work/req.txt"
echo "fetching llama-cpp-python $VERSION sdist" >&2
python3 -m pip download --disable-pip-version-check --no-deps --no-binary :all: --require-hashes \
  -r "$work/req.txt" -d "$work" >&2
# pip checked the hash above; check again so a cached wheel dir can never stand in for the sdist.
echo "$SHA256  $work/llama_cpp_python-$VERSION.tar.gz" | sha256sum -c --quiet
tar -xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"

echo "building ${TOOLS[*]} (several minutes on 2 cores)" >&2
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" >&2
cmake --build "$work/build" --target "${TOOLS[@]}" -j "$(nproc)" >&2

rm -rf "$DEST"
mkdir -p "$DEST/bin"
for t in "${TOOLS[@]}"; do cp "$work/build/bin/$t" "$DEST/bin/"; done
"$DEST/bin/llama-server" --version >"$DEST/version.txt" 2>&1 || true
echo "$KEY" >"$DEST/.built"
echo "$DEST/bin"
