#!/bin/sh
# Writes a gzip'd man page (section 1) from a program's --help, at build time, so the pages can never
# disagree with the binaries they ship with.
#   make-man.sh BINARY NAME VERSION "one-line summary" OUT.1.gz
# The first line of --help ("usage: ...") becomes SYNOPSIS; paragraphs of unindented lines become
# filled text and indented blocks (option tables, command lists) stay as written (.nf).
set -eu
[ $# -eq 5 ] || { echo "usage: $0 BINARY NAME VERSION SUMMARY OUT.1.gz" >&2; exit 2; }
bin=$1 name=$2 version=$3 summary=$4 out=$5

help=$("$bin" --help) || { echo "$0: $bin --help failed" >&2; exit 1; }
[ -n "$help" ] || { echo "$0: $bin --help printed nothing" >&2; exit 1; }

upper=$(printf '%s' "$name" | tr 'a-z' 'A-Z')
tmp=$out.tmp
{
  printf '.TH %s 1 "" "fedlora %s" "fedlora manual"\n' "$upper" "$version"
  printf '.SH NAME\n%s \\- %s\n' "$(printf '%s' "$name" | sed 's/-/\\-/g')" "$summary"
  # troff: backslashes become \e, a leading . or ' would be a request, '-' is a hyphen unless escaped.
  printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/" -e 's/-/\\-/g' | awk '
    NR == 1 { sub(/^usage: */, ""); print ".SH SYNOPSIS"; print; print ".SH DESCRIPTION"; next }
    /^$/    { if (nf) { print ".fi"; nf = 0 } blank = 1; next }
    /^[ \t]/ { if (!nf) { print ".PP"; print ".nf"; nf = 1 } print; blank = 0; next }
            { if (nf) { print ".fi"; nf = 0 } if (blank) print ".PP"; blank = 0; print }
    END     { if (nf) print ".fi" }'
  printf '.SH SEE ALSO\n/usr/share/doc/fedlora/README.md, /etc/fedlora/\n'
} > "$tmp"
# -n: no name or time stamp in the gzip header, so rebuilt packages are byte-identical.
gzip -9n < "$tmp" > "$out"
rm -f "$tmp"
