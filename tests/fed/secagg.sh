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
