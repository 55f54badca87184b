#!/bin/sh
# Peer benchmark: our forward pass against ONNX Runtime and PyTorch on this machine (not a test).
#   sh bench/peer_bench.sh [BUILD_DIR] [ROUNDS] [SCRATCH]      (defaults: build 5 /tmp/ad_peer)
# 1. installs what the peers need, once: Debian's python3-torch and python3-onnx (apt, as
#    root), and the npm package onnxruntime-node into SCRATCH/ort (ONNXRUNTIME_NODE_INSTALL=skip:
#    no CUDA download, the CPU binaries ship in the package);
# 2. exports the ViT-S/14 architecture of bench/torch_dinov2.py, random weights, to ONNX at
#    224, 448 and 672 (bench/peer_export_onnx.py);
# 3. times ours, ONNX Runtime (graph optimisation 'all') and PyTorch interleaved, 1 and 2
#    threads, ROUNDS fresh processes each, with the OpenBLAS sgemm ceiling (bench/peer_bench.py).
# Extra arguments for peer_bench.py go in PEER_ARGS (e.g. PEER_ARGS="--sizes 448 --threads 2").
set -eu
case "${1:-}" in -h | --help)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 0 ;;
esac
BUILD=${1:-build}
ROUNDS=${2:-5}
SCRATCH=${3:-/tmp/ad_peer}
HERE=$(dirname "$0")
PY=/usr/bin/python3

[ -x "$BUILD/bench_backbone" ] && [ -x "$BUILD/bench_attention" ] ||
    { echo "peer_bench: build first (make build): $BUILD/bench_backbone is missing" >&2; exit 1; }

if ! "$PY" -c 'import torch, onnx' 2>/dev/null; then
    echo "peer_bench: installing python3-torch python3-onnx (Debian)"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y --no-install-recommends python3-torch python3-onnx
    else
        sudo apt-get install -y --no-install-recommends python3-torch python3-onnx
    fi
fi
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "peer_bench: needs node and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$SCRATCH/ort" "$SCRATCH/onnx"
if [ ! -f "$SCRATCH/ort/node_modules/onnxruntime-node/package.json" ]; then
    echo "peer_bench: installing onnxruntime-node into $SCRATCH/ort"
    (cd "$SCRATCH/ort" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund \
        onnxruntime-node >/dev/null)
fi
for s in 224 448 672; do
    [ -f "$SCRATCH/onnx/dinov2_s_$s.onnx" ] || { "$PY" "$HERE/peer_export_onnx.py" \
        --out "$SCRATCH/onnx" --sizes 224,448,672 2>&1 | grep -v -i warn; break; }
done
# shellcheck disable=SC2086
exec "$PY" "$HERE/peer_bench.py" --build "$BUILD" --onnx "$SCRATCH/onnx" --ort "$SCRATCH/ort" \
    --rounds "$ROUNDS" --json "$SCRATCH/peer_bench.json" ${PEER_ARGS:-}
