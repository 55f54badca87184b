#!/bin/sh
# Debian 12 packages needed to build and test anomalydino (run as root).
set -e
PKGS="build-essential cmake pkg-config libopenblas-openmp-dev libpng-dev libjpeg62-turbo-dev libcjson-dev zlib1g-dev libtiff-dev libstb-dev"
# make tsan: clang + LLVM libomp (its Archer tool) and the serial OpenBLAS beside the OpenMP one
PKGS="$PKGS clang libomp-14-dev libopenblas0-serial"
# fuzzing (make fuzz, fuzz/): libFuzzer and the sanitizer runtimes of clang 14, LLVM OpenMP
PKGS="$PKGS libclang-rt-14-dev libomp-dev"
# Python package (python/): numpy + pytest for its tests, venv/pip/setuptools/wheel for the
# offline `pip install ./python`, Pillow to decode test PNGs.
PKGS="$PKGS python3-numpy python3-pytest python3-venv python3-pip python3-setuptools python3-wheel python3-pil"
# anomalydino serve: HTTP (libmicrohttpd), SHA-256/base64 (nettle); its tests use python3, its
# benchmark wrk
PKGS="$PKGS libmicrohttpd-dev nettle-dev python3 wrk"
# the service beyond one machine and in a browser: HAProxy in front of replicas, the manifests'
# YAML, Debian's chromium driven by playwright-core (npm, below) through node
PKGS="$PKGS haproxy python3-yaml chromium"
# sharded evaluation over an existing engine: GNU parallel runs the shards in the test
PKGS="$PKGS parallel"
# node and npm from Debian unless the machine has them already (a NodeSource node brings its
# own npm, which Debian's npm package would conflict with)
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing
fi
# playwright-core for the browser test, pinned by tests/browser/package-lock.json (it brings no
# browser: the test drives Debian's chromium)
top=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$top/tests/browser/node_modules/playwright-core" ]; then
  (cd "$top/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
