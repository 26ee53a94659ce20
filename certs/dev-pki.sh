#!/usr/bin/env bash
# Development PKI for fedlora: a CA, the aggregator's certificate, one client certificate per site,
# and an untrusted second CA with a client of its own (for tests that must be refused).
#
#   certs/dev-pki.sh [--extras] DIR SITE [SITE ...]
#   certs/dev-pki.sh csr NAME [--out DIR]
#   certs/dev-pki.sh sign CSR [--ca DIR] [--days N] [--client|--server] [--san SAN] [--out FILE]
#   certs/dev-pki.sh --revoke DIR NAME|CERT.pem
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
#   crl.pem                           ca's CRL (PEM), kept in ca-db/ with the CA's index
# Keys are EC P-256, mode 0600. Existing files are kept, so the script is idempotent and adding a site
# later signs only the new one. For production use a hospital's own CA: see certs/README.md.
#
# Enrolment with the key staying where it was made (a site, or the aggregator's host):
#   csr NAME     writes DIR/NAME.key (mode 0600, kept if it exists) and DIR/NAME.csr (CN = NAME);
#                only the CSR goes to the CA operator (DIR: default the current directory)
#   sign CSR     the CA operator signs it with the CA in --ca DIR (ca.pem, ca.key; default: current
#                directory), through the CA's index in DIR/ca-db (so --revoke works on it), valid
#                --days N (default 825): --client (default) gives clientAuth, the CN must be a site
#                name; --server gives serverAuth with subjectAltName --san (default
#                DNS:localhost,IP:127.0.0.1,IP:::1); --san adds one to a client too. Extensions in
#                the CSR are ignored. Writes --out FILE (default: CSR with .pem for .csr)
#   --revoke     adds DIR/NAME.pem (or the certificate file given) to the index as revoked and
#                reissues DIR/crl.pem
set -euo pipefail

usage() { sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; }
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then usage; [ $# -ge 1 ]; exit $?; fi
command -v openssl >/dev/null || { echo "dev-pki.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
mode=pki
case $1 in --extras|--revoke) mode=${1#--}; shift ;; csr|sign) mode=$1; shift ;; esac
[ $# -ge 1 ] || { usage; exit 2; }

umask 077
days=825
site_name_ok() { case $1 in ''|*[!A-Za-z0-9._-]*) return 1 ;; esac; }

# csr NAME [--out DIR]: the key is made here and never leaves; only NAME.csr is sent to the CA.
if [ "$mode" = csr ]; then
  name=$1; shift; out=.
  while [ $# -gt 0 ]; do
    case $1 in
      --out) [ $# -ge 2 ] || { echo "dev-pki.sh csr: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
      *) echo "dev-pki.sh csr: unknown option '$1'" >&2; exit 2 ;;
    esac
  done
  site_name_ok "$name" || { echo "dev-pki.sh csr: name '$name' must be letters, digits, '.', '_' or '-'" >&2; exit 2; }
  mkdir -p "$out"
  if [ -f "$out/$name.key" ]; then
    echo "dev-pki: keeping the existing key $out/$name.key"
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$name.key" 2>/dev/null
  fi
  chmod 600 "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "/O=fedlora dev/CN=$name" -out "$out/$name.csr"
  chmod 644 "$out/$name.csr"
  echo "dev-pki: $out/$name.csr (CN=$name) is ready for the CA; $out/$name.key stays here"
  exit 0
fi

if [ "$mode" != sign ]; then
  dir=$1; shift
  mkdir -p "$dir"
fi

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

# revoke CERT: adds the certificate file to ca's index as revoked and reissues crl.pem
revoke() {
  ca_db
  openssl ca -config "$dir/ca-db/ca.cnf" -revoke "$1" 2>/dev/null
  gencrl
  echo "dev-pki: revoked $1; $dir/crl.pem reissued"
}

gencrl() {
  openssl ca -config "$dir/ca-db/ca.cnf" -gencrl -out "$dir/crl.pem.tmp" 2>/dev/null
  chmod 644 "$dir/crl.pem.tmp"
  mv "$dir/crl.pem.tmp" "$dir/crl.pem"
}

if [ "$mode" = revoke ]; then
  [ $# -eq 1 ] || { echo "dev-pki.sh: --revoke DIR NAME|CERT.pem" >&2; exit 2; }
  cert=$dir/$1.pem
  [ -f "$cert" ] || cert=$1
  [ -f "$cert" ] || { echo "dev-pki.sh: --revoke: neither $dir/$1.pem nor $1 exists" >&2; exit 2; }
  revoke "$cert"
  exit 0
fi

client_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'

# sign CSR [--ca DIR] [--days N] [--client|--server] [--san SAN] [--out FILE]: needs no private
# key but the CA's.
if [ "$mode" = sign ]; then
  csr=$1; shift; dir=.; role=client; san=; out=${csr%.csr}.pem
  while [ $# -gt 0 ]; do
    case $1 in
      --client|--server) role=${1#--}; shift ;;
      --ca|--days|--san|--out)
        [ $# -ge 2 ] || { echo "dev-pki.sh sign: $1 needs a value" >&2; exit 2; }
        case $1 in --ca) dir=$2 ;; --days) days=$2 ;; --san) san=$2 ;; --out) out=$2 ;; esac
        shift 2 ;;
      *) echo "dev-pki.sh sign: unknown option '$1'" >&2; exit 2 ;;
    esac
  done
  case $days in ''|*[!0-9]*|0) echo "dev-pki.sh sign: --days must be a positive number of days" >&2; exit 2 ;; esac
  [ "$out" != "$csr" ] || out=$csr.pem
  [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] || { echo "dev-pki.sh sign: no ca.pem and ca.key in $dir (--ca DIR)" >&2; exit 2; }
  openssl req -in "$csr" -noout -verify 2>/dev/null || { echo "dev-pki.sh sign: $csr is not a CSR signed by its own key" >&2; exit 2; }
  cn=$(openssl req -in "$csr" -noout -subject -nameopt RFC2253 | sed -n 's/^subject=//; s/\(^\|.*,\)CN=\([^,]*\).*/\2/p')
  if [ "$role" = client ]; then
    site_name_ok "$cn" || { echo "dev-pki.sh sign: the CSR's CN '$cn' is not a site name (letters, digits, '.', '_' or '-')" >&2; exit 2; }
    ext=$client_ext${san:+
subjectAltName=$san}
  else
    ext="${server_ext%%subjectAltName*}subjectAltName=${san:-DNS:localhost,IP:127.0.0.1,IP:::1}"
  fi
  ca_db
  extfile=$(mktemp); log=$(mktemp)
  printf '%s\n' "$ext" >"$extfile"
  if ! openssl ca -batch -config "$dir/ca-db/ca.cnf" -in "$csr" -out "$out" -notext -days "$days" \
      -extfile "$extfile" 2>"$log"; then
    echo "dev-pki.sh sign: openssl ca refused $csr:" >&2; cat "$log" >&2; rm -f "$extfile" "$log"; exit 1
  fi
  rm -f "$extfile" "$log"
  chmod 644 "$out"
  echo "dev-pki: issued $out (CN=$cn, $role, $days days, serial $(openssl x509 -in "$out" -noout -serial | cut -d= -f2))"
  exit 0
fi

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
    revoke "$dir/revoked-client.pem"
  fi
  [ -f "$dir/crl.pem" ] || gencrl
fi
chmod 600 "$dir"/*.key
