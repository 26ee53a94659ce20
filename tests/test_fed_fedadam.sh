#!/bin/bash
# Issue 5: the server optimiser end to end. A run with aggregation.strategy = fedadam commits
#   m = β1·m + (1 − β1)·Δ,  v = β2·v + (1 − β2)·Δ²,  global = g + η·m / (√v + τ)   (m0 = 0, v0 = τ²)
# from the submitted updates, recomputed in Python for two rounds (the second one checks that m and
# v were carried over in server_state.safetensors); plain averaging must not match it.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
opt=(--strategy fedadam --server-lr 0.01 --beta1 0.9 --beta2 0.99 --tau 0.001)
fed_start_agg agg --set rounds.total=2 --set aggregation.strategy=fedadam --set aggregation.server_lr=0.01 \
  --set aggregation.beta1=0.9 --set aggregation.beta2=0.99 --set aggregation.tau=0.001
for s in alpha beta gamma; do fed_start_site $s; done
fed_expect_run_done 60 alpha beta gamma
if fed_check_rounds agg "${opt[@]}"; then fed_ok "each round = g + η·m/(√v + τ) of the kept updates"; else fed_bad "fedadam"; fi
if fed_check_rounds agg >/dev/null; then fed_bad "plain averaging should not match a fedadam run"; else fed_ok "plain averaging does not match"; fi
fed_finish
