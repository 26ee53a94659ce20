#!/bin/bash
# The Debian package (packaging/, README "Operating fedlora"): cpack -G DEB from the build directory,
# then its file list, computed dependencies, conffiles and maintainer scripts, the installed configs
# and man pages, and the systemd units (systemd-analyze verify and an exposure bound from
# systemd-analyze security, on a root holding the package's files).
set -u
: "${FEDLORA_BUILD_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$FEDLORA_BUILD_DIR/CPackConfig.cmake")
[ -n "$version" ] || { echo "FAIL: no CPACK_PACKAGE_VERSION in $FEDLORA_BUILD_DIR/CPackConfig.cmake"; exit 1; }
if ! (cd "$FEDLORA_BUILD_DIR" && cpack -G DEB -B "$tmp/out" > "$tmp/cpack.log" 2>&1); then
  cat "$tmp/cpack.log"; echo "FAIL: cpack -G DEB"; exit 1
fi
deb=$tmp/out/fedlora_${version}_amd64.deb
[ -f "$deb" ] || { ls "$tmp/out"; echo "FAIL: $deb not made"; exit 1; }
ok "cpack made $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# Contents.
dpkg-deb -c "$deb" | awk '{print $1, $6}' > "$tmp/list"
for want in "-rwxr-xr-x ./usr/bin/fedlora" "-rwxr-xr-x ./usr/bin/fedlora-aggregator" \
    "-rwxr-xr-x ./usr/bin/fedlora-client" \
    "-rw-r--r-- ./usr/share/man/man1/fedlora.1.gz" "-rw-r--r-- ./usr/share/man/man1/fedlora-aggregator.1.gz" \
    "-rw-r--r-- ./usr/share/man/man1/fedlora-client.1.gz" \
    "-rw-r--r-- ./etc/fedlora/aggregator.ini" "-rw-r--r-- ./etc/fedlora/client.ini" \
    "-rw-r--r-- ./lib/systemd/system/fedlora-aggregator.service" \
    "-rw-r--r-- ./lib/systemd/system/fedlora-client@.service"; do
  grep -qxF -- "$want" "$tmp/list" && ok "contains $want" || fail "dpkg-deb -c lacks '$want'"
done

# Control: dependencies computed by dpkg-shlibdeps (versioned library packages), conffiles, scripts.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in 'libgrpc[0-9]+ \(>=' 'libopenblas0' 'libjansson4 \(>=' 'libssl3 \(>=' 'libprotobuf-c1 \(>=' \
    'libc6 \(>=' 'libgomp1' 'adduser'; do
  [[ $depends =~ $lib ]] && ok "Depends has $lib" || fail "Depends lacks $lib"
done
dpkg-deb -e "$deb" "$tmp/control"
diff <(sort "$tmp/control/conffiles") <(printf '/etc/fedlora/aggregator.ini\n/etc/fedlora/client.ini\n') \
  && ok "conffiles: both configs" || fail "conffiles differ from the two /etc/fedlora configs"
for s in postinst prerm postrm; do
  [ -x "$tmp/control/$s" ] && sh -n "$tmp/control/$s" && ok "$s executable, parses" || fail "$s missing or bad"
done
grep -q 'adduser --system' "$tmp/control/postinst" && ok "postinst makes the system user" \
  || fail "postinst does not create the fedlora user"

root=$tmp/root
dpkg-deb -x "$deb" "$root"

# Binaries in the package run and are the version packaged.
for b in fedlora fedlora-aggregator fedlora-client; do
  got=$("$root/usr/bin/$b" --version 2>&1)
  [ "$got" = "$b $version" ] && ok "$b --version: $got" || fail "$b --version printed '$got'"
done

# Man pages: valid troff whose synopsis is the binary's usage line.
for b in fedlora fedlora-aggregator fedlora-client; do
  page=$root/usr/share/man/man1/$b.1.gz
  usage=$("$root/usr/bin/$b" --help | head -1 | sed 's/^usage: *//')
  text=$(MANWIDTH=200 man -l "$page" 2>"$tmp/man.err")
  if [ -s "$tmp/man.err" ] || [ -z "$text" ]; then fail "man -l $b.1.gz: $(cat "$tmp/man.err")"; continue; fi
  grep -qF -- "$usage" <<< "$text" && grep -q "^NAME" <<< "$text" && grep -q "^DESCRIPTION" <<< "$text" \
    && ok "man $b renders, SYNOPSIS '$usage'" || fail "man $b lacks NAME/DESCRIPTION or the usage '$usage'"
