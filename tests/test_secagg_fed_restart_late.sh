#!/bin/bash
# Issue 6: aggregator SIGKILL during the secure-aggregation stages masked unmask, then restart: the run
# completes correctly (tests/fed/secagg.sh, sa_restart_during, says what is checked).
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
source "$FEDLORA_SOURCE_DIR/tests/fed/secagg.sh"
for stage in masked unmask; do sa_restart_during $stage; done
fed_finish
