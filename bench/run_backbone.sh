#!/bin/sh
# Times the C forward pass (bench_backbone) and the same architecture in PyTorch on the same
# machine, one after the other, and prints the speed ratio (best s/image, PyTorch / C).
#   sh bench/run_backbone.sh [BUILD_DIR] [RUNS] [THREADS]     (defaults: build 5 2)
# Needs a built bench_backbone and Debian's python3-torch (/usr/bin/python3 -c 'import torch').
#
# Debian's torch does its matrix products through libblas.so.3, i.e. whichever OpenBLAS variant
# the alternatives system selects. It is much faster with the OpenMP variant (which
# tools/install-deps.sh installs for us) than with the pthread one (Debian's default when
# python3-torch is installed alone), so PyTorch is timed with both when both are installed.
set -eu
BUILD=${1:-build}
RUNS=${2:-5}
THREADS=${3:-2}
HERE=$(dirname "$0")
PY=${PYTHON:-/usr/bin/python3}
LIBDIR=/usr/lib/x86_64-linux-gnu

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
c_out=$("$BUILD/bench_backbone" --model s --size 448 --runs "$RUNS" --threads "$THREADS")
echo "$c_out"
c_s=$(echo "$c_out" | sed -n "s/^threads $THREADS: \([0-9.]*\) s\/image best.*/\1/p")
[ -n "$c_s" ] || { echo "run_backbone: could not read the C timing" >&2; exit 1; }

torch_ratio() { # $1 = label, then the environment prefix
    label=$1
    shift
    t_out=$(env "$@" "$PY" "$HERE/torch_dinov2.py" --model s --size 448 --runs "$RUNS" --threads "$THREADS")
    echo "$t_out"
    t_s=$(echo "$t_out" | sed -n 's/.*threads [0-9]*: \([0-9.]*\) s\/image best.*/\1/p')
    [ -n "$t_s" ] || { echo "run_backbone: could not read the PyTorch timing" >&2; exit 1; }
    awk -v c="$c_s" -v t="$t_s" -v l="$label" -v n="$THREADS" 'BEGIN {
        printf "ViT-S/14 448x448, %s threads: C %.3f s, PyTorch (%s) %.3f s per image: C is %.2fx faster\n", n, c, l, t, t / c }'
}

torch_ratio "system default, libopenblas.so.0 = $(basename "$(dirname "$(readlink -f $LIBDIR/libopenblas.so.0)")")" PYTORCH_BENCH=1
for v in openblas-openmp openblas-pthread; do
    [ -f "$LIBDIR/$v/libblas.so.3" ] && torch_ratio "$v" LD_LIBRARY_PATH="$LIBDIR/$v"
done
exit 0