done
zcat "$root/usr/share/man/man1/fedlora-aggregator.1.gz" | grep -q 'SIGHUP' \
  && ok "aggregator man page documents SIGHUP" || fail "aggregator man page lost the help text"

# Installed configs: absolute paths for a packaged install, nothing relative to a checkout, and
# every key still accepted by the programs' own parsers.
for ini in aggregator client; do
  f=$root/etc/fedlora/$ini.ini
  if grep -nE '^[a-z_]+ *= *\.\./' "$f"; then fail "$ini.ini keeps checkout-relative paths"; fi
  grep -qE '^cert = /etc/fedlora/pki/' "$f" && grep -qE '^state_dir = /var/lib/fedlora/' "$f" \
    && ok "$ini.ini: keys in /etc/fedlora/pki, state in /var/lib/fedlora" || fail "$ini.ini paths not rewritten"
  if "$root/usr/bin/fedlora-$ini" --config "$f" --print-config > "$tmp/$ini.eff" 2> "$tmp/$ini.err"; then
    ok "fedlora-$ini --print-config accepts /etc/fedlora/$ini.ini"
  else
    fail "fedlora-$ini rejects the packaged $ini.ini: $(cat "$tmp/$ini.err")"
  fi
done

# Units: the hardening the README promises, each present.
agg=$root/lib/systemd/system/fedlora-aggregator.service
cli=$root/lib/systemd/system/fedlora-client@.service
for u in "$agg" "$cli"; do
  for line in User=fedlora StateDirectory=fedlora ProtectSystem=strict ReadWritePaths=/var/lib/fedlora \
      NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes PrivateDevices=yes CapabilityBoundingSet= \
      RestrictAddressFamilies= SystemCallFilter=@system-service; do
    grep -q "^$line" "$u" || fail "$(basename "$u") lacks $line"
  done
done
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$agg" && ok "aggregator reload is SIGHUP" || fail "aggregator ExecReload"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$cli" && ok "client@ reload is SIGHUP" || fail "client@ ExecReload"
grep -q '^ExecStart=/usr/bin/fedlora-client --config /etc/fedlora/client-%i.ini$' "$cli" \
  && ok "client@ instance reads /etc/fedlora/client-%i.ini" || fail "client@ ExecStart"

if ! command -v systemd-analyze > /dev/null; then
  echo "NOT CHECKED: systemd-analyze is not installed here (apt-get install systemd), so the units were"
  echo "only checked for their directives above, not verified by systemd."
else
  # A root with the package's files plus this machine's units (sysinit.target ...) and kill(1), so
  # verify checks the ExecStart binaries and man: links of the package, not of this machine.
  cp -a /lib/systemd/system/. "$root/lib/systemd/system/"
  mkdir -p "$root/bin" && cp /bin/kill "$root/bin/"
  units="fedlora-aggregator.service fedlora-client@cardiology.service"
  # verify exits 0 on unknown keys and bad values, printing them: any output is a failure.
  out=$(MANPATH=$root/usr/share/man systemd-analyze verify --root="$root" $units 2>&1)
  rc=$?
  [ $rc -eq 0 ] && [ -z "$out" ] && ok "systemd-analyze verify: $units" \
    || fail "systemd-analyze verify (exit $rc): $out"
  for u in $units; do
    exposure=$(systemd-analyze security --offline=yes --root="$root" "$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
      ok "systemd-analyze security $u: exposure $exposure (bound 2.0)"
    else
      fail "systemd-analyze security $u: exposure '${exposure}' above 2.0"
    fi
  done
fi

[ $fails -eq 0 ] && { echo "test_package: all checks passed"; exit 0; }
echo "test_package: $fails check(s) failed"; exit 1
