#!/bin/sh
# AnomalyDINO demo (`make demo`): learn "normal" from the five good washers in samples/good,
# then score the held-out good and the defective washers in samples/test, writing heat-map
# overlays and raw maps into demo-out/.
#
# Weights: $ANOMALYDINO_WEIGHTS, else weights/dinov2_vits14_pretrain.pth. If neither exists,
# ONE download attempt of the official DINOv2 ViT-S/14 checkpoint (about 85 MB) is made into
# weights/; the file is checked with `anomalydino info`. If no pretrained weights can be had,
# the demo still runs with the bundled RANDOM test model (tests/data/dinov2/tiny.safetensors)
# and says loudly that its scores mean nothing.
#
# Environment: ANOMALYDINO_WEIGHTS (weights file), BUILD (build folder, default build),
# ANOMALYDINO_BIN (binary, default $BUILD/anomalydino), DEMO_OUT (default demo-out),
# DEMO_THREADS (default: all cores).
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD=${BUILD:-build}
BIN=${ANOMALYDINO_BIN:-$BUILD/anomalydino}
OUT=${DEMO_OUT:-demo-out}
THREADS=${DEMO_THREADS:-0}
URL=https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth
DEFAULT_WEIGHTS=weights/dinov2_vits14_pretrain.pth
TINY=tests/data/dinov2/tiny.safetensors
# DINOv2 ViT-S/14 (REFERENCE.md B1, B5): 22,056,576 values in the hub checkpoint, 384 fewer
# without the training-only mask_token.
VITS14_PARAMS="22056576 22056192"

say() { echo "demo: $*" >&2; }

# 1. The binary.
if [ ! -x "$BIN" ]; then
    say "building $BIN ..."
    jobs=$(nproc 2>/dev/null || echo 2)
    { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
      cmake --build "$BUILD" --target anomalydino -j"$jobs"; } || { say "build failed"; exit 1; }
fi

# 0 if $1 is the DINOv2 ViT-S/14 checkpoint (name and parameter count as `info` reports them).
is_vits14() {
    info=$("$BIN" info -m "$1" 2>&1) || { say "$1: not usable weights: $(echo "$info" | tail -n 1)"; return 1; }
    model=$(echo "$info" | awk '$1 == "model" { print $2 }')
    params=$(echo "$info" | awk '$1 == "parameters" { print $2 }')
    if [ "$model" != "vits14" ]; then
        say "$1: holds '$model', not DINOv2 ViT-S/14 (vits14)"
        return 1
    fi
    for p in $VITS14_PARAMS; do [ "$params" = "$p" ] && return 0; done
    say "$1: $params parameters, expected 22056576 for DINOv2 ViT-S/14"
    return 1
}

# 2. The weights.
WEIGHTS=""
if [ -n "${ANOMALYDINO_WEIGHTS:-}" ]; then
    # the user's choice: any DINOv2 weights the tool can read
    if "$BIN" info -m "$ANOMALYDINO_WEIGHTS" >/dev/null 2>&1; then
        WEIGHTS=$ANOMALYDINO_WEIGHTS
    else
        say "ANOMALYDINO_WEIGHTS=$ANOMALYDINO_WEIGHTS cannot be read:"
        "$BIN" info -m "$ANOMALYDINO_WEIGHTS" >/dev/null
    fi
elif [ -f "$DEFAULT_WEIGHTS" ]; then
    if is_vits14 "$DEFAULT_WEIGHTS"; then WEIGHTS=$DEFAULT_WEIGHTS; fi
else
    say "no weights yet: one download attempt of $URL"
    mkdir -p weights
    tmp="$DEFAULT_WEIGHTS.part"
    rm -f "$tmp"
    got=1
    if command -v curl >/dev/null 2>&1; then
        curl -fL --connect-timeout 20 --max-time 900 -o "$tmp" "$URL" && got=0
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 20 -t 1 -O "$tmp" "$URL" && got=0
    else
        say "neither curl nor wget is installed"
    fi
    if [ $got -ne 0 ]; then
        say "download failed (offline, or the server refused); to use real weights, fetch"
        say "  $URL"
        say "into $DEFAULT_WEIGHTS (or set ANOMALYDINO_WEIGHTS) and run the demo again"
        rm -f "$tmp"
    elif is_vits14 "$tmp"; then
        mv "$tmp" "$DEFAULT_WEIGHTS" && WEIGHTS=$DEFAULT_WEIGHTS
        say "saved $DEFAULT_WEIGHTS"
    else
        say "the downloaded file is not the expected DINOv2 ViT-S/14 checkpoint; removed"
        rm -f "$tmp"
    fi
fi

RANDOM_MODEL=0
if [ -z "$WEIGHTS" ]; then
    RANDOM_MODEL=1
    WEIGHTS=$TINY
fi
notice() {
    [ $RANDOM_MODEL -eq 1 ] || return 0
    cat >&2 <<EOF

##############################################################################
##  NOTICE: no pretrained DINOv2 weights - this demo runs with the bundled
##  RANDOM test model $TINY.
##  The scores, verdicts and overlays below are NOT meaningful: they only
##  show that the pipeline runs. For real results put the official
##  dinov2_vits14_pretrain.pth into weights/ (or set ANOMALYDINO_WEIGHTS).
##############################################################################

EOF
}
notice

# 3. Fit on the good washers (8 rotations each: the parts lie at any angle), then predict.
mkdir -p "$OUT" || exit 1
BANK=$OUT/washer.adbank
say "fit: $WEIGHTS, references samples/good -> $BANK"
"$BIN" fit -m "$WEIGHTS" -o "$BANK" --rotate --threads "$THREADS" samples/good || { say "fit failed"; exit 1; }
echo
say "predict: samples/test -> $OUT/predictions.csv, overlays in $OUT/overlays, maps in $OUT/maps"
"$BIN" predict -m "$WEIGHTS" -b "$BANK" --overlays "$OUT/overlays" --maps "$OUT/maps" \
    --threads "$THREADS" samples/test >"$OUT/predictions.csv"
rc=$?
echo
if command -v column >/dev/null 2>&1; then
    column -t -s, "$OUT/predictions.csv"
else
    cat "$OUT/predictions.csv"
fi
echo
echo "overlays: $OUT/overlays/*.png (colour scale 0 .. 2 x threshold, threshold outlined)"
notice
exit $rc
