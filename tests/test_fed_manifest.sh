#!/bin/bash
# Issue 9, point 2: signed round manifests, end to end with the real aggregator and sites.
#   signed  three sites, three rounds, audit logs on: every site kept a manifest for every round;
#           each verifies with the openssl command line (tests/fed/check_manifests.py) and with
#           `fedlora manifest verify`, vouches for the global adapter the round started from
#           (recomputed from agg/rounds) and is on record in the site's audit chain and, as signed,
#           in the aggregator's. An altered copy and a wrong expected name are refused by both.
#   forged  the aggregator signs with a key the sites' CA never certified as the aggregator's, via
#           [server] manifest_cert/manifest_key: (a) a server certificate for the right name from
#           another CA, (b) alpha's own client certificate from the right CA. Every site exits 3
#           saying the manifest was refused, trained nothing (no updates/ in its state_dir), kept no
#           manifest, and its audit log records the refusal; the aggregator received no update.
#   replanned  the aggregator restarted with another learning rate: the joined sites refuse at
#           their next Join (a changed round policy alone is followed: test_secagg_fed_dropout).
#   config  a manifest key that does not belong to its certificate, or only one of the two set,
#           stops the aggregator at start with the reason.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
check() { python3 "$FEDLORA_SOURCE_DIR/tests/fed/check_manifests.py" "$@"; }
audit_events() { # FILE EVENT: the count of EVENT records
  python3 -c 'import json,sys; print(sum(json.loads(l)["event"] == sys.argv[2] for l in open(sys.argv[1])))' "$1" "$2"
}

fed_phase signed
fed_start_agg agg --set audit.file=agg-audit.jsonl
for s in alpha beta gamma; do fed_start_site $s --set audit.file=site-$s/audit.jsonl; done
fed_expect_run_done 90 alpha beta gamma
expect "three rounds committed" "0000 0001 0002 0003" "$(ls agg/rounds | xargs)"
if check run agg --ca pki/ca.pem --name 127.0.0.1 --sites site-alpha site-beta site-gamma; then
  fed_ok "every round's manifest and the final one kept by every site verify (openssl) and name the right adapter"
else
  fed_bad "kept manifests (check_manifests.py run)"
