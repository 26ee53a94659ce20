#!/bin/bash
# Issue 7: memcheck on a short federation (2 sites, 2 rounds, 2 local steps): the aggregator and
# both fedlora-client processes run under valgrind; any error or definite/indirect leak fails.
# Suppressions (tests/valgrind.supp) are only for reports inside libraries, each with its reason.
#   bash tests/valgrind/run.sh          (uses $FEDLORA_BUILD_DIR, default ./build; takes minutes)
: "${FEDLORA_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FEDLORA_BUILD_DIR:=$FEDLORA_SOURCE_DIR/build}"
export FEDLORA_SOURCE_DIR FEDLORA_BUILD_DIR OMP_NUM_THREADS=1
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=no
  --suppressions="$FEDLORA_SOURCE_DIR/tests/valgrind.supp")
fed_phase valgrind
fed_write_agg_config
port=$(free_port)
fed_port=$port
sets=(--set "server.listen=127.0.0.1:$port" --set server.allowed_clients=alpha,beta --set rounds.total=2
  --set rounds.min_clients=2 --set train.local_steps=2 --set train.batch=1 --set train.seq_len=32
  --set rounds.deadline_s=600 --set server.poll_seconds=2)
"${vg[@]}" --log-file=vg-agg.txt "$fed_bin/fedlora-aggregator" --config agg.ini "${sets[@]}" >agg.log 2>&1 &
fed_pid[agg]=$!
wait_for 300 log_has agg.log "listening on" || { fed_bad "the aggregator under valgrind does not listen"; cat agg.log; exit 1; }
for s in alpha beta; do
  fed_start_site $s --set client.log_level=warn # writes $s.ini; restarted under valgrind below
  fed_kill $s 9
  "${vg[@]}" --log-file=vg-$s.txt "$fed_bin/fedlora-client" --config $s.ini >$s.log 2>&1 &
  fed_pid[$s]=$!
done
for s in alpha beta; do
  fed_wait_exit $s 1800
  expect "$s under valgrind exits 0 (99 = memcheck errors)" 0 "$fed_rc"
done
fed_wait_exit agg 600
expect "the aggregator under valgrind exits 0 (99 = memcheck errors)" 0 "$fed_rc"
for f in vg-agg.txt vg-alpha.txt vg-beta.txt; do
  echo "$f: $(grep -E 'ERROR SUMMARY' $f | sed 's/==[0-9]*== //')"
  grep -E "definitely lost|indirectly lost" $f | sed 's/==[0-9]*== /  /'
done
fed_finish
