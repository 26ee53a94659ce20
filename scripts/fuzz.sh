#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, one per parser) with clang into build-fuzz and runs
# each for SECONDS (default 60) from its seeds in tests/fuzz/corpus. Inputs that found new paths
# are kept in build-fuzz/fuzz/corpus, so later runs go on from there. Exits non-zero if any target
# crashed, leaked, hung or ran out of memory; the input that did it is in build-fuzz/fuzz/artifacts.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]      e.g. scripts/fuzz.sh 300 fuzz_update
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FEDLORA_FUZZ_BUILD:-$root/build-fuzz}
seconds=${1:-60}
[ $# -gt 0 ] && shift
case $seconds in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
command -v clang >/dev/null || { echo "fuzz.sh: clang is not installed (apt-get install clang)" >&2; exit 1; }

mkdir -p "$build/fuzz/artifacts"
if ! { CC=clang cmake -S "$root" -B "$build" -DFEDLORA_FUZZ=ON && cmake --build "$build" -j2 --target fuzz_all; } \
    >"$build/fuzz/build.log" 2>&1; then
  tail -30 "$build/fuzz/build.log" >&2
  exit 1
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in "$root"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    [ -x "$build/fuzz/$name" ] && targets+=("$name")
  done
fi

export OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for target in "${targets[@]}"; do
  corpus=${target#fuzz_}
  [ -d "$root/tests/fuzz/corpus/$corpus" ] || { echo "fuzz.sh: no seeds for $target" >&2; exit 2; }
  mkdir -p "$build/fuzz/corpus/$corpus"
  log=$build/fuzz/$target.log
  if "$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz/artifacts/$target-" "$build/fuzz/corpus/$corpus" \
      "$root/tests/fuzz/corpus/$corpus" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "$target: ok, ${runs:-?} executions in ${seconds} s, $cov, corpus $(ls "$build/fuzz/corpus/$corpus" | wc -l) inputs"
  else
    echo "$target: FAILED (log: $log)"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -8 | sed 's/^/  /'
    failed=1
  fi
done
exit $failed
