#!/bin/bash
# The wire protocol against an aggregator that shares none of fedlora's code: tests/fed/python_aggregator.py
# (grpcio, Google's protobuf runtime, the openssl CLI for the manifest; what it checks is listed there)
# runs one round for a real fedlora-client.
#  served:  the first four downloads are spoiled in turn (a gap between chunks, bytes that do not
#           hash to the header's digest, an adapter that is not the one the task announced, a 5 MiB
#           message): the site refuses each with the reason, tries again, trains on the good one
#           (so its digest of the plan, as it decoded it, equals the one signed here), sends an
#           update the Python side finds well-formed, and keeps the final adapter it is served, byte
#           for byte.
#  forged:  the manifests are signed by a site's key: the site refuses the task (exit 3) and sends
#           nothing.
#  half:    secure aggregation over four sites with threshold 2 (enough for an aggregator naming
#           different survivors to different sites to unmask one site alone): the site refuses the
#           task before advertising any key (exit 3, audited), and sends nothing.
# Needs python3-grpcio, python3-protobuf and protobuf-compiler (scripts/deps.sh installs them).
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"

fed_grpc_python

# start_python_aggregator [options]: starts it (log pyagg.log, results in pyagg/) and sets fed_port.
start_python_aggregator() {
  mkdir -p pyagg
  fed_python_peer python_aggregator.py aggregator
  "${fed_peer[@]}" --port-file pyagg/port --out pyagg "$@" >pyagg.log 2>&1 &
  fed_pid[pyagg]=$!
  if ! wait_for 30 test -s pyagg/port; then
    fed_bad "the Python aggregator does not listen: $(cat pyagg.log)"
    fed_finish
    exit 1
  fi
  fed_port=$(cat pyagg/port)
}
stop_python_aggregator() {
  touch pyagg/stop
  fed_wait_exit pyagg 30
  sed 's/^/  python aggregator: /' pyagg.log
}

fed_phase served
start_python_aggregator --faults gap,digest,announced,huge
fed_start_site alpha
fed_wait_exit alpha 120
expect "served: the site finishes with exit 0" 0 "$fed_rc"
stop_python_aggregator
expect "served: every check of the Python aggregator holds" 0 "$fed_rc"
expect_in "served: a gap between chunks is refused" alpha.log "chunk at offset 1028, expected 1024"
expect_in "served: bytes that do not hash to the digest are refused" alpha.log "SHA-256 mismatch"
expect_in "served: an adapter the task did not announce is refused" alpha.log "is not the one the round announced"
expect_in "served: a message above the receive limit is refused" alpha.log "larger than max"
expect_in "served: the site trained after all" alpha.log "round 1: trained 5 steps"
python3 - <<'PY' && fed_ok "served: the site's final adapter is the one it was served" || fed_bad "served: final adapter"
import json, os, struct, sys
sys.path.insert(0, os.environ["FEDLORA_SOURCE_DIR"] + "/tests/fed")
from check_rounds import adapter_payload
final = adapter_payload("site-alpha/final")
served = bytes.fromhex(json.load(open("pyagg/result.json"))["update"])
print(f"final adapter {len(served)} bytes")
sys.exit(not served or struct.pack(f"<{len(final)}f", *final) != served)
PY

fed_phase forged
start_python_aggregator --sign-key pki/beta.key --sign-cert pki/beta.pem
fed_start_site alpha
fed_wait_exit alpha 60
expect "forged: the site refuses the task (exit 3)" 3 "$fed_rc"
stop_python_aggregator
expect_in "forged: the site says why" alpha.log "manifest"
expect "forged: nothing was sent" "" "$(python3 -c 'import json; print(json.load(open("pyagg/result.json"))["update"])')"

fed_phase half
start_python_aggregator --secagg-threshold 2
fed_start_site alpha --set audit.file=audit.jsonl
fed_wait_exit alpha 60
expect "half: the site refuses the task (exit 3)" 3 "$fed_rc"
stop_python_aggregator
expect_in "half: the site says why" alpha.log "threshold 2 of 4 sites is at most half"
expect "half: the refusal is audited" "secagg" \
  "$(python3 -c 'import json; print(*[e["what"] for e in map(json.loads, open("audit.jsonl")) if e.get("event") == "refused"])')"
expect "half: nothing was sent" "" "$(python3 -c 'import json; print(json.load(open("pyagg/result.json"))["update"])')"
fed_finish
