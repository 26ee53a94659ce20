# Shared by tests/test_secagg_fed*.sh (source after lib.sh): four sites, since secure aggregation
# with the default threshold t = 3 needs four to show a dropout. The fixture holds data for three;
# delta's (cardiology records of another seed) is made in the phase directory.
sa_four_sites() {
  rm "$fed_dir/data"
  mkdir "$fed_dir/data"
  local s
  for s in alpha beta gamma; do ln -s "$fed_fixture/data/$s.jsonl" "$fed_dir/data/$s.jsonl"; done
  "$fed_bin/fedlora" synth --site cardiology --records 240 --seed 5 --out "$fed_dir/data/delta.jsonl" >/dev/null
}
sa_sites=(alpha beta gamma delta)
sa_set=(--set privacy.secagg=on --set server.allowed_clients=alpha,beta,gamma,delta --set rounds.min_clients=4
  --set privacy.secagg_stage_s=10 --set rounds.wait_after_quorum_s=2)

# sa_check STATE_DIR [check_secagg.py options]: every committed round equals the weighted mean of
# the sites' kept updates within the quantisation bound (tests/fed/check_secagg.py).
sa_check() {
  local state=$1
  shift
  python3 "$FEDLORA_SOURCE_DIR/tests/fed/check_secagg.py" "$state" --log "$fed_dir"/agg*.log --sites "$fed_dir"/site-* "$@"
}

# sa_restart_during STAGE: the aggregator SIGKILLs itself on the first message of STAGE (keys,
# shares, masked, unmask: FEDLORA_TEST_SECAGG_CRASH, aggregator/secagg_server.h) in round 1 and is
# restarted on the same state_dir: the restarted one opens round 1 as a new attempt from the key
# stage; the three sites redo the stages with fresh keys and the update they kept; the run
# completes and each round equals the weighted mean of the kept updates within the bound. (The
# sites' reconnection backoff may let a key stage or two close empty first: more attempts.)
sa_restart_during() {
  local stage=$1 s set3=(--set privacy.secagg=on --set privacy.secagg_stage_s=5 --set rounds.total=1)
  fed_phase "$stage"
  FEDLORA_TEST_SECAGG_CRASH=$stage fed_start_agg agg-first "${set3[@]}"
  for s in alpha beta gamma; do fed_start_site $s; done
  fed_wait_exit agg-first 40
  expect "$stage: the aggregator was SIGKILLed in stage $stage" 137 "$fed_rc"
  expect "$stage: state.json recorded the stage" "$stage" \
    "$(python3 -c 'import json; print(json.load(open("agg/state.json"))["secagg"]["stage"])')"
  fed_start_agg agg "${set3[@]}"
  expect_in "$stage: the restart begins the round again from the key stage" agg.log \
    "restart: round 1 was in secagg stage $stage; it restarts from the key stage as attempt 1"
  for s in alpha beta gamma; do
    fed_wait_exit $s 60
    expect "$stage: $s finishes with exit 0" 0 "$fed_rc"
  done
  fed_wait_exit agg 30
  expect "$stage: the restarted aggregator exits 0" 0 "$fed_rc"
  expect "$stage: round 1 committed by an attempt after the restart" "yes" \
    "$(python3 -c 'import json; print("yes" if json.loads(open("agg/metrics.jsonl").readline())["attempt"] >= 1 else "no")')"
  if sa_check agg; then fed_ok "$stage: round 1 = the weighted mean within the bound"; else fed_bad "$stage: mean"; fi
}
