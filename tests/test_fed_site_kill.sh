#!/bin/bash
# Issue 5: a site killed with SIGKILL in the middle of its local training.
#  quorum: with min_clients = 2 the round commits with the two others once wait_after_quorum_s
#          has passed; metrics.jsonl names the dead site as missing and the adapter is the weighted
#          mean of the two updates; the aggregator still exits (after its grace period).
#  below:  with min_clients = 3 the round is aborted at its deadline ("aborted ... missing: gamma")
#          and reopened; the sites that had submitted resubmit the update they kept, gamma comes
#          back, and the round commits as attempt 1 with all three.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
steps=60 # long enough that gamma is still training when it is killed at step 10

# kill_gamma_mid_training: once gamma logs step 10 of round 1, before its update exists.
kill_gamma_mid_training() {
  if wait_for 30 log_has gamma.log "round 1: step 10/$steps"; then
    fed_kill gamma 9
    expect "gamma was killed before submitting" "" "$(grep -F 'update from gamma' agg.log)"
  else
    fed_bad "gamma did not reach step 10 of round 1 within 30 s"
  fi
}

fed_phase quorum
fed_start_agg agg --set rounds.total=1 --set rounds.min_clients=2 --set rounds.wait_after_quorum_s=2 \
  --set train.local_steps=$steps
for s in alpha beta gamma; do fed_start_site $s; done
kill_gamma_mid_training
for s in alpha beta; do
  fed_wait_exit $s 60
  expect "quorum: $s finishes with exit 0" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "quorum: the aggregator exits 0 without hearing from gamma" 0 "$fed_rc"
expect "quorum: round 1 committed with alpha and beta, gamma missing, first attempt" \
  "attempt 0 submitted alpha,beta missing gamma" \
  "$(python3 -c 'import json; l=json.loads(open("agg/metrics.jsonl").readline()); print("attempt", l["attempt"], "submitted", ",".join(l["submitted"]), "missing", ",".join(l["missing"]))')"
if fed_check_rounds agg; then fed_ok "quorum: round 1 = the weighted mean of alpha's and beta's updates"; else fed_bad "quorum: weighted mean"; fi

fed_phase below
fed_start_agg agg --set rounds.total=1 --set rounds.min_clients=3 --set rounds.deadline_s=15 \
  --set train.local_steps=$steps
for s in alpha beta gamma; do fed_start_site $s; done
kill_gamma_mid_training
if wait_for 40 log_has agg.log "aborted"; then
  expect_in "below: the abort names gamma as missing" agg.log "round 1 aborted at its 15 s deadline below quorum (3 needed); missing: gamma;"
  expect "below: nothing was committed" "0000" "$(ls agg/rounds | xargs)"
  fed_start_site gamma
else
  fed_bad "below: round 1 was not aborted within 30 s"
fi
for s in alpha beta gamma; do
  fed_wait_exit $s 60
  expect "below: $s finishes with exit 0" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "below: the aggregator exits 0" 0 "$fed_rc"
expect "below: round 1 committed on its second attempt with all three" "attempt 1 submitted alpha,beta,gamma" \
  "$(python3 -c 'import json; l=json.loads(open("agg/metrics.jsonl").readline()); print("attempt", l["attempt"], "submitted", ",".join(l["submitted"]))')"
for s in alpha beta; do
  expect_in "below: $s resubmitted the update it kept" $s.log "round 1: resubmitting the update trained before a restart"
done
if fed_check_rounds agg; then fed_ok "below: round 1 = the weighted mean of the three updates"; else fed_bad "below: weighted mean"; fi
fed_finish
