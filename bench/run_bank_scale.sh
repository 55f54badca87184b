#!/bin/sh
# Bank size against search time and memory, full bank and coresets, 1-shot to full-shot
# (issue 15). The 209-shot point holds a 2.6 GB bank (plus a 1.3 GB float16 copy with --f16):
# run it on a machine with the memory to spare, never from the tests.
#   sh bench/run_bank_scale.sh [BUILD_DIR]      (about 5 minutes on 2 cores)
set -eu
BUILD=${1:-build}
T=${THREADS:-2}
cmake --build "$BUILD" -j2 --target bench_bank_scale >/dev/null
"$BUILD/bench_bank_scale" --threads "$T" --shots 1,4,16,209 --queries 3 --f16
