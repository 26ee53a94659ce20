#!/bin/bash
# certs/dev-pki.sh csr / sign: a site makes its key and CSR; the CA operator, who is given the CSR
# only (in a directory of its own), signs it; the certificate checks out with openssl against the
# CA, belongs to the key that never left, and carries the extensions and lifetime asked for.
set -u
pki_sh=$FEDLORA_SOURCE_DIR/certs/dev-pki.sh
work=$(mktemp -d /tmp/fedlora-csr.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; failures=$((failures + 1)); }
expect() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: want [$2] got [$3]"; fi; }

bash "$pki_sh" ca >/dev/null || { bad "dev-pki.sh cannot make a CA"; exit 1; }
bash "$pki_sh" csr cardiology-lyon --out site >/dev/null
expect "csr writes the key and the CSR, nothing else" "cardiology-lyon.csr cardiology-lyon.key" "$(ls site | tr '\n' ' ' | sed 's/ $//')"
expect "the key is mode 0600" 600 "$(stat -c %a site/cardiology-lyon.key)"
expect "the CSR names the site" "CN=cardiology-lyon,O=fedlora dev" \
  "$(openssl req -in site/cardiology-lyon.csr -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"

# The CA operator's side: the CSR alone.
mkdir operator && cp site/cardiology-lyon.csr operator/
bash "$pki_sh" sign operator/cardiology-lyon.csr --ca ca --days 5 >sign.out 2>&1
expect "sign succeeds from the CSR alone" 0 $?
expect "the operator's directory holds no key" "" "$(ls operator | grep '\.key$')"
expect "the certificate verifies against the CA as a TLS client" "operator/cardiology-lyon.pem: OK" \
  "$(openssl verify -CAfile ca/ca.pem -purpose sslclient operator/cardiology-lyon.pem 2>&1)"
expect "it belongs to the site's key" "$(openssl pkey -in site/cardiology-lyon.key -pubout)" \
  "$(openssl x509 -in operator/cardiology-lyon.pem -noout -pubkey)"
expect "CN is the site name" "CN=cardiology-lyon,O=fedlora dev" \
  "$(openssl x509 -in operator/cardiology-lyon.pem -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
openssl x509 -in operator/cardiology-lyon.pem -noout -ext extendedKeyUsage | grep -q "TLS Web Client Authentication" \
  && ok "extended key usage clientAuth" || bad "no clientAuth"
end=$(date -d "$(openssl x509 -in operator/cardiology-lyon.pem -noout -enddate | cut -d= -f2)" +%s)
left=$((end - $(date +%s)))
[ "$left" -gt $((4 * 86400)) ] && [ "$left" -le $((5 * 86400)) ] && ok "valid for 5 days ($left s)" || bad "validity $left s"
openssl verify -CAfile ca/ca.pem -purpose sslserver operator/cardiology-lyon.pem >/dev/null 2>&1 \
  && bad "a site certificate passes as a server certificate" || ok "not usable as a server certificate"

# A server certificate with the names asked for.
bash "$pki_sh" csr aggregator --out srv >/dev/null
bash "$pki_sh" sign srv/aggregator.csr --ca ca --server --san DNS:agg.example.org,IP:10.0.0.5 >/dev/null
expect "a server certificate verifies as one" "srv/aggregator.pem: OK" \
  "$(openssl verify -CAfile ca/ca.pem -purpose sslserver srv/aggregator.pem 2>&1)"
expect "with the SANs asked for" "DNS:agg.example.org, IP Address:10.0.0.5" \
  "$(openssl x509 -in srv/aggregator.pem -noout -ext subjectAltName | tail -1 | sed 's/^ *//')"

# Refusals: a CSR whose signature does not match its key, a CN that is no site name, no CA.
sed '2s/./A/;3s/./B/' site/cardiology-lyon.csr >tampered.csr
bash "$pki_sh" sign tampered.csr --ca ca >refuse1.out 2>&1
expect "a tampered CSR is refused" 2 $?
openssl req -new -key site/cardiology-lyon.key -subj "/O=x/CN=bad name" -out badname.csr
bash "$pki_sh" sign badname.csr --ca ca >refuse2.out 2>&1
expect "a CN that is no site name is refused" 2 $?
grep -q "is not a site name" refuse2.out && ok "and says why" || bad "refusal text: $(cat refuse2.out)"
bash "$pki_sh" sign site/cardiology-lyon.csr --ca nowhere >refuse3.out 2>&1
expect "signing without a CA is refused" 2 $?

# The signed certificate is in the CA's index: revoking it by file puts its serial in the CRL.
serial=$(openssl x509 -in operator/cardiology-lyon.pem -noout -serial | cut -d= -f2)
bash "$pki_sh" --revoke ca operator/cardiology-lyon.pem >/dev/null
openssl crl -in ca/crl.pem -noout -text | grep -q "Serial Number: $serial" && ok "revoked by file: serial in crl.pem" \
  || bad "serial $serial not in crl.pem"
bash "$pki_sh" --help | grep -q "sign CSR" && ok "--help documents sign" || bad "--help lacks sign"

echo "$failures failed"
[ "$failures" -eq 0 ]
