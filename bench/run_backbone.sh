#!/bin/sh
# Times the C forward pass (bench_backbone) and the same architecture in PyTorch on the same
# machine, one after the other, and prints the speed ratio (best s/image, PyTorch / C).
#   sh bench/run_backbone.sh [BUILD_DIR] [RUNS] [THREADS]     (defaults: build 5 2)
# Needs a built bench_backbone and Debian's python3-torch (/usr/bin/python3 -c 'import torch').
set -eu
BUILD=${1:-build}
RUNS=${2:-5}
THREADS=${3:-2}
HERE=$(dirname "$0")
PY=${PYTHON:-/usr/bin/python3}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
c_out=$("$BUILD/bench_backbone" --model s --size 448 --runs "$RUNS" --threads "$THREADS")
echo "$c_out"
t_out=$("$PY" "$HERE/torch_dinov2.py" --model s --size 448 --runs "$RUNS" --threads "$THREADS")
echo "$t_out"
c_s=$(echo "$c_out" | sed -n "s/^threads $THREADS: \([0-9.]*\) s\/image best.*/\1/p")
t_s=$(echo "$t_out" | sed -n 's/.*threads [0-9]*: \([0-9.]*\) s\/image best.*/\1/p')
if [ -z "$c_s" ] || [ -z "$t_s" ]; then
    echo "run_backbone: could not read the timings" >&2
    exit 1
fi
awk -v c="$c_s" -v t="$t_s" 'BEGIN { printf "ViT-S/14 448x448, %s threads: C %.3f s, PyTorch %.3f s per image: C is %.2fx faster\n", "'"$THREADS"'", c, t, t / c }'
