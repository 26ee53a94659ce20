#!/bin/bash
# Issue 7: revocation at the aggregator. With [server] crl set, a site certificate that is valid and
# allowed gets in; once the CA revokes it and the aggregator is sent SIGHUP, the same certificate is
# refused during the TLS handshake while the others still get in, without restarting the run.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
fed_phase crl
# A private copy of the PKI: revoking must not touch the shared fixture.
cp -rL pki own-pki
bash "$FEDLORA_SOURCE_DIR/certs/dev-pki.sh" --extras own-pki alpha beta >/dev/null
[ -f own-pki/crl.pem ] || { fed_bad "dev-pki.sh --extras made no crl.pem"; fed_finish; }
fed_start_agg agg --set server.crl="$PWD/own-pki/crl.pem" --set server.client_ca="$PWD/own-pki/ca.pem"

status_as() { # NAME: fedlora status with NAME's certificate; output in status-NAME.txt
  "$fed_bin/fedlora" status --server "127.0.0.1:$fed_port" --ca own-pki/ca.pem --cert "own-pki/$1.pem" \
    --key "own-pki/$1.key" --timeout 20 >"status-$1.txt" 2>&1
}
status_as beta
expect "beta gets in before it is revoked" 0 $?

# A CRL's dates have one-second resolution and OpenSSL keeps the older of two equally dated lists:
# the reissued list must be at least a second younger than the one the aggregator started with.
sleep 1.1
bash "$FEDLORA_SOURCE_DIR/certs/dev-pki.sh" --revoke own-pki beta >/dev/null
status_as beta
expect "beta still gets in before the aggregator rereads the list" 0 $?
kill -HUP "${fed_pid[agg]}"
wait_for 20 log_has agg.log "revocation list" || fed_bad "no reload line after SIGHUP"
expect_in "the aggregator says it reloaded the list" agg.log "SIGHUP: TLS material reloaded"
alive agg && fed_ok "the aggregator is still running after SIGHUP" || fed_bad "the aggregator died on SIGHUP"

status_as beta
expect "revoked beta is refused after the reload" 1 $?
expect_in "beta is told its handshake was refused" status-beta.txt "TLS handshake refused"
status_as alpha
expect "alpha still gets in" 0 $?
fed_kill agg TERM
fed_finish
