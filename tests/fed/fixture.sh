#!/bin/bash
# Makes what every federation test shares, once per build directory, in $FEDLORA_BUILD_DIR/fedtest-base:
#   base/          a tiny byte-level Llama (dim 64, 2 layers) pretrained for a few steps
#   pki/           certs/dev-pki.sh with sites alpha, beta, gamma and delta (delta is never allowed)
#   data/SITE.jsonl  synthetic records: alpha cardiology, beta oncology, gamma paediatrics
# The directory appears whole by one rename, tagged with this script's digest, so a changed script
# remakes it and concurrent callers (ctest -j) wait on a lock instead of racing.
set -euo pipefail
build=${FEDLORA_BUILD_DIR:?}
src=${FEDLORA_SOURCE_DIR:?}
out="$build/fedtest-base"
stamp=$(sha256sum "$0" | cut -c1-64)

exec 9>"$build/fedtest-base.lock"
flock -w 300 9 || { echo "fixture: $build/fedtest-base.lock held for 300 s" >&2; exit 1; }
if [ "$(cat "$out/STAMP" 2>/dev/null)" = "$stamp" ]; then exit 0; fi

tmp="$build/fedtest-base.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/data"
export OPENBLAS_CORETYPE=Haswell
"$build/fedlora" synth --kind generic --records 200 --seed 3 --out "$tmp/generic.jsonl"
"$build/fedlora" pretrain --data "$tmp/generic.jsonl" --out "$tmp/base" --dim 64 --layers 2 --heads 4 --hidden 172 \
  --seq-len 128 --batch 4 --steps 20 --seed 1 --threads 2 --log-every 20 >/dev/null
rm "$tmp/generic.jsonl"
bash "$src/certs/dev-pki.sh" "$tmp/pki" alpha beta gamma delta >/dev/null
for pair in alpha:cardiology beta:oncology gamma:paediatrics; do
  "$build/fedlora" synth --site "${pair#*:}" --records 300 --seed 2 --out "$tmp/data/${pair%%:*}.jsonl"
done
echo "$stamp" >"$tmp/STAMP"
rm -rf "$out"
mv "$tmp" "$out"
echo "fixture: made $out"
