#!/bin/bash
# A federation in which site beta is a 2-rank MPI job (rank 0 talks to the aggregator, both ranks
# train half of each micro-batch) and alpha and gamma are single processes, against the same
# federation with beta as one process: every run completes and the final adapters match within
# the AdamW tolerance of test_mpi_train.sh (2e-4 of each tensor's scale; the only difference is
# float summation order in beta's gradients, see there).
set -u
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
plan=(--set rounds.total=2 --set train.local_steps=5)

# fed_bin pointed at this for one site starts that site under mpirun.
wrap=$fed_run/mpi-bin
mkdir -p "$wrap"
cat >"$wrap/fedlora-client" <<EOS
#!/bin/bash
exec mpirun --oversubscribe --allow-run-as-root -np 2 "$fed_bin/fedlora-client" "\$@"
EOS
chmod +x "$wrap/fedlora-client"

# federation NAME MPI_SITE: one run to the end; MPI_SITE (or "none") runs on 2 ranks.
federation() {
  fed_phase "$1"
  fed_start_agg agg "${plan[@]}"
  local s
  for s in alpha beta gamma; do
    if [ "$s" = "$2" ]; then fed_bin=$wrap fed_start_site "$s"; else fed_start_site "$s"; fi
  done
  for s in alpha beta gamma; do
    fed_wait_exit "$s" 180
    expect "$1: site $s finished" 0 "$fed_rc"
  done
  fed_wait_exit agg 30
  expect "$1: aggregator finished" 0 "$fed_rc"
}

federation single none
federation mpi beta
expect_in "mpi: beta's rank 1 trained with rank 0" "$fed_run/mpi/beta.log" "fedlora-client[rank 1]"
if grep -qF "fedlora-client[rank 1]" "$fed_run/single/beta.log"; then fed_bad "single: beta ran on ranks"; fi
for s in alpha beta gamma; do
  if python3 "$FEDLORA_SOURCE_DIR/tests/mpi/adapter_diff.py" "$fed_run/mpi/site-$s/final" \
    "$fed_run/single/site-$s/final" 2e-4 >"$fed_run/diff-$s.txt"; then
    fed_ok "final adapter at $s: MPI run = single-process run ($(tail -1 "$fed_run/diff-$s.txt"))"
  else
    fed_bad "final adapter at $s differs"
    cat "$fed_run/diff-$s.txt"
  fi
done

# A rank of beta killed mid-round: the MPI job ends with an error, and beta restarted on the same
# state_dir trains that round again from the global adapter; the run completes.
fed_phase kill
fed_start_agg agg --set rounds.total=1 --set train.local_steps=150
fed_start_site alpha
fed_start_site gamma
fed_bin=$wrap fed_start_site beta
wait_for 60 log_has beta.log "round 1: step 10/" || fed_bad "kill: beta did not start training"
victim=
for p in $(ps -o pid= --ppid "${fed_pid[beta]}"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
done
if [ -n "$victim" ]; then kill -9 "$victim"; else fed_bad "kill: beta's rank 1 not found"; fi
fed_wait_exit beta 60
[ "$fed_rc" != 0 ] && [ "$fed_rc" != timeout ] && fed_ok "kill: beta's job ended (exit $fed_rc)" ||
  fed_bad "kill: beta's job after losing rank 1: exit $fed_rc"
fed_bin=$wrap fed_start_site beta
for s in alpha beta gamma; do
  fed_wait_exit "$s" 180
  expect "kill: site $s finished after beta's restart" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "kill: aggregator finished" 0 "$fed_rc"
fed_finish
