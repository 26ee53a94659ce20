#!/usr/bin/env bash
# The Debian 12 packages fedlora needs to build and run, in one place. Installs the missing ones
# when run as root; otherwise prints the exact apt-get line and fails. Idempotent.
# `deps.sh --mpi` adds Open MPI for -DFEDLORA_MPI=ON (docs/mpi.md), which is otherwise left out.
set -euo pipefail

packages=(
  build-essential cmake pkg-config       # toolchain
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler   # gRPC core and the wire protocol
  libssl-dev openssl                     # TLS, secure aggregation, dev PKI
  libopenblas-openmp-dev                 # sgemm, sharing one OpenMP pool with our loops
  libjansson-dev                         # JSON: configs, PEFT, tokenizers
  libpcre2-dev libutf8proc-dev           # tokenizer pre-tokenizer regex and NFC
  libinih-dev                            # INI configuration
  libmicrohttpd-dev                      # the aggregator's Prometheus /metrics endpoint
  libplplot-dev plplot-driver-cairo      # `fedlora plot`: PNG through cairo
  python3                                # tests: independent recomputations (tests/fed/*.py)
  python3-grpcio python3-protobuf python3-cryptography protobuf-compiler  # tests: Python peers of the wire protocol
  python3-prometheus-client              # tests: the /metrics text through Prometheus' own parser
  clang libclang-rt-14-dev               # tests: the libFuzzer smoke run of every parser
)

# Optional: training across MPI ranks (-DFEDLORA_MPI=ON); installed only with --mpi.
mpi_packages=(libopenmpi-dev openmpi-bin)
if [ "${1:-}" = "--mpi" ]; then
  packages+=("${mpi_packages[@]}")
elif ! dpkg-query -W -f='${Status}' libopenmpi-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "deps.sh: optional, for -DFEDLORA_MPI=ON: apt-get install -y ${mpi_packages[*]} (or deps.sh --mpi)" >&2
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "fedlora needs these Debian packages; install them as root with:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps.sh: done"
