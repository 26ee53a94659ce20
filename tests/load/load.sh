#!/bin/bash
# Issue 7 load test: N simulated sites (fedlora-client --simulate: no data, no training, a seeded
# random update of the planned shape) against one aggregator for R rounds on this machine.
#   bash tests/load/load.sh [SITES=64] [ROUNDS=3]
# Uses the build in $FEDLORA_BUILD_DIR (default ./build) and the federation fixture (tiny base
# model). Checks that every site finishes, every round commits with all N updates and equals the
# weighted mean of the updates the sites kept (tests/fed/check_rounds.py), and prints one line:
#   sites N rounds R  round_s mean/max  aggregate_s max  agg_peak_rss_mb  agg_cpu_s  wall_s
# The aggregator is configured with threads = 4 to check that it raises them to N + 4 itself.
# LOAD_AGG_SET adds aggregator --set arguments, e.g. a larger adapter to see what memory scales with:
#   LOAD_AGG_SET="--set model.lora_rank=64 --set model.lora_targets=all" bash tests/load/load.sh 64
: "${FEDLORA_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FEDLORA_BUILD_DIR:=$FEDLORA_SOURCE_DIR/build}"
export FEDLORA_SOURCE_DIR FEDLORA_BUILD_DIR
sites=${1:-64}
rounds=${2:-3}
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"

fed_phase "load$sites"
names=()
for i in $(seq -f %03g 1 "$sites"); do names+=("site$i"); done
rm pki
bash "$FEDLORA_SOURCE_DIR/certs/dev-pki.sh" pki "${names[@]}" >/dev/null || { fed_bad "dev-pki.sh"; exit 1; }
fed_write_agg_config
t0=$SECONDS
fed_start_agg agg --set "server.allowed_clients=$(IFS=,; echo "${names[*]}")" --set rounds.total="$rounds" \
  --set rounds.min_clients="$sites" --set rounds.deadline_s=600 --set rounds.wait_after_quorum_s=0 \
  --set server.threads=4 --set server.poll_seconds=5 ${LOAD_AGG_SET:-}
agg_pid=${fed_pid[agg]}
expect_in "the aggregator raised its handler threads to sites + 4" agg.log "handler threads: $((sites + 4))"
# Peak RSS (VmHWM) and CPU ticks of the aggregator, sampled until it exits.
hz=$(getconf CLK_TCK)
( while [ -r /proc/$agg_pid/status ]; do
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$agg_pid/status 2>/dev/null)
    ticks=$(awk '{print $14 + $15}' /proc/$agg_pid/stat 2>/dev/null)
    [ -n "$hwm" ] && [ -n "$ticks" ] && echo "$hwm $ticks" >agg.usage
    sleep 0.2
  done ) &
sampler=$!
for s in "${names[@]}"; do fed_start_site "$s" --simulate --set client.log_level=warn; done
failed=0
for s in "${names[@]}"; do
  fed_wait_exit "$s" 300
  [ "$fed_rc" = 0 ] || { failed=$((failed + 1)); echo "  $s exit $fed_rc: $(tail -1 "$s.log")"; }
done
expect "every site finishes with exit 0" 0 "$failed"
fed_wait_exit agg 60
expect "the aggregator exits 0" 0 "$fed_rc"
wait "$sampler"
wall=$((SECONDS - t0))
expect "every round committed" "$rounds" "$(wc -l <agg/metrics.jsonl)"
expect "every round has all $sites updates" "$rounds" \
  "$(python3 -c "import json,sys; print(sum(len(json.loads(l)['submitted']) == $sites for l in open('agg/metrics.jsonl')))")"
if fed_check_rounds agg >check.log 2>&1; then fed_ok "each round = the weighted mean of the $sites updates"; else
  fed_bad "weighted mean (check.log)"; fi
read -r hwm ticks <agg.usage
python3 - "$sites" "$rounds" "$hwm" "$ticks" "$hz" "$wall" <<'PY'
import json, sys
sites, rounds, hwm, ticks, hz, wall = sys.argv[1:]
lines = [json.loads(l) for l in open("agg/metrics.jsonl")]
rs = [l["round_seconds"] for l in lines]
ag = [l["aggregate_seconds"] for l in lines]
floats = lines[0]["bytes_in"] // int(sites) // 4
print(f"sites {sites} rounds {rounds} update_floats {floats}  round_s mean {sum(rs)/len(rs):.2f} max {max(rs):.2f}  aggregate_s max {max(ag):.3f}"
      f"  agg_peak_rss_mb {int(hwm)/1024:.1f}  agg_cpu_s {int(ticks)/int(hz):.2f}  wall_s {wall}")
PY
fed_finish
