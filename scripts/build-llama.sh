#!/usr/bin/env bash
# Builds llama-cpp-python for any x86-64 CPU this project's machines (and its users') may have,
# and installs it into the given environment.
#
# llama-cpp-python ships as source only, and its default build compiles llama.cpp with
# -march=native: a wheel built on one machine then uses that machine's instructions. Built on a
# Xeon with AMX it crashed there in the AMX matmul path (a general protection fault in
# libggml-cpu.so on the first eval); built on an AVX-512 machine it would die with SIGILL on an
# AVX2-only one. So the build is chosen here, not by the build machine:
#   GGML_NATIVE=OFF                      no -march=native
#   AVX, AVX2, FMA, F16C, BMI2, SSE4.2   x86-64-v3: every x86 server and desktop CPU since 2015
#   AVX-512 and AMX off                  absent on AVX2-only CPUs; AMX is the path that crashed
# llama.cpp's repacked-weight layouts for AVX2 stay on. The cost against a native build on the
# machine at hand is measured by bench/llama_build_speed.py; docs/measurements.md states it.
#
# The wheel is kept in a folder named after the version and the flags, so a second set-up on
# the same machine installs it in seconds, and a wheel built with other flags (pip's own cache
# keys sdist builds by URL, not by CMAKE_ARGS) is never picked up by mistake.
#
# Usage: scripts/build-llama.sh PYTHON
#        scripts/build-llama.sh --print-cache   (where the wheel for these flags is kept; builds nothing)
set -euo pipefail
py="${1:?usage: build-llama.sh PYTHON | --print-cache}"
version="0.3.36"
flags="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON"
flags+=" -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF"
flags+=" -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
flags+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
key="$(printf '%s %s' "$version" "$flags" | sha256sum | cut -c1-12)"
cache="${COMPRESS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compress/wheels}/llama-cpp-python-$version-$key"
if [ "$py" = "--print-cache" ]; then echo "$cache"; exit 0; fi

if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "build-llama: compiling llama.cpp for x86-64-v3 (AVX2, no AVX-512/AMX): 8-20 minutes on 2 cores"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  CMAKE_ARGS="$flags" "$py" -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
    --wheel-dir "$tmp" "llama-cpp-python==$version"
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache.partial" && mv "$tmp" "$cache.partial" && mv "$cache.partial" "$cache"
  printf '%s\n' "$flags" > "$cache/CMAKE_ARGS"
fi
"$py" -m pip install --quiet --no-deps "$cache"/llama_cpp_python-*.whl
echo "build-llama: llama-cpp-python $version installed from $cache"
