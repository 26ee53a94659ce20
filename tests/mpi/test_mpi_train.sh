#!/bin/bash
# fedlora train on 2 MPI ranks with batch B each = one process with batch 2B on the same data.
#
# Tolerances. The ranks see exactly the windows of the one process (train.h), so the only
# difference is the order of float summation (each rank sums its rows, then the allreduce adds the
# two). With SGD the adapters then agree to ~1e-6 of each tensor's scale: checked at 1e-5. AdamW
# divides by sqrt(v), which turns a 1e-7 relative wobble of a gradient element near zero into a
# visible share of its step; one process on 1 vs 2 threads (another summation order, no MPI)
# differs by ~4e-5 the same way, so AdamW is checked at 2e-4. A run on the wrong windows (one
# process with batch B) must miss by far more than that, so the check can fail.
set -u
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
mpi="mpirun --oversubscribe --allow-run-as-root"
common=(--model "$fed_fixture/base" --data "$fed_fixture/data/alpha.jsonl" --val-fraction 0 --rank 4 --alpha 8
        --seq-len 64 --steps 10 --seed 5 --threads 1 --json)
diff_ok() { python3 "$FEDLORA_SOURCE_DIR/tests/mpi/adapter_diff.py" "$@" >"$fed_run/diff.txt"; }
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read())[sys.argv[2]])' "$1" "$2"; }

# SGD: plain summation order.
"$fed_bin/fedlora" train "${common[@]}" --optimizer sgd --lr 0.5 --batch 4 --out sgd1 >sgd1.json 2>sgd1.log
$mpi -np 2 "$fed_bin/fedlora" train "${common[@]}" --optimizer sgd --lr 0.5 --batch 2 --out sgd2 >sgd2.json 2>sgd2.log
expect "sgd: 2 ranks exit 0" 0 $?
expect "sgd: one JSON report (only rank 0 prints)" 1 "$(wc -l <sgd2.json)"
expect "sgd: the report says 2 ranks" 2 "$(field sgd2.json ranks)"
if diff_ok sgd2 sgd1 1e-5; then fed_ok "sgd: 2 ranks x batch 2 = 1 process x batch 4 (rel 1e-5)"; else fed_bad "sgd adapters differ"; cat "$fed_run/diff.txt"; fi
python3 - sgd1.json sgd2.json <<'PY' && fed_ok "sgd: same first and last loss (rel 1e-6)" || fed_bad "sgd losses differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("loss_first", "loss_last"):
    print(k, a[k], b[k])
    assert abs(a[k] - b[k]) <= 1e-6 * abs(a[k]), k
PY

# AdamW with gradient accumulation: two micro-batches of 2 x 2 windows per step.
"$fed_bin/fedlora" train "${common[@]}" --lr 2e-3 --batch 4 --grad-accum 2 --out adam1 >adam1.json 2>adam1.log
$mpi -np 2 "$fed_bin/fedlora" train "${common[@]}" --lr 2e-3 --batch 2 --grad-accum 2 --out adam2 >adam2.json 2>adam2.log
expect "adamw: 2 ranks exit 0" 0 $?
if diff_ok adam2 adam1 2e-4; then fed_ok "adamw: 2 ranks = 1 process (rel 2e-4)"; else fed_bad "adamw adapters differ"; cat "$fed_run/diff.txt"; fi
tail -1 "$fed_run/diff.txt"

# The negative control: the right batch size on one rank's windows only.
"$fed_bin/fedlora" train "${common[@]}" --lr 2e-3 --batch 2 --grad-accum 2 --out half >/dev/null 2>half.log
if diff_ok half adam1 2e-4; then fed_bad "the checker cannot tell batch 2 from batch 4"; else fed_ok "batch 2 alone differs: $(tail -1 "$fed_run/diff.txt")"; fi

# A rank killed mid-run: the job ends (non-zero) in bounded time, no adapter is written.
$mpi -np 2 "$fed_bin/fedlora" train "${common[@]}" --steps 100000 --lr 2e-3 --batch 2 --out killed >killed.json 2>killed.log &
fed_pid[killed]=$!
wait_for 30 log_has killed.log "on 2 ranks" || fed_bad "the 2-rank job did not start"
ranks=$(ps -o pid= --ppid "${fed_pid[killed]}" | tr -d ' ')
victim=$(for p in $ranks; do tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && echo "$p"; done)
if [ -n "$victim" ]; then kill -9 "$victim"; else fed_bad "rank 1 not found among $ranks"; fi
fed_wait_exit killed 60
[ "$fed_rc" != 0 ] && [ "$fed_rc" != timeout ] && fed_ok "a killed rank ends the job (exit $fed_rc)" ||
  fed_bad "a killed rank: exit $fed_rc"
[ ! -e killed ] && fed_ok "no adapter written by the failed job" || fed_bad "the failed job wrote killed/"
fed_finish
