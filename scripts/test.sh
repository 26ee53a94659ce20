#!/usr/bin/env bash
# The README's second command: installs, builds and runs the whole test suite. Exits non-zero on
# any failure. Arguments go to ctest (e.g. -R rpc).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FEDLORA_BUILD_DIR:-$top/build}
FEDLORA_BUILD_DIR=$build bash "$top/scripts/build.sh"
# OpenBLAS runs with the Haswell kernels on this hardware (older kernels misbehave here).
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
cd "$build"
# Tests run one at a time: each already uses both cores, and oversubscribed OpenBLAS crawls.
ctest --output-on-failure "$@"
