#!/usr/bin/env bash
# Development PKI for fedlora: a CA, the aggregator's certificate, one client certificate per site,
# and an untrusted second CA with a client of its own (for tests that must be refused).
#
#   certs/dev-pki.sh DIR SITE [SITE ...]
#
# Writes into DIR (created if needed):
#   ca.pem ca.key                     the trusted development CA
#   aggregator.pem aggregator.key     serverAuth, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   SITE.pem SITE.key                 clientAuth, CN = SITE (the site's identity at the aggregator)
#   untrusted-ca.pem untrusted-ca.key a CA nobody trusts
#   untrusted-client.pem/.key         clientAuth, CN = intruder, signed by the untrusted CA
# Keys are EC P-256, mode 0600. Existing files are kept, so the script is idempotent and adding a site
# later signs only the new one. For production use a hospital's own CA: see certs/README.md.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then usage; [ $# -ge 1 ]; exit $?; fi
command -v openssl >/dev/null || { echo "dev-pki.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

dir=$1; shift
mkdir -p "$dir"
umask 077
days=825

new_key() { [ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# make_ca NAME CN
make_ca() {
  [ -f "$dir/$1.pem" ] && return 0
  new_key "$dir/$1.key"
  openssl req -x509 -new -key "$dir/$1.key" -sha256 -days $days -subj "/O=fedlora dev/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/$1.pem"
  chmod 644 "$dir/$1.pem"
  echo "dev-pki: created CA $dir/$1.pem ($2)"
}

# sign NAME CN CA EXTENSIONS
sign() {
  [ -f "$dir/$1.pem" ] && return 0
  new_key "$dir/$1.key"
  local ext; ext=$(mktemp)
  printf '%s\n' "$4" >"$ext"
  openssl req -new -key "$dir/$1.key" -subj "/O=fedlora dev/CN=$2" -out "$dir/$1.csr"
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/$3.pem" -CAkey "$dir/$3.key" -CAcreateserial \
    -sha256 -days $days -extfile "$ext" -out "$dir/$1.pem" 2>/dev/null
  rm -f "$dir/$1.csr" "$ext"
  chmod 644 "$dir/$1.pem"
  echo "dev-pki: issued $dir/$1.pem (CN=$2, signed by $3)"
}

client_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'

make_ca ca "fedlora dev CA"
sign aggregator aggregator ca "$server_ext"
for site in "$@"; do
  case $site in
    ''|*[!A-Za-z0-9._-]*) echo "dev-pki.sh: site name '$site' must be letters, digits, '.', '_' or '-'" >&2; exit 2 ;;
    ca|aggregator|untrusted-ca|untrusted-client) echo "dev-pki.sh: '$site' is reserved" >&2; exit 2 ;;
  esac
  sign "$site" "$site" ca "$client_ext"
done
make_ca untrusted-ca "untrusted CA"
sign untrusted-client intruder untrusted-ca "$client_ext"
chmod 600 "$dir"/*.key
