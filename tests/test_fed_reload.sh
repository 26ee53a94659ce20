#!/bin/bash
# Issue 9, certificates in operation, while a run goes on:
#  - the aggregator's key and certificate are renewed (a new key made with dev-pki.sh csr, signed
#    for 5 days with dev-pki.sh sign) and the aggregator is sent SIGHUP: a fresh TLS connection sees
#    the new serial, the log and the metric say it expires within 14 days;
#  - before that, a key that does not belong to the certificate is refused on SIGHUP with the
#    reason, and the old certificate stays in force;
#  - site beta gets a new certificate the same way and is sent SIGHUP: the aggregator sees the new
#    serial on beta's next call and warns about its expiry (metric for beta within [4, 5] days);
#    a mismatched key sent to beta first is refused and beta goes on;
#  - gamma is revoked and the aggregator sent SIGHUP: gamma, connected all along, is refused on its
#    next call, while alpha and beta finish the run.
# Rounds take a fraction of a second here, so a fourth site, delta, joins and is then stopped
# (SIGSTOP): selected but silent, it makes every round wait wait_after_quorum_s, which gives the
# steps above time to happen while rounds are still to come, without burning CPU.
source "$FEDLORA_SOURCE_DIR/tests/fed/lib.sh"
fed_phase reload
pki_sh=$FEDLORA_SOURCE_DIR/certs/dev-pki.sh
# A private PKI: certificates are replaced and revoked here.
rm pki && cp -rL "$fed_fixture/pki" pki
bash "$pki_sh" --extras pki alpha beta gamma delta >/dev/null
mport=$(free_port)

fed_start_agg agg --set rounds.total=12 --set rounds.min_clients=2 --set rounds.wait_after_quorum_s=3 \
  --set server.allowed_clients="alpha, beta, gamma, delta" --set server.crl="$PWD/pki/crl.pem" \
  --set metrics.listen=127.0.0.1:$mport
