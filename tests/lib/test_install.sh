#!/bin/sh
# cmake --install into a temporary prefix, then build examples/embed_predict.c against it with
# nothing but pkg-config (shared, then static), and run both; then examples/eval_category.c,
# one category of the benchmark through the library API alone, whose metrics and scores must be
# those the installed `anomalydino eval` writes for the same category.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR MODEL [MVTEC_ROOT CATEGORY]
set -u
build=$1 src=$2 model=$3 data=${4:-} cat=${5:-}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }
prefix=$(mktemp -d) || exit 1
trap 'rm -rf "$prefix"' EXIT
if cmake --install "$build" --prefix "$prefix" > "$prefix/install.log" 2>&1; then ok; else
  ko "cmake --install failed:"; cat "$prefix/install.log"; fi
for f in include/anomalydino.h include/anomalydino_eval.h bin/anomalydino; do
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
if [ -n "$data" ]; then
  cc -std=c11 -o "$prefix/eval_category" "$src/examples/eval_category.c" $flags \
    && ok || ko "examples/eval_category.c does not build against the installed library"
  LD_LIBRARY_PATH="$libdir" "$prefix/eval_category" "$model" "$data" "$cat" 2 \
    "$prefix/eval_lib" > "$prefix/lib.csv" 2> "$prefix/lib.err"; rc=$?
  [ $rc -eq 0 ] && ok || { ko "eval_category exited $rc:"; cat "$prefix/lib.err"; }
  ANOMALYDINO_QUIET=1 "$prefix/bin/anomalydino" eval -m "$model" --dataset mvtec --data "$data" \
    --categories "$cat" --shots 2 --seeds 1 --examples 0 -o "$prefix/eval_cli" > /dev/null \
    2> "$prefix/cli.err" && ok || { ko "anomalydino eval failed:"; cat "$prefix/cli.err"; }
  # the CLI's scores.csv rows (2,0,CAT,IMAGE,LABEL,SCORE,TIME) against the example's image rows
  awk -F, 'NR > 1 {print "image," $4 "," $5 "," $6}' "$prefix/eval_cli/scores.csv" \
    > "$prefix/cli_images.csv"
  grep '^image,' "$prefix/lib.csv" > "$prefix/lib_images.csv"
  n=$(wc -l < "$prefix/lib_images.csv")
  echo "eval_category: $n test images scored; $(grep '^unit,' "$prefix/lib.csv")"
  [ "$n" -gt 0 ] && cmp -s "$prefix/lib_images.csv" "$prefix/cli_images.csv" && ok \
    || { ko "the library's scores differ from the CLI's:"; diff "$prefix/lib_images.csv" \
         "$prefix/cli_images.csv" | head -5; }
  auroc=$(grep '^unit,' "$prefix/lib.csv" | sed -n 's/.*image_auroc=\([^,]*\).*/\1/p')
  cli_auroc=$(awk -F, '$1 == "2" && $2 == "0" && $3 == "'"$cat"'" {print $4}' \
    "$prefix/eval_cli/metrics.csv")
  echo "image AUROC: library $auroc, CLI $cli_auroc"
  awk -v a="$auroc" -v b="$cli_auroc" 'BEGIN {exit !(a != "" && a + 0 == b + 0)}' && ok \
    || ko "image AUROC: library $auroc, CLI $cli_auroc"
  [ -f "$prefix/eval_lib/tables.md" ] && ok || ko "the example wrote no report"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
