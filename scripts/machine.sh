#!/usr/bin/env bash
# What the suite runs on, at the top of a test log: the CPU, its vector extensions, and which
# runtimes work here (`compress doctor`). Informative only: a failing runtime fails its own tests.
# Usage: scripts/machine.sh [compress command]
set -u
compress="${1:-compress}"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "vector extensions: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512[a-z_0-9]*|avx_vnni|amx[a-z_0-9]*|f16c|fma)$' | sort | tr '\n' ' ')"
"$compress" doctor --timeout 300 || echo "machine: a runtime failed its check above; its tests will fail"
exit 0
