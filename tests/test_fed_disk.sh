#!/bin/bash
# Issue 7: disk faults at the aggregator. Its state_dir sits on a tiny tmpfs that is first made
# read-only, then filled up, while three sites try to submit round 1. While it cannot write, every
# update is refused with UNAVAILABLE and the reason (read-only / no space), nothing in state_dir is
# partial or corrupt, and the sites keep retrying. Once it can write again the run completes, with a
# final adapter bit-identical to an uninterrupted run.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: this test mounts a tmpfs for state_dir, which needs root"
  exit 77
fi

fed_phase ref
fed_start_agg agg
for s in alpha beta gamma; do fed_start_site $s; done
for s in alpha beta gamma; do fed_wait_exit $s 90; done
fed_wait_exit agg 30
expect "the uninterrupted run finishes" 0 "$fed_rc"
ref=$fed_dir/agg/rounds/0003/adapter_model.safetensors

fed_phase disk
mkdir agg
if ! mount -t tmpfs -o size=1m tmpfs agg 2>mount.err; then
  echo "SKIPPED: cannot mount a tmpfs here: $(cat mount.err)"
  exit 77
fi
mnt=$fed_dir/agg
# Processes first (they hold the mount), then the mount, then the run directory.
trap 'for p in "${fed_pid[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; umount "$mnt"; fed_cleanup' EXIT

# Every file a reader can see parses: JSON documents and safetensors headers; no temp files remain.
state_sound() {
  python3 - "$mnt" <<'PY'
import json, os, struct, sys
bad = []
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(root, f)
        if f.startswith(".") or ".tmp" in f:
            bad.append("temporary file left: " + p)
        elif f.endswith(".json"):
            try:
                json.load(open(p))
            except Exception as e:
                bad.append(f"{p}: {e}")
        elif f.endswith(".jsonl"):
            for n, line in enumerate(open(p), 1):
                try:
                    json.loads(line)
                except Exception as e:
                    bad.append(f"{p}:{n}: {e}")
        elif f.endswith(".safetensors"):
            b = open(p, "rb").read()
            n = struct.unpack("<Q", b[:8])[0] if len(b) >= 8 else -1
            try:
                json.loads(b[8:8 + n])
            except Exception as e:
                bad.append(f"{p}: header: {e}")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
}

fed_start_agg agg --set rounds.deadline_s=120
wait_for 30 test -d "$mnt/rounds/0000" || fed_bad "the initial adapter was not written"
mount -o remount,ro "$mnt"
for s in alpha beta gamma; do fed_start_site $s; done
wait_for 60 log_has agg.log "cannot store the update now" || fed_bad "no refusal while read-only"
sleep 1
expect_in "a read-only state_dir is named as the reason" agg.log "Read-only file system"
expect_in "the site is told and retries" alpha.log "submit failed"
state_sound && fed_ok "state_dir is sound while read-only" || fed_bad "state_dir while read-only"

mount -o remount,rw "$mnt"
dd if=/dev/zero of="$mnt/filler" bs=4096 2>/dev/null # until the tmpfs is full
wait_for 60 log_has agg.log "No space left on device" || fed_bad "no refusal while the disk is full"
expect_in "a full state_dir is named as the reason" agg.log "No space left on device"
state_sound && fed_ok "state_dir is sound while full" || fed_bad "state_dir while full"
rm -f "$mnt/filler"
expect "no round was committed while state_dir could not be written" "0000" "$(ls "$mnt/rounds" | xargs)"

for s in alpha beta gamma; do
  fed_wait_exit $s 120
  expect "site $s finishes once space returns" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "the aggregator finishes" 0 "$fed_rc"
state_sound && fed_ok "state_dir is sound at the end" || fed_bad "state_dir at the end"
if cmp -s "$ref" "$mnt/rounds/0003/adapter_model.safetensors"; then
  fed_ok "the final adapter is bit-identical to the uninterrupted run"
else
  fed_bad "the final adapter differs from the uninterrupted run"
fi
fed_finish