fi
n=0
for f in site-*/manifests/*.json; do
  r=${f##*round-}
  if "$fed_bin/fedlora" manifest verify "$f" --ca pki/ca.pem --server-name 127.0.0.1 >verify.txt 2>&1 &&
    grep -qx "round $((10#${r%%[-.]*}))" verify.txt; then
    n=$((n + 1))
  else
    fed_bad "fedlora manifest verify $f: $(cat verify.txt)"
  fi
done
expect "fedlora manifest verify accepts all twelve kept manifests (3 rounds and the final, 3 sites)" 12 "$n"
for s in alpha beta gamma; do
  "$fed_bin/fedlora" audit verify site-$s/audit.jsonl >/dev/null
  expect "$s's audit chain is intact" 0 $?
  expect "$s's audit log has a manifest record per round and the final one" 4 \
    "$(audit_events site-$s/audit.jsonl manifest)"
done
expect "the aggregator's audit log has a manifest_signed record per round and the final one" 4 \
  "$(audit_events agg-audit.jsonl manifest_signed)"
expect "the aggregator signed exactly the documents the sites kept" "" "$(python3 - <<'PY'
import glob, hashlib, json
signed = {json.loads(l)["sha256"] for l in open("agg-audit.jsonl") if json.loads(l)["event"] == "manifest_signed"}
kept = {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in glob.glob("site-*/manifests/*.json")}
print(" ".join(sorted(kept ^ signed)))
PY
)"

# The checkers can fail: round 2's manifest with its body claiming round 3, and a name it lacks.
python3 - <<'PY'
import json
d = json.load(open("site-alpha/manifests/round-0002-attempt-0.json"))
d["body"] = d["body"].replace('"round":2', '"round":3')
json.dump(d, open("altered.json", "w"))
PY
check verify altered.json --ca pki/ca.pem --name 127.0.0.1 >/dev/null
expect "check_manifests.py refuses the altered body" 1 $?
"$fed_bin/fedlora" manifest verify altered.json --ca pki/ca.pem --server-name 127.0.0.1 >altered.txt 2>&1
expect "fedlora manifest verify refuses the altered body" 1 $?
expect_in "it says the signature does not match" altered.txt "REFUSED: manifest: the signature does not match the body"
check verify site-alpha/manifests/round-0002-attempt-0.json --ca pki/ca.pem --name aggregator.example.org >/dev/null
expect "check_manifests.py refuses a name the certificate lacks" 1 $?
"$fed_bin/fedlora" manifest verify site-alpha/manifests/round-0002-attempt-0.json --ca pki/ca.pem \
  --server-name aggregator.example.org >/dev/null
expect "fedlora manifest verify refuses a name the certificate lacks" 1 $?

"$fed_bin/fedlora" manifest verify site-alpha/manifests/round-0002-attempt-0.json --server-name 127.0.0.1 \
  >usage.txt 2>&1
expect "fedlora manifest verify without --ca is a usage error" 2 $?
expect_in "and prints the usage" usage.txt "usage: fedlora manifest verify FILE --ca CA --server-name NAME"

# forged_run NAME CERT KEY REASON: one round offered with manifests signed by CERT/KEY.
forged_run() {
  local name=$1 cert=$2 key=$3 reason=$4 s
  fed_phase "forged-$name"
  [ "$name" = other-ca ] && bash "$FEDLORA_SOURCE_DIR/certs/dev-pki.sh" other-pki alpha >/dev/null
  fed_start_agg agg --set rounds.total=1 --set audit.file=agg-audit.jsonl --set server.manifest_cert="$cert" \
    --set server.manifest_key="$key"
  for s in alpha beta gamma; do fed_start_site $s --set audit.file=site-$s/audit.jsonl; done
  for s in alpha beta gamma; do
    fed_wait_exit $s 60
    expect "$name: site $s refuses the task with exit 3" 3 "$fed_rc"
    expect_in "$name: $s says the manifest was refused and why" $s.log "the round manifest was refused: $reason"
    expect "$name: $s trained nothing and kept no manifest" "" "$(ls -A site-$s/updates site-$s/manifests 2>/dev/null)"
    expect "$name: $s's audit log records the refusal" 1 \
      "$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["event"] == "refused" and json.loads(l)["what"] == "manifest"))' site-$s/audit.jsonl)"
  done
  expect "$name: the aggregator received no update" 0 "$(audit_events agg-audit.jsonl update_received)"
  expect "$name: no round committed" "0000" "$(ls agg/rounds | xargs)"
  fed_kill agg TERM
}
forged_run other-ca other-pki/aggregator.pem other-pki/aggregator.key \
  "manifest: the signer's certificate does not chain to $fed_run/forged-other-ca/pki/ca.pem"
forged_run site-cert pki/alpha.pem pki/alpha.key "manifest: signed by 'alpha', whose certificate is not a TLS server"
expect_in "site-cert: the aggregator warned at start" agg.log "which is not a TLS server certificate: sites will refuse them"

# A restarted aggregator whose plan changes what the sites train (here the learning rate) would
# sign manifests for a plan they do not follow: they refuse at their next Join instead.
fed_phase replanned
fed_start_agg agg --set audit.file=agg-audit.jsonl
for s in alpha beta; do fed_start_site $s --set audit.file=site-$s/audit.jsonl; done
wait_for 30 eval 'log_has alpha.log "joined run" && log_has beta.log "joined run"' || fed_bad "replanned: no joins"
fed_kill agg KILL
fed_start_agg agg2 --set train.lr=1e-3
for s in alpha beta; do
  fed_wait_exit $s 60
  expect "replanned: $s refuses the changed plan with exit 3" 3 "$fed_rc"
  expect_in "replanned: $s says the plan changed" $s.log "the aggregator's plan changed beyond its round policy"
done
fed_kill agg2 TERM

fed_phase config
fed_write_agg_config
"$fed_bin/fedlora-aggregator" --config agg.ini --set server.listen=127.0.0.1:1 --set server.manifest_cert=pki/aggregator.pem \
  --set server.manifest_key=pki/alpha.key >mismatch.log 2>&1
expect "a manifest key of another certificate stops the aggregator" 1 $?
expect_in "it says the key does not belong" mismatch.log "manifest signer (key pki/alpha.key): the private key does not belong"
"$fed_bin/fedlora-aggregator" --config agg.ini --set server.manifest_cert=pki/aggregator.pem >half.log 2>&1
expect "manifest_cert without manifest_key is a configuration error" 2 $?
expect_in "it names the missing key" half.log "manifest_key"
fed_finish
