#!/bin/bash
# Issue 7: a short libFuzzer run of every parser that reads outside input (tests/fuzz, built with
# clang into this build's fuzz-smoke directory by scripts/fuzz.sh), a few seconds each from the seed
# corpora. Fails on any crash, leak, hang or out-of-memory; the long runs are in docs/reliability.md.
set -u
if ! command -v clang >/dev/null; then
  echo "FAIL: clang is not installed (scripts/deps.sh installs it for the tests)"
  exit 1
fi
export FEDLORA_FUZZ_BUILD=$FEDLORA_BUILD_DIR/fuzz-smoke
bash "$FEDLORA_SOURCE_DIR/scripts/fuzz.sh" "${FEDLORA_FUZZ_SMOKE_SECONDS:-3}"
