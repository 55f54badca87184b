#!/bin/sh
# Debian 12 packages needed to build and test anomalydino (run as root).
set -e
PKGS="build-essential cmake pkg-config libopenblas-openmp-dev libpng-dev libjpeg62-turbo-dev libcjson-dev zlib1g-dev"
# fuzzing (make fuzz, fuzz/): clang 14 with libFuzzer and the sanitizer runtimes, LLVM OpenMP
PKGS="$PKGS clang libclang-rt-14-dev libomp-dev"
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
