#!/bin/bash
# Issue 5: sites the aggregator must refuse, each exiting 3 (refused) with a message a person can
# act on, while the aggregator carries on and records none of them:
#   delta       a certificate from the trusted CA whose CN is not in allowed_clients: PERMISSION_DENIED
#   intruder    a certificate from another CA (untrusted-client.pem): the TLS handshake is refused
#   mismatch    alpha's certificate but a base model differing in one bit: FAILED_PRECONDITION
# Then alpha, beta and gamma still run the federation to its end.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
fed_start_agg agg --set rounds.total=1

fed_start_site delta --set data.train=data/alpha.jsonl
fed_wait_exit delta 30
expect "delta (not in allowed_clients) exits 3" 3 "$fed_rc"
expect_in "delta's log names it and allowed_clients" delta.log \
  "the aggregator refused this site: site 'delta' (the certificate's CN) is not in the aggregator's allowed_clients"
expect_in "the aggregator answered delta's Join with PERMISSION_DENIED (7)" agg.log \
  "Join from delta: status 7: site 'delta' (the certificate's CN) is not in the aggregator's allowed_clients"

fed_start_site intruder --set client.cert=pki/untrusted-client.pem --set client.key=pki/untrusted-client.key \
  --set data.train=data/alpha.jsonl
fed_wait_exit intruder 30
expect "intruder (untrusted CA) exits 3" 3 "$fed_rc"
expect_in "intruder's log says the handshake was refused" intruder.log "TLS handshake refused"
expect_in "intruder's log names the certificate it presented" intruder.log "presented pki/untrusted-client.pem"

# One bit of one weight flipped (the lowest mantissa bit of the first float): loads the same, but
# its fingerprint differs.
mkdir other-base
cp base/* other-base/
python3 - <<'PY'
import struct
with open("other-base/model.safetensors", "r+b") as f:
    (hlen,) = struct.unpack("<Q", f.read(8))
    f.seek(8 + hlen)
    b = f.read(1)
    f.seek(8 + hlen)
    f.write(bytes([b[0] ^ 1]))
PY
expect "the other base differs from the base" 1 "$(cmp -s base/model.safetensors other-base/model.safetensors; echo $?)"
fed_start_site mismatch --set client.cert=pki/alpha.pem --set client.key=pki/alpha.key --set model.base=other-base \
  --set data.train=data/alpha.jsonl
fed_wait_exit mismatch 30
expect "a site on another base model exits 3" 3 "$fed_rc"
expect_in "its log says base model mismatch" mismatch.log "the aggregator refused this site: base model mismatch"
expect_in "the aggregator answered with FAILED_PRECONDITION (9)" agg.log "Join from alpha: status 9: base model mismatch"

expect "nothing was recorded for the refused sites" "" \
  "$(python3 -c 'import json; print(",".join(json.load(open("agg/state.json"))["sites"]))')"
for s in alpha beta gamma; do fed_start_site $s; done
for s in alpha beta gamma; do
  fed_wait_exit $s 60
  expect "$s still finishes with exit 0" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "the aggregator exits 0" 0 "$fed_rc"
expect "only the allowed sites took part" "alpha,beta,gamma" \
  "$(python3 -c 'import json; print(",".join(json.loads(open("agg/metrics.jsonl").readline())["submitted"]))')"
fed_finish
