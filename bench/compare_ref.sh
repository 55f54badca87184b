#!/bin/sh
# Speed of this tree against another commit (default: the last commit before the thread-model
# change, 4b64fc4), measured in one interleaved run: the two builds take turns on every point
# so that machine noise hits both alike. Prints one table row per point with the ratio
# (this tree / reference; < 1 is faster).
#   sh bench/compare_ref.sh [REF] [ROUNDS]      (about 6 minutes on 2 idle cores)
set -eu
REF=${1:-4b64fc4}
ROUNDS=${2:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$work/ref" >/dev/null 2>&1; rm -rf "$work"' EXIT
git -C "$top" worktree add -q --detach "$work/ref" "$REF"
targets="bench_backbone bench_knn bench_zeroshot"
for d in "$top" "$work/ref"; do
    cmake -S "$d" -B "$d/build-cmp" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$d/build-cmp" -j2 --target $targets >/dev/null
done
NEW=$top/build-cmp OLD=$work/ref/build-cmp

# best of ROUNDS alternating runs of one point; prints "old new"
best() { # $1: a command line with @ for the build folder, $2: sed expression extracting seconds
    o=999999 n=999999
    for r in $(seq "$ROUNDS"); do
        for which in OLD NEW; do
            eval dir=\$$which
            cmd=$(echo "$1" | sed "s#@#$dir#g")
            v=$(sh -c "$cmd" 2>&1 | sed -n "$2" | head -1)
            [ -n "$v" ] || { echo "no figure from: $cmd" >&2; exit 1; }
            if [ "$which" = OLD ]; then o=$(echo "$v $o" | awk '{print ($1<$2)?$1:$2}')
            else n=$(echo "$v $n" | awk '{print ($1<$2)?$1:$2}'); fi
        done
    done
    echo "$o $n"
}
row() { echo "$2" | awk -v name="$1" -v u="$3" '{printf "| %-26s | %9.4f %s | %9.4f %s | %5.3f |\n", name, $1, u, $2, u, $2/$1}'; }

echo "reference $REF vs $(git -C "$top" rev-parse --short HEAD)$(git -C "$top" diff --quiet || echo '+changes'), best of $ROUNDS interleaved runs, $(nproc) cores"
echo "| point                      | reference     | this tree     | ratio |"
echo "|---|---|---|---|"
for size in 224 448 672; do
    for t in 1 2; do
        row "ViT-S $size, $t thread(s)" "$(best "@/bench_backbone --model s --size $size --runs 2 --threads $t" "s/^threads $t: \([0-9.]*\) s\/image best.*/\1/p")" s
    done
done
for shots in 1 16; do
    row "kNN $shots-shot, 2 threads" "$(best "@/bench_knn --threads 2 --reps 5 --shots $shots" "s/.*$shots-shot:.*min *\([0-9.]*\) ms.*/\1/p")" ms
done
row "zero-shot 100 images, 2 thr" "$(best "@/bench_zeroshot --threads 2 --backbone-s 1" "s/^  time *\([0-9.]*\) s.*/\1/p")" s
