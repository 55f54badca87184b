#!/bin/sh
# Bank size against search time and memory, full bank and coresets, 1-shot to full-shot
# (issue 15). The 209-shot point holds a 2.6 GB bank (plus a 1.3 GB float16 copy with --f16,
# and a 2.6 GB list-ordered copy with the index): run it on a machine with the memory to spare,
# never from the tests.
#   sh bench/run_bank_scale.sh [BUILD_DIR]      (about 15 minutes on 2 cores)
#   INDEX_ONLY=1 sh bench/run_bank_scale.sh     (exact vs IVF index only, about 8 minutes)
set -eu
BUILD=${1:-build}
T=${THREADS:-2}
cmake --build "$BUILD" -j2 --target bench_bank_scale >/dev/null
if [ -z "${INDEX_ONLY:-}" ]; then
  "$BUILD/bench_bank_scale" --threads "$T" --shots 1,4,16,209 --queries 3 --f16
fi
# exact search and the IVF index (automatic settings) alternated, 5 pairs per bank
"$BUILD/bench_bank_scale" --threads "$T" --index ivf --shots 1,4,16,209 --ratios 1,0.25,0.1 \
  --pairs 5 --index-max-rows 2000000
