#!/bin/bash
# Secure aggregation against an independent implementation of its site: tests/fed/python_secagg_site.py
# is site alpha written from the protocol (grpcio, Google's protobuf runtime, Python's cryptography,
# its own Shamir over GF(2^8) and fixed-point code), beside three real fedlora-client sites.
#  all:      four sites x two rounds; every site and the aggregator exit 0, the aggregator unmasked 4
#            masked updates per round, and each committed round equals the weighted mean of the four
#            kept updates within the quantisation bound, the pooled losses the weighted means of the
#            sites' own (tests/fed/check_secagg.py).
#  dropout:  delta SIGKILLs itself right after sending its shares: the survivors, the Python site
#            among them, reveal their shares of delta's mask key; the aggregator rebuilds it (and
#            checks it against the key delta advertised) and round 1 = the mean of the other three.
#            (All four must be in the round with a quorum of three: they first join an aggregator
#            with min_clients = 4 killed at the first advert, then one with min_clients = 3.)
# Needs python3-grpcio, python3-protobuf, python3-cryptography and protobuf-compiler (scripts/deps.sh).
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
source "$FEDLORA_SOURCE_DIR/tests/fed/secagg.sh"

fed_grpc_python python3-cryptography cryptography

# python_site: starts the Python site alpha in the background (log python.log, pid fed_pid[alpha]).
python_site() {
  mkdir -p site-alpha
  fed_python_peer python_secagg_site.py alpha
  "${fed_peer[@]}" --server "127.0.0.1:$fed_port" --examples 200 --state site-alpha --name alpha --timeout 240 \
    >python.log 2>&1 &
  fed_pid[alpha]=$!
}
# python_done PHASE: waits for the Python site and shows its output. Sets site_wait, how long the
# real sites may still take: little once the Python site has failed (their round cannot complete).
python_done() {
  fed_wait_exit alpha 240
  site_wait=10
  if [ "$fed_rc" = 0 ]; then
    site_wait=60
    fed_ok "$1: the Python site's checks all hold ($(grep -c '^ok' python.log) ok)"
  else
    fed_bad "$1: the Python site exits $fed_rc: $(grep '^FAIL' python.log | head -3 | tr '\n' ' ')"
  fi
  sed 's/^/  python site: /' python.log
}
# unmasked_line ROUND: the aggregator's line on unmasking ROUND (its last attempt).
unmasked_line() { grep -o "round $1 attempt [0-9]*: unmasked the sum of [0-9]* masked updates ([0-9]* reveals)" agg.log | tail -1; }

fed_phase all
sa_four_sites
fed_start_agg agg "${sa_set[@]}" --set rounds.total=2
python_site
for s in beta gamma delta; do fed_start_site $s; done
python_done all
for s in beta gamma delta; do
  fed_wait_exit $s $site_wait
  expect "all: $s finishes with exit 0" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "all: the aggregator exits 0" 0 "$fed_rc"
expect "all: two rounds committed" "0000 0001 0002" "$(ls agg/rounds 2>/dev/null | xargs)"
expect_in "all: secure aggregation over the four sites" agg.log "secure aggregation over 4 sites, threshold 3"
for r in 1 2; do
  expect "all: round $r unmasked the four masked updates" "4 masked updates (4 reveals)" \
    "$(unmasked_line $r | grep -o '[0-9]* masked updates ([0-9]* reveals)')"
  expect "all: round $r took the Python site's masked vector" 1 \
    "$(grep -cE "round $r attempt [0-9]+: masked vector from alpha accepted" agg.log)"
done
expect "all: round 1 summed all four, the Python site among them" "alpha,beta,delta,gamma" \
  "$(python3 -c 'import json; print(",".join(sorted(json.loads(open("agg/metrics.jsonl").readline())["sites"])))' 2>&1 | tail -1)"
if sa_check agg; then fed_ok "all: each round = the weighted mean of the four within the bound, losses pooled"; else
  fed_bad "all: sa_check"; fi

fed_phase dropout
sa_four_sites
FEDLORA_TEST_SECAGG_CRASH=keys fed_start_agg agg-first "${sa_set[@]}" --set rounds.total=1
python_site
for s in beta gamma; do fed_start_site $s; done
FEDLORA_TEST_SECAGG_CRASH=shares fed_start_site delta
fed_wait_exit agg-first 30
expect "dropout: the first aggregator died at the first advert" 137 "$fed_rc"
fed_start_agg agg "${sa_set[@]}" --set rounds.total=1 --set rounds.min_clients=3 --set privacy.secagg_stage_s=30
python_done dropout
fed_wait_exit delta $site_wait
expect "dropout: delta was SIGKILLed right after sending its shares" 137 "$fed_rc"
for s in beta gamma; do
  fed_wait_exit $s $site_wait
  expect "dropout: $s finishes with exit 0" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "dropout: the aggregator exits 0" 0 "$fed_rc"
expect_in "dropout: delta was in the attempt" agg.log "round 1 attempt 1: secure aggregation over 4 sites, threshold 3"
expect_in "dropout: delta's pairwise masks removed with three reveals, the Python site's among them" agg.log \
  "round 1 attempt 1: unmasked the sum of 3 masked updates (3 reveals)"
expect_in "dropout: the Python site revealed its share of delta's mask key" python.log "mask-key shares of ['delta']"
expect "dropout: round 1 summed alpha, beta, gamma" "alpha,beta,gamma" \
  "$(python3 -c 'import json; print(",".join(sorted(json.loads(open("agg/metrics.jsonl").readline())["sites"])))' 2>&1 | tail -1)"
if sa_check agg; then fed_ok "dropout: round 1 = the weighted mean of the three within the bound"; else
  fed_bad "dropout: sa_check"; fi
fed_finish
