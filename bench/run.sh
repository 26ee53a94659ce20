#!/usr/bin/env bash
# Training benchmark, fedlora against PyTorch on the same cores (issue 8).
#
#   bench/run.sh [BUILD_DIR]        (default: build)   env REPS=3 CONFIGS="tiny small medium"
#
# Prints the machine line and sgemm's limit (bench/sgemm_peak), then runs train_bench and
# bench/torch_lora.py per configuration REPS times, alternating which goes first, and prints a table
# of medians. Both sides use 2 threads. PyTorch runs in both sane arrangements and the faster median
# counts: torch 2 threads with OPENBLAS_NUM_THREADS=1, and torch 1 thread with OPENBLAS_NUM_THREADS=2
# (never both at 2: the two pools then fight). fedlora has one pool (OMP_NUM_THREADS=2 = --threads 2).
# A PyTorch run stops timing after the step that passes 30 s (rates stay per step), so a pathological
# arrangement on a busy machine cannot stretch the run; with the defaults it takes about 10 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
reps=${REPS:-3}
configs=${CONFIGS:-tiny small medium}
python=${PYTHON:-/usr/bin/python3} # Debian's python3-torch lives in the system interpreter
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
for f in "$build/train_bench" "$build/sgemm_peak"; do
  [ -x "$f" ] || { echo "run.sh: $f not found; build first (cmake --build $build)" >&2; exit 2; }
done
"$python" -c "import torch" 2>/dev/null || { echo "run.sh: $python cannot import torch (apt-get install python3-torch)" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out" "$out.limit"' EXIT
model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
torch_version=$("$python" -c "import torch; print(torch.__version__)")
echo "machine: $model, $(nproc) cores, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, load average $(cut -d' ' -f1-3 /proc/loadavg), torch $torch_version"

# tee -a: stderr may be the same file as stdout (run.sh > log 2>&1), which a plain tee would truncate
"$build/sgemm_peak" --seconds 0.3 | tee -a /dev/stderr | sed -n 's/^limit threads \([0-9]*\) GFLOP\/s \([0-9.]*\)/\1 \2/p' >"$out.limit"
limit=$(awk '$1 == 2 { print $2 }' "$out.limit")
echo "sgemm limit at 2 threads: $limit GFLOP/s"

# One measurement: "<config> <side> tokens/s GFLOP/s RSS_MB cores_used" appended to $out.
fedlora_run() {
  OMP_NUM_THREADS=2 "$build/train_bench" --config "$1" --threads 2 --limit "$limit" |
    sed -n "s/^tokens\/s \([0-9.]*\)  GFLOP\/s \([0-9.]*\).*peak RSS \([0-9.]*\) MB  cores used \([0-9.]*\).*/$1 fedlora \1 \2 \3 \4/p" >>"$out"
}
torch_run() { # config torch_threads openblas_threads
  OMP_NUM_THREADS=$2 OPENBLAS_NUM_THREADS=$3 "$python" "$here/torch_lora.py" --config "$1" --threads "$2" --max-seconds 30 |
    sed -n "s/^tokens\/s \([0-9.]*\) .*peak RSS \([0-9.]*\) MB  cores used \([0-9.]*\).*/$1 torch$2x$3 \1 0 \2 \3/p" >>"$out"
}
for rep in $(seq 1 "$reps"); do
  for c in $configs; do
    echo "rep $rep/$reps: $c" >&2
    if [ $((rep % 2)) = 1 ]; then
      fedlora_run "$c"; torch_run "$c" 2 1; torch_run "$c" 1 2
    else
      torch_run "$c" 1 2; torch_run "$c" 2 1; fedlora_run "$c"
    fi
  done
done

"$python" - "$out" "$limit" "$reps" $configs <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
limit = float(sys.argv[2])
def med(config, side, col):
    v = [float(r[col]) for r in rows if r[0] == config and r[1] == side]
    return statistics.median(v) if v else float("nan")
print(f"\nmedians of {sys.argv[3]} runs, 2 threads each side; sgemm limit {limit:.1f} GFLOP/s")
print("| config | fedlora tokens/s | GFLOP/s | % of sgemm limit | peak RSS MB | cores used | torch 2x1 tokens/s "
      "| torch 1x2 tokens/s | torch best | torch peak RSS MB | cores used | fedlora / torch | RSS fedlora / torch |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for c in sys.argv[4:]:
    f, g, rss, cores = med(c, "fedlora", 2), med(c, "fedlora", 3), med(c, "fedlora", 4), med(c, "fedlora", 5)
    a, b = med(c, "torch2x1", 2), med(c, "torch1x2", 2)
    best = "torch2x1" if a >= b else "torch1x2"
    t, trss, tcores = max(a, b), med(c, best, 4), med(c, best, 5)
    print(f"| {c} | {f:.0f} | {g:.1f} | {100 * g / limit:.0f}% | {rss:.0f} | {cores:.2f} | {a:.0f} | {b:.0f} | {t:.0f} "
          f"| {trss:.0f} | {tcores:.2f} | {f / t:.2f}x | {rss / trss:.2f} |")
EOF
