#!/bin/bash
# Issue 7: the short chaos run in ctest (two trials of four SIGKILLs each); the long one is in
# docs/reliability.md.
exec bash "$FEDLORA_SOURCE_DIR/tests/chaos/chaos.sh" --seed 7 --trials 2 --kills 4
