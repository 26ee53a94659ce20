#!/usr/bin/env bash
# Development PKI for fedlora: a CA, the aggregator's certificate, one client certificate per site,
# and an untrusted second CA with a client of its own (for tests that must be refused).
#
#   certs/dev-pki.sh [--extras] DIR SITE [SITE ...]
#
# Writes into DIR (created if needed):
#   ca.pem ca.key                     the trusted development CA
#   aggregator.pem aggregator.key     serverAuth, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   SITE.pem SITE.key                 clientAuth, CN = SITE (the site's identity at the aggregator)
#   untrusted-ca.pem untrusted-ca.key a CA nobody trusts
#   untrusted-client.pem/.key         clientAuth, CN = intruder, signed by the untrusted CA
# With --extras, also the certificates the TLS refusal tests need (all but the first signed by ca):
#   selfsigned-client.pem/.key        clientAuth, CN = selfsigned, signed by itself
#   expired-client.pem/.key           clientAuth, CN = expired, valid 2020-01-01 .. 2021-01-01
#   future-client.pem/.key            clientAuth, CN = future, valid from 2099-01-01
#   serverauth-client.pem/.key        serverAuth only (a server certificate), CN = serveronly
#   revoked-client.pem/.key           clientAuth, CN = revoked, listed in crl.pem
#   wrongname-aggregator.pem/.key     serverAuth, SAN DNS:wrong.example only
#   crl.pem                           ca's CRL (PEM), kept in ca-db/ with the CA's index; revoke
#                                     more with: certs/dev-pki.sh --revoke DIR NAME (reissues crl.pem)
# Keys are EC P-256, mode 0600. Existing files are kept, so the script is idempotent and adding a site
# later signs only the new one. For production use a hospital's own CA: see certs/README.md.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then usage; [ $# -ge 1 ]; exit $?; fi
command -v openssl >/dev/null || { echo "dev-pki.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
mode=pki
case $1 in --extras|--revoke) mode=${1#--}; shift ;; esac
[ $# -ge 1 ] || { usage; exit 2; }

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

# The CA as `openssl ca` sees it (index of what it issued and revoked, serial, CRL settings); only
# the extras and revocations use it: `openssl x509 -req` cannot set a start date or keep an index.
ca_db() {
  local db="$dir/ca-db" abs; abs=$(cd "$dir" && pwd)
  [ -f "$db/ca.cnf" ] && return 0
  mkdir -p "$db/issued"
  : >"$db/index.txt"
  openssl rand -hex 16 >"$db/serial"
  cat >"$db/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
dir = $abs/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir/issued
certificate = $abs/ca.pem
private_key = $abs/ca.key
default_md = sha256
default_days = $days
default_crl_days = $days
policy = any
unique_subject = no
[any]
organizationName = optional
commonName = supplied
CNF
}

# issue NAME CN EXTENSIONS START END: signed by ca through its index (dates as YYYYMMDDHHMMSSZ)
issue() {
  [ -f "$dir/$1.pem" ] && return 0
  ca_db
  new_key "$dir/$1.key"
  local ext; ext=$(mktemp)
  printf '%s\n' "$3" >"$ext"
  openssl req -new -key "$dir/$1.key" -subj "/O=fedlora dev/CN=$2" -out "$dir/$1.csr"
  openssl ca -batch -config "$dir/ca-db/ca.cnf" -in "$dir/$1.csr" -out "$dir/$1.pem" -notext \
    -startdate "$4" -enddate "$5" -extfile "$ext" 2>/dev/null
  rm -f "$dir/$1.csr" "$ext"
  chmod 644 "$dir/$1.pem"
  echo "dev-pki: issued $dir/$1.pem (CN=$2, valid $4 .. $5)"
}

# revoke NAME: adds the certificate to ca's index as revoked and reissues crl.pem
revoke() {
  ca_db
  openssl ca -config "$dir/ca-db/ca.cnf" -revoke "$dir/$1.pem" 2>/dev/null
  gencrl
  echo "dev-pki: revoked $dir/$1.pem; $dir/crl.pem reissued"
}

gencrl() {
  openssl ca -config "$dir/ca-db/ca.cnf" -gencrl -out "$dir/crl.pem.tmp" 2>/dev/null
  chmod 644 "$dir/crl.pem.tmp"
  mv "$dir/crl.pem.tmp" "$dir/crl.pem"
}

if [ "$mode" = revoke ]; then
  [ $# -eq 1 ] && [ -f "$dir/$1.pem" ] || { echo "dev-pki.sh: --revoke DIR NAME: no $dir/${1:-NAME}.pem" >&2; exit 2; }
  revoke "$1"
  exit 0
fi

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
    *-client|wrongname-aggregator) [ "$mode" = extras ] && { echo "dev-pki.sh: '$site' is reserved" >&2; exit 2; } ;;
  esac
  sign "$site" "$site" ca "$client_ext"
done
make_ca untrusted-ca "untrusted CA"
sign untrusted-client intruder untrusted-ca "$client_ext"
if [ "$mode" = extras ]; then
  now=$(date -u +%Y%m%d%H%M%SZ)
  later=$(date -u -d "+$days days" +%Y%m%d%H%M%SZ)
  if [ ! -f "$dir/selfsigned-client.pem" ]; then
    new_key "$dir/selfsigned-client.key"
    openssl req -x509 -new -key "$dir/selfsigned-client.key" -sha256 -days $days -subj "/O=fedlora dev/CN=selfsigned" \
      -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
      -addext "extendedKeyUsage=clientAuth" -out "$dir/selfsigned-client.pem"
    chmod 644 "$dir/selfsigned-client.pem"
    echo "dev-pki: created self-signed $dir/selfsigned-client.pem"
  fi
  issue expired-client expired "$client_ext" 20200101000000Z 20210101000000Z
  issue future-client future "$client_ext" 20990101000000Z 21000101000000Z
  issue serverauth-client serveronly "${server_ext%%
subjectAltName*}" "$now" "$later"
  issue wrongname-aggregator aggregator "${server_ext%%subjectAltName*}subjectAltName=DNS:wrong.example" "$now" "$later"
  if [ ! -f "$dir/revoked-client.pem" ]; then
    issue revoked-client revoked "$client_ext" "$now" "$later"
    revoke revoked-client
  fi
  [ -f "$dir/crl.pem" ] || gencrl
fi
chmod 600 "$dir"/*.key
