#!/bin/bash
# The wire protocol against a peer that shares none of fedlora's code: tests/fed/python_peer.py is
# site alpha written with Python's grpcio and Google's protobuf runtime from proto/fedlora.proto
# (what it checks is listed there). Two real fedlora-client sites, beta and gamma, take part in the
# same round. Then: the round the aggregator committed is the example-weighted mean of the three
# updates, the Python site's among them (tests/fed/check_rounds.py), the real sites' final adapter
# is the one the Python site downloaded, and the manifest it received over grpcio verifies with
# `fedlora manifest verify`.
# Needs python3-grpcio, python3-protobuf and protobuf-compiler (scripts/deps.sh installs them).
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"

fed_grpc_python

fed_start_agg agg --set rounds.total=1
fed_start_site beta
fed_start_site gamma
mkdir -p site-alpha
fed_python_peer python_peer.py alpha
if "${fed_peer[@]}" --server "127.0.0.1:$fed_port" --examples 200 --state site-alpha >peer.log 2>&1; then
  fed_ok "the Python site's checks all hold"
else
  fed_bad "the Python site: $(grep -c '^FAIL' peer.log) checks failed"
fi
sed 's/^/  peer: /' peer.log
fed_expect_run_done 90 beta gamma
if fed_check_rounds agg; then fed_ok "round 1 = the weighted mean of the three updates"; else fed_bad "round 1"; fi
expect "the Python site's update was aggregated" "alpha,beta,gamma" \
  "$(python3 -c 'import json; print(",".join(sorted(json.loads(open("agg/metrics.jsonl").readline())["sites"])))')"
expect "its declared example count is its weight" 200 \
  "$(python3 -c 'import json; print(json.loads(open("agg/metrics.jsonl").readline())["sites"]["alpha"]["example_count"])')"
python3 - <<'PY' && fed_ok "the sites' final adapter is the payload the Python site downloaded" || fed_bad "final adapter"
import os, struct, sys
sys.path.insert(0, os.environ["FEDLORA_SOURCE_DIR"] + "/tests/fed")
from check_rounds import adapter_payload
final = adapter_payload("site-beta/final")
sys.exit(struct.pack(f"<{len(final)}f", *final) != open("site-alpha/final.bin", "rb").read())
PY
if "$fed_bin/fedlora" manifest verify site-alpha/manifest.json --ca pki/ca.pem --server-name 127.0.0.1 >verify.txt 2>&1; then
  fed_ok "the manifest received over grpcio verifies: $(grep -c . verify.txt) lines"
else
  fed_bad "manifest verify: $(cat verify.txt)"
fi
fed_finish
