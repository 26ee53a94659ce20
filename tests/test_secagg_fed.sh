#!/bin/bash
# Issue 6, secure aggregation over the network: four sites x three rounds with secagg = on.
#  - every committed round equals the example-weighted mean of the updates the sites kept within
#    the quantisation bound tests/fed/check_secagg.py computes (and the check is sharp); the
#    aggregator kept no site's losses, and its pooled losses are the weighted means of the losses
#    the sites kept, within their bound;
#  - the same run with secagg off: round 1 (same start, same site seeds, so the same updates) is
#    the same adapter within that bound, its pooled validation loss the same within 2e-4, and the
#    final adapters are close;
#  - with dp = distributed: uniform weights, each site's noised update in the sum, and no pooled
#    loss at all (the DP guarantee covers only the noised updates);
#  - with secagg_transcript = on, every byte the aggregator stored (state_dir, including each
#    message it received) holds no site's update or delta, and each masked vector is uncorrelated
#    with its site's true delta.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
source "$FEDLORA_SOURCE_DIR/tests/fed/secagg.sh"
plan=(--set rounds.total=3 --set server.allowed_clients=alpha,beta,gamma,delta --set rounds.min_clients=4)

run() {
  fed_phase "$1"
  sa_four_sites
  shift
  fed_start_agg agg "${plan[@]}" "$@"
  for s in "${sa_sites[@]}"; do fed_start_site $s; done
  for s in "${sa_sites[@]}"; do
    fed_wait_exit $s 90
    expect "$(basename "$fed_dir"): $s finishes with exit 0" 0 "$fed_rc"
  done
  fed_wait_exit agg 30
  expect "$(basename "$fed_dir"): the aggregator exits 0" 0 "$fed_rc"
  expect "$(basename "$fed_dir"): three rounds committed" "0000 0001 0002 0003" "$(ls agg/rounds | xargs)"
}

run secagg "${sa_set[@]}" --set privacy.secagg_transcript=on
expect_in "secagg: the aggregator ran secure aggregation" agg.log "secure aggregation over 4 sites, threshold 3"
expect "secagg: nothing was stored as a pending (unmasked) update" "" "$(find agg/pending -type f 2>/dev/null)"
if sa_check agg --transcript; then
  fed_ok "secagg: each round = the weighted mean within the quantisation bound; no unmasked byte stored"
else
  fed_bad "secagg: rounds or transcript"
fi

run dp "${sa_set[@]}" --set privacy.dp=distributed --set privacy.dp_clip=0.05 --set privacy.dp_noise_multiplier=1
expect_in "dp: the sites added their noise shares" alpha.log "noise share added"
if sa_check agg --uniform --no-losses; then fed_ok "dp: each round = the uniform mean within the bound; no loss"; else fed_bad "dp"; fi

run plain
cd "$fed_run"
python3 - <<'PY' && fed_ok "plain vs secagg: round 1 equal within the bound, final adapters close" || fed_bad "plain vs secagg"
import sys
sys.path.insert(0, __import__("os").environ["FEDLORA_SOURCE_DIR"] + "/tests/fed")
from check_rounds import adapter_payload
bad = 0
for r, tol in ((1, 5e-6), (3, 1e-4)):
    p = adapter_payload(f"plain/agg/rounds/{r:04d}")
    s = adapter_payload(f"secagg/agg/rounds/{r:04d}")
    g = adapter_payload("plain/agg/rounds/0000")
    diff = max(abs(x - y) for x, y in zip(p, s))
    moved = max(abs(x - y) for x, y in zip(p, g))
    print(f"round {r}: secagg vs plain differ by at most {diff:.3g}; the round moved the adapter by {moved:.3g}")
    bad += not (diff <= tol and moved > 100 * diff)
import json
vp, vs = (json.loads(open(f"{d}/agg/metrics.jsonl").readline())["val_loss"] for d in ("plain", "secagg"))
print(f"round 1: pooled validation loss plain {vp:.6f}, secagg {vs:.6f}")
bad += not abs(vp - vs) <= 2e-4
sys.exit(bad)
PY
fed_finish
