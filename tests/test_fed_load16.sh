#!/bin/bash
# Issue 7: the load test at 16 simulated sites for 3 rounds (64 sites is in docs/reliability.md).
exec bash "$FEDLORA_SOURCE_DIR/tests/load/load.sh" 16 3
