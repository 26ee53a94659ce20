#!/bin/bash
# Issue 7 chaos runs: a 5-round federation (aggregator and sites alpha, beta, gamma on loopback)
# in which the aggregator and the sites are killed with SIGKILL at seeded random moments and
# restarted on the same state_dir. Every trial must end with a final adapter bit-identical to an
# uninterrupted run's (the aggregator's last round and each site's final/), and a watcher reading
# state_dir every 20 ms throughout (tests/chaos/state_watch.py) must never see a partial or
# corrupt file.
#   bash tests/chaos/chaos.sh [--seed N] [--trials N] [--kills N]
# Kinds of kill, drawn per kill from the seed: the aggregator at a random moment; a site at a
# random moment (downloading, training or uploading); the aggregator right as a round's last
# update is accepted (aggregation and the commit's writes). Uses $FEDLORA_BUILD_DIR (default ./build).
: "${FEDLORA_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FEDLORA_BUILD_DIR:=$FEDLORA_SOURCE_DIR/build}"
export FEDLORA_SOURCE_DIR FEDLORA_BUILD_DIR
seed=1 trials=3 kills=4
while [ $# -gt 0 ]; do
  case $1 in
    --seed) seed=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    --kills) kills=$2; shift 2 ;;
    *) echo "usage: chaos.sh [--seed N] [--trials N] [--kills N]" >&2; exit 2 ;;
  esac
done
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
rounds=5
sites=(alpha beta gamma)
plan=(--set rounds.total=$rounds --set rounds.deadline_s=20 --set rounds.wait_after_quorum_s=2 --set train.local_steps=40)
RANDOM=$seed

# One federation in phase NAME; with kills > 0, the chaos. Sets agg_name to the last aggregator.
run() {
  local name=$1 n_kills=$2 k=0 restarts=0
  fed_phase "$name"
  mkdir -p agg
  python3 "$FEDLORA_SOURCE_DIR/tests/chaos/state_watch.py" agg watch.stop >watch.log 2>&1 &
  local watcher=$!
  agg_name=agg-0
  fed_start_agg $agg_name "${plan[@]}"
  for s in "${sites[@]}"; do fed_start_site $s; done
  while [ $k -lt "$n_kills" ]; do
    k=$((k + 1))
    local kind=$((RANDOM % 3)) delay_ms=$((200 + RANDOM % 1300))
    if [ $kind -eq 2 ]; then # the aggregator as a round's last update comes in
      local want=$(( ($(grep -c "accepted (" agg-*.log | awk -F: '{s += $2} END {print s}') / 3 + 1) * 3 ))
      wait_for 60 eval '[ "$(cat agg-*.log | grep -c "accepted (")" -ge '$want' ] || [ -d agg/rounds/000'$rounds' ]'
    else
      sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    fi
    [ -d agg/rounds/000$rounds ] && break # the run is over: nothing left to interrupt
    if [ $kind -eq 1 ]; then
      local s=${sites[$((RANDOM % 3))]}
      alive "$s" || continue
      echo "  kill $k: site $s ($(tail -1 $s.log | cut -c26-100))"
      fed_kill "$s" 9
      fed_start_site "$s"
    else
      echo "  kill $k: aggregator, $(ls agg/rounds | tr '\n' ' ')committed; last: $(tail -1 $agg_name.log | cut -c26-110)"
      fed_kill $agg_name 9
      restarts=$((restarts + 1))
      agg_name=agg-$restarts
      fed_start_agg $agg_name "${plan[@]}"
    fi
  done
  local s
  for s in "${sites[@]}"; do
    fed_wait_exit $s 240
    expect "$name: $s finishes with exit 0" 0 "$fed_rc"
  done
  fed_wait_exit $agg_name 60
  expect "$name: the aggregator exits 0" 0 "$fed_rc"
  touch watch.stop
  wait $watcher
  local watch_rc=$?
  if [ $watch_rc -eq 0 ]; then fed_ok "$name: $(tail -1 watch.log | sed 's/state_watch: //')"; else
    fed_bad "$name: state_dir showed partial or corrupt files:"; cat watch.log; fi
}

run reference 0
ref=$fed_run/reference
for t in $(seq 1 "$trials"); do
  echo "trial $t (seed $seed)"
  run "trial$t" "$kills"
  expect "trial $t: every round committed" "$rounds" "$(wc -l <agg/metrics.jsonl)"
  if cmp -s "$ref/agg/rounds/000$rounds/adapter_model.safetensors" agg/rounds/000$rounds/adapter_model.safetensors; then
    fed_ok "trial $t: the final adapter is bit-identical to the uninterrupted run's"
  else
    fed_bad "trial $t: the final adapter differs from the uninterrupted run's"
  fi
  for s in "${sites[@]}"; do
    if cmp -s "$ref/site-$s/final/adapter_model.safetensors" "site-$s/final/adapter_model.safetensors"; then
      fed_ok "trial $t: $s's final adapter is bit-identical"
    else
      fed_bad "trial $t: $s's final adapter differs from the uninterrupted run's"
    fi
  done
done
fed_finish