fed_start_site delta --set data.train=data/alpha.jsonl
wait_for 60 log_has agg.log "site delta joined" || fed_bad "delta did not join"
kill -STOP "${fed_pid[delta]}"
for s in alpha beta gamma; do fed_start_site $s; done

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
# The serial a fresh TLS connection to the aggregator is shown.
server_serial() {
  openssl s_client -connect "127.0.0.1:$fed_port" -alpn h2 -cert pki/alpha.pem -key pki/alpha.key \
    -CAfile pki/ca.pem </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
# metric NAME LABEL=VALUE: its value from /metrics
metric() {
  python3 - "$mport" "$1" "$2" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
key = sys.argv[2] + "{" + sys.argv[3].split("=")[0] + '="' + sys.argv[3].split("=", 1)[1] + '"}'
print(next((l.split()[-1] for l in body.splitlines() if l.startswith(key + " ")), "missing"))
PY
}
# expect_re NAME FILE REGEX: FILE has a line matching the extended regular expression
expect_re() { if grep -qE -- "$3" "$2"; then fed_ok "$1"; else fed_bad "$1: /$3/ not in $2"; fi; }
# within_days VALUE LOW HIGH: LOW days <= VALUE seconds <= HIGH days
within_days() { python3 -c "import sys; v=float(sys.argv[1]); sys.exit(not ($2*86400 <= v <= $3*86400))" "$1" 2>/dev/null; }

old_serial=$(serial_of pki/aggregator.pem)
expect "a fresh connection sees the aggregator's certificate" "$old_serial" "$(server_serial)"
v=$(metric fedlora_certificate_expiry_seconds certificate=server)
within_days "$v" 800 826 && fed_ok "the server certificate's metric says 825 days ($v s)" || fed_bad "server expiry metric: $v"
wait_for 120 log_has agg.log "round 1 committed" || fed_bad "round 1 not committed"

# --- the aggregator: a key that does not belong, then a renewed key and certificate
cp pki/aggregator.key aggregator.key.good
cp pki/alpha.key pki/aggregator.key
kill -HUP "${fed_pid[agg]}"
wait_for 20 log_has agg.log "TLS material not reloaded" || fed_bad "no refusal logged for the mismatched key"
expect_re "the refusal names the key and the reason" agg.log "not reloaded.*/pki/aggregator.key does not belong to the certificate .*/pki/aggregator.pem"
sleep 1.5 # longer than the file watcher's refresh: a wrong pair would be in force by now
expect "the old certificate stays in force" "$old_serial" "$(server_serial)"

bash "$pki_sh" csr aggregator --out renew-agg >/dev/null
bash "$pki_sh" sign renew-agg/aggregator.csr --ca pki --server --days 5 >/dev/null
new_serial=$(serial_of renew-agg/aggregator.pem)
[ -n "$new_serial" ] && [ "$new_serial" != "$old_serial" ] || fed_bad "no new serial from dev-pki.sh sign"
cp renew-agg/aggregator.key pki/aggregator.key
cp renew-agg/aggregator.pem pki/aggregator.pem
kill -HUP "${fed_pid[agg]}"
wait_for 20 log_has agg.log "TLS material reloaded" || fed_bad "no reload logged"
wait_for 10 eval '[ "$(server_serial)" = "$new_serial" ]'
expect "a fresh connection sees the new certificate after SIGHUP" "$new_serial" "$(server_serial)"
expect_re "the aggregator warns that its certificate expires within 14 days" agg.log \
  "WARN .*certificate of the aggregator \(/O=fedlora dev/CN=aggregator, serial $new_serial, .*/pki/aggregator.pem\) expires in (4\.9|5\.0) days"
v=$(metric fedlora_certificate_expiry_seconds certificate=server)
within_days "$v" 4 5 && fed_ok "the server certificate's metric is within [4, 5] days ($v s)" || fed_bad "server expiry metric after reload: $v"

# --- site beta: a mismatched key, then a certificate from its own CSR
cp pki/beta.key beta.key.good
cp pki/alpha.key pki/beta.key
kill -HUP "${fed_pid[beta]}"
wait_for 60 log_has beta.log "certificate not reloaded" || fed_bad "beta logged no refusal of the mismatched key"
expect_re "beta says why" beta.log "certificate not reloaded.*/pki/beta.key does not belong to the certificate .*/pki/beta.pem"
bash "$pki_sh" csr beta --out renew-beta >/dev/null
bash "$pki_sh" sign renew-beta/beta.csr --ca pki --days 5 >/dev/null
beta_serial=$(serial_of renew-beta/beta.pem)
cp renew-beta/beta.key pki/beta.key
cp renew-beta/beta.pem pki/beta.pem
kill -HUP "${fed_pid[beta]}"
wait_for 60 log_has beta.log "serial $beta_serial) with key" || fed_bad "beta logged no reload"
wait_for 60 log_has agg.log "site 'beta' presents certificate serial $beta_serial" \
  && fed_ok "the aggregator sees beta's new serial" || fed_bad "the aggregator never saw beta's serial $beta_serial"
expect_re "the aggregator warns about beta's certificate" agg.log \
  "WARN .*certificate of site 'beta' \(/O=fedlora dev/CN=beta, serial $beta_serial, .*\) expires in (4\.9|5\.0) days"
expect_re "beta warns about its own certificate" beta.log \
  "WARN .*certificate of this site \(/O=fedlora dev/CN=beta, serial $beta_serial, .*\) expires in (4\.9|5\.0) days"
v=$(metric fedlora_site_certificate_expiry_seconds site=beta)
within_days "$v" 4 5 && fed_ok "beta's certificate metric is within [4, 5] days ($v s)" || fed_bad "beta expiry metric: $v"

# --- gamma revoked while connected. CRL dates have one-second resolution (test_fed_crl.sh).
sleep 1.1
bash "$pki_sh" --revoke pki gamma >/dev/null
kill -HUP "${fed_pid[agg]}"
committed_at_revoke=$(grep -c "round [0-9]* committed" agg.log)
fed_wait_exit gamma 90
expect "revoked gamma is refused on its next call and exits 3" 3 "$fed_rc"
expect_in "gamma is told it was revoked" gamma.log "has been revoked"

for s in alpha beta; do
  fed_wait_exit $s 200
  expect "$s finishes the run (exit 0)" 0 "$fed_rc"
done
fed_wait_exit agg 30
expect "the aggregator finishes (exit 0)" 0 "$fed_rc"
expect_in "all twelve rounds were committed" agg.log "round 12 committed"
[ "$committed_at_revoke" -lt 12 ] && fed_ok "rounds were still to come when gamma was revoked ($committed_at_revoke committed)" \
  || fed_bad "the run had finished before gamma was revoked: nothing shows it went on"
fed_finish
