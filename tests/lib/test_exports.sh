#!/bin/sh
# The shared library exports exactly the functions the public header declares (AD_API), and has
# a SONAME. Usage: test_exports.sh LIBANOMALYDINO.so HEADER...
set -u
lib=$1
shift
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u > "$tmp/exported"
# every declaration in the header marked AD_API: its function name is the identifier before "("
sed -n 's/^AD_API .*[ *]\(ad_[a-z0-9_]*\)(.*/\1/p' "$@" | sort -u > "$tmp/declared"
n_exp=$(wc -l < "$tmp/exported") n_dec=$(wc -l < "$tmp/declared")
echo "exported: $n_exp symbols; declared in the header: $n_dec functions"
[ "$n_dec" -gt 40 ] && ok || ko "too few declarations parsed from $* ($n_dec)"
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
[ -z "$extra" ] && ok || ko "exported but not in the header: $(echo $extra)"
[ -z "$missing" ] && ok || ko "declared but not exported: $(echo $missing)"
internal=$(grep -c '^adi_' "$tmp/exported")
[ "$internal" -eq 0 ] && ok || ko "$internal internal adi_ symbols exported"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
echo "SONAME: $soname"
case "$soname" in libanomalydino.so.[0-9]*) ok ;; *) ko "SONAME is '$soname'" ;; esac
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
