#!/bin/sh
# Every speed / memory figure quoted in the README, measured in one go (`make bench`).
#   sh bench/run_all.sh [BUILD_DIR]      (default build; about 3 minutes on 2 cores)
# Ratios are measured within one run because shared machines are noisy.
set -eu
BUILD=${1:-build}
T=${THREADS:-2}
cmake --build "$BUILD" -j"$(nproc)" --target bench_backbone bench_knn bench_zeroshot bench_metrics >/dev/null

echo "== backbone: ViT-S/14 448x448, C vs PyTorch (issue 2)"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    sh "$(dirname "$0")/run_backbone.sh" "$BUILD" 5 "$T"
else
    echo "(python3-torch not installed: C only)"
    "$BUILD/bench_backbone" --model s --size 448 --runs 5 --threads "$T"
fi

echo "== backbone 1 vs 2 threads, and the whole 1-shot agnostic predict vs the backbone (issue 3)"
"$BUILD/bench_backbone" --model s --size 448 --runs 5 --threads 1,"$T" --predict

echo "== nearest-neighbour search: 1-shot (8192 rows) and 16-shot (131072 rows) agnostic banks (issue 3)"
"$BUILD/bench_knn" --threads "$T" --reps 10 --shots 1 --shots 16

echo "== batched zero-shot scoring: 100 images x 1024 patches x 384 dims (issue 5)"
bb=$("$BUILD/bench_backbone" --model s --size 448 --runs 3 --threads "$T" |
     sed -n "s/^threads $T: \([0-9.]*\) s\/image best.*/\1/p")
"$BUILD/bench_zeroshot" --threads "$T" --backbone-s "$bb"

echo "== metrics: synthetic VisA-sized category, 100 images of 1500x1000 (issue 4)"
"$BUILD/bench_metrics" --threads "$T"

echo "== banks: search time and memory vs bank rows, full and coresets (issue 15; full shot: bench/run_bank_scale.sh)"
cmake --build "$BUILD" -j2 --target bench_bank_scale bench_coreset_quality >/dev/null
"$BUILD/bench_bank_scale" --threads "$T" --shots 1,16 --queries 3

echo "== banks: coreset vs full bank, score and AUROC differences (issue 15)"
"$BUILD/bench_coreset_quality" --threads "$T"

echo "== Python package: bank.predict vs the CLI's per-image time (issue 12)"
if /usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null; then
    /usr/bin/python3 "$(dirname "$0")/bench_python.py" --build "$BUILD" --threads "$T" --rounds 3
else
    echo "(python3-numpy / python3-pil not installed: skipped)"
fi
