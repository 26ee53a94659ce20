#!/usr/bin/env bash
# Rebuilds the embedded demo base model (models/demo-base) from the generic synthetic corpus:
# `fedlora synth --kind generic` with fixed seeds, then `fedlora pretrain` with the fixed recipe below.
# The result is bit-for-bit identical at 2 threads with OpenBLAS's Haswell kernels (both forced here),
# so a rebuild can be checked against the committed weights.
#
#   scripts/make-demo-base.sh                 rebuild models/demo-base in place (a few minutes)
#   scripts/make-demo-base.sh --check         rebuild into a temp dir and compare with the committed file
#   scripts/make-demo-base.sh --out DIR [--stop-after N]
#                                             write elsewhere; stop after the first N steps of the same
#                                             recipe (the schedule still spans all steps; no validation
#                                             pass, which does not touch the weights), as the test does
# FEDLORA=path/to/fedlora picks the binary (default: build/fedlora).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
fedlora=${FEDLORA:-$top/build/fedlora}
out=$top/models/demo-base
stop_after=()
check=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --stop-after) stop_after=(--stop-after "$2"); shift 2 ;;
    --check) check=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "make-demo-base.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$fedlora" ] || { echo "make-demo-base.sh: $fedlora is not built (set FEDLORA=...)" >&2; exit 2; }

# Reproducibility depends on the thread count and the BLAS kernels, not on the machine's defaults.
export OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ $check = 1 ] && out=$work/model

"$fedlora" synth --kind generic --records 8000 --seed 1 --out "$work/train.jsonl"
val=()
if [ ${#stop_after[@]} = 0 ]; then
  "$fedlora" synth --kind generic --records 300 --seed 2 --out "$work/val.jsonl"
  val=(--val "$work/val.jsonl")
fi
"$fedlora" pretrain --data "$work/train.jsonl" "${val[@]}" --out "$out" \
  --dim 128 --layers 4 --heads 4 --kv-heads 4 --hidden 344 --seq-len 256 \
  --batch 8 --steps 600 --lr 2e-3 --warmup 50 --grad-clip 1 --init-std 0.02 --seed 1 --threads 2 \
  --log-every 100 "${stop_after[@]}"

if [ $check = 1 ]; then
  if cmp "$out/model.safetensors" "$top/models/demo-base/model.safetensors"; then
    echo "make-demo-base.sh: the rebuilt model.safetensors is identical to the committed one"
  else
    echo "make-demo-base.sh: the rebuilt model.safetensors DIFFERS from the committed one" >&2
    exit 1
  fi
fi
