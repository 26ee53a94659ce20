#!/usr/bin/env bash
# scripts/make-demo-base.sh is reproducible: the first 20 steps of its recipe (same data, seeds,
# schedule over all steps, 2 threads, Haswell kernels) give the same bytes in two runs, and those
# bytes match the digest recorded when models/demo-base was made. A changed recipe, generator or
# training numerics shows up here; the full rebuild is `scripts/make-demo-base.sh --check`.
set -euo pipefail
: "${FEDLORA_SOURCE_DIR:?run through ctest}" "${FEDLORA_BUILD_DIR:?run through ctest}"
want=045b823db0b8a30d75126ea7fa167b72a3540894d4061364529690cb8a1dba65
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FEDLORA="$FEDLORA_BUILD_DIR/fedlora"
for run in a b; do
  bash "$FEDLORA_SOURCE_DIR/scripts/make-demo-base.sh" --out "$work/$run" --stop-after 20 >"$work/$run.log" 2>&1 ||
    { cat "$work/$run.log"; echo "FAIL: make-demo-base.sh --stop-after 20 failed"; exit 1; }
done
a=$(sha256sum <"$work/a/model.safetensors" | cut -d' ' -f1)
b=$(sha256sum <"$work/b/model.safetensors" | cut -d' ' -f1)
echo "first 20 steps: $a"
[ "$a" = "$b" ] || { echo "FAIL: two runs of the same recipe differ ($a vs $b)"; exit 1; }
[ "$a" = "$want" ] || { echo "FAIL: the 20-step digest $a is not the recorded $want (recipe, generator or numerics changed?)"; exit 1; }
for f in tokenizer.json tokenizer_config.json config.json; do
  cmp "$work/a/$f" "$FEDLORA_SOURCE_DIR/models/demo-base/$f" || { echo "FAIL: $f differs from the committed one"; exit 1; }
done
echo "ok"
