#!/bin/bash
# Issue 5: three sites, three rounds. Every committed global adapter must equal the example-weighted
# mean of the updates the sites say they sent, recomputed in Python (tests/fed/check_rounds.py);
# the same recomputation with uniform weights must NOT match (the check can fail). Every site ends
# with exit 0 and the final adapter of the last round.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
cd "$fed_run"

fed_start_agg agg
for s in alpha beta gamma; do fed_start_site $s; done
fed_expect_run_done 60 alpha beta gamma

expect "three rounds committed" "0000 0001 0002 0003" "$(ls agg/rounds | xargs)"
expect "metrics.jsonl has a line per round" 3 "$(wc -l <agg/metrics.jsonl)"
expect "every round averaged all three sites" "alpha,beta,gamma alpha,beta,gamma alpha,beta,gamma" \
  "$(python3 -c 'import json,sys; print(" ".join(",".join(json.loads(l)["submitted"]) for l in open(sys.argv[1])))' agg/metrics.jsonl)"
if fed_check_rounds agg; then fed_ok "each round = the weighted mean of the kept updates"; else fed_bad "weighted mean"; fi
if fed_check_rounds agg --weighting uniform >/dev/null; then
  fed_bad "the recomputation with uniform weights should not match (example counts differ)"
else
  fed_ok "uniform weights do not match: the comparison is sharp enough"
fi
for s in alpha beta gamma; do
  if cmp -s agg/rounds/0003/adapter_model.safetensors site-$s/final/adapter_model.safetensors; then
    fed_ok "$s's final adapter is round 3's, byte for byte"
  else
    fed_bad "$s's final adapter differs from agg/rounds/0003"
  fi
done
fed_finish
