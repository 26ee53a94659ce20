#!/bin/bash
# Scaling of data-parallel LoRA training over MPI ranks (docs/mpi.md): the same global batch on
# 1 rank and on 2 ranks (half the batch each), one compute thread per rank, plus 1 rank on 2
# threads as the same cores used without MPI. Prints tokens/s and the share of the step spent in
# MPI_Allreduce on rank 0 (which includes waiting for the slower rank: the load imbalance shows
# there too). Needs a build with -DFEDLORA_MPI=ON.
#
# usage: bench/mpi_scaling.sh BUILD_DIR [STEPS]   (FEDLORA_BENCH_DIM, _LAYERS, _RANK to change the shape)
set -euo pipefail
build=${1:?usage: bench/mpi_scaling.sh BUILD_DIR [STEPS]}
steps=${2:-30}
dim=${FEDLORA_BENCH_DIM:-256} layers=${FEDLORA_BENCH_LAYERS:-4} rank=${FEDLORA_BENCH_RANK:-16}
export OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1
work=$(mktemp -d /tmp/mpi_scaling.XXXXXX)
trap 'rm -rf "$work"' EXIT
mpi="mpirun --oversubscribe --allow-run-as-root"

# A randomly initialised model of the chosen shape (one optimizer step: the figures do not depend
# on the weights) and synthetic site data.
"$build/fedlora" synth --site cardiology --records 400 --seed 1 --out "$work/data.jsonl" >/dev/null 2>&1
"$build/fedlora" pretrain --data "$work/data.jsonl" --out "$work/base" --dim "$dim" --layers "$layers" --heads 4 \
  --hidden $((dim * 8 / 3)) --seq-len 128 --batch 1 --steps 1 --threads 2 >/dev/null 2>&1

# run LABEL NP THREADS BATCH_PER_RANK
run() {
  local json
  json=$($mpi -np "$2" "$build/fedlora" train --model "$work/base" --data "$work/data.jsonl" --val-fraction 0 \
    --rank "$rank" --alpha $((2 * rank)) --targets all --seq-len 128 --steps "$steps" --threads "$3" \
    --batch "$4" --out "$work/out" --json 2>/dev/null)
  python3 - "$1" "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
share = r["allreduce_seconds"] / r["seconds"] if r["seconds"] > 0 else 0.0
print(f"{sys.argv[1]:<26} {r['ranks']:>5} {r['tokens_per_s']:>10.0f} {100 * share:>13.1f}%")
PY
}

echo "model dim $dim, $layers layers, LoRA r $rank on all modules; global batch 8 x 128 tokens; $steps steps; $(getconf _NPROCESSORS_ONLN) cores"
printf '%-26s %5s %10s %14s\n' "arrangement" ranks tokens/s "allreduce"
run "1 rank x 1 thread" 1 1 8
run "2 ranks x 1 thread" 2 1 4
run "1 rank x 2 threads" 1 2 8
