#!/bin/sh
# cmake --install into a temporary prefix, then build examples/embed_predict.c against it with
# nothing but pkg-config (shared, then static), and run both.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR MODEL
set -u
build=$1 src=$2 model=$3
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }
prefix=$(mktemp -d) || exit 1
trap 'rm -rf "$prefix"' EXIT
if cmake --install "$build" --prefix "$prefix" > "$prefix/install.log" 2>&1; then ok; else
  ko "cmake --install failed:"; cat "$prefix/install.log"; fi
for f in include/anomalydino.h bin/anomalydino; do
  [ -e "$prefix/$f" ] && ok || ko "not installed: $f"
done
libdir=$(dirname "$(find "$prefix" -name anomalydino.pc | head -1)")/..
libdir=$(cd "$libdir" && pwd)
for f in libanomalydino.so libanomalydino.so.0 libanomalydino.a pkgconfig/anomalydino.pc; do
  [ -e "$libdir/$f" ] && ok || ko "not installed: lib/$f"
done
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs anomalydino) && ok || ko "pkg-config does not know anomalydino"
echo "pkg-config --cflags --libs anomalydino: $flags"
cc -std=c11 -o "$prefix/embed_shared" "$src/examples/embed_predict.c" $flags -lpthread \
  && ok || ko "the example does not build against the installed shared library"
out=$(LD_LIBRARY_PATH="$libdir" "$prefix/embed_shared" "$model" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] && ok || ko "the example exited $rc"
echo "$out" | grep -q 'identical to the serial run' && ok || ko "the example's threads disagree"
LD_LIBRARY_PATH="$libdir" ldd "$prefix/embed_shared" | grep -q "$libdir/libanomalydino.so.0" && ok \
  || ko "the example is not linked to the installed libanomalydino.so.0"
# static: the archive and its private dependencies, from pkg-config --static
sflags=$(pkg-config --static --libs anomalydino | sed "s#-lanomalydino#$libdir/libanomalydino.a#")
cc -std=c11 -o "$prefix/embed_static" "$src/examples/embed_predict.c" \
  $(pkg-config --cflags anomalydino) $sflags -lpthread && ok \
  || ko "the example does not build against the installed static library"
if [ -x "$prefix/embed_static" ]; then
  "$prefix/embed_static" "$model" > /dev/null 2>&1 && ok || ko "the static example failed"
  ldd "$prefix/embed_static" | grep -q libanomalydino && ko "static example links the .so" || ok
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
