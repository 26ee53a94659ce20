#!/usr/bin/env bash
# The README's first command: installs, builds, and runs the demo.
# The federated demo (aggregator + three sites) arrives with the federation work; until then this
# runs the mutual-TLS RPC round trip: a server and clients on loopback, 64 MiB each way, refusals.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FEDLORA_BUILD_DIR:-$top/build}
FEDLORA_BUILD_DIR=$build bash "$top/scripts/build.sh"
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
echo "demo: the federated demo is not built yet; running the mutual-TLS RPC round trip instead"
cd "$build"
ctest -R '^test_rpc$' --output-on-failure -V | grep -E "presented|accepted|checks|tests passed"
