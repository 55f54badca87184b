#!/bin/sh
# Builds libpng and libjpeg-turbo from Debian's sources with the fuzzers' instrumentation
# (coverage + ASan + UBSan), so that the png/jpeg targets are guided through the decoders'
# own code, not only ours (with the system libraries libFuzzer sees ~100 edges; with these,
# ~1000). Usage: fuzz/build-image-libs.sh [DIR] (default build-fuzz-libs), then
#   make fuzz BUILD=build-il FUZZ_CMAKE_ARGS="$(fuzz/build-image-libs.sh --cmake-args DIR)"
# The sources come from the Debian archive (apt-get source, through a private sources list:
# the system's apt configuration is left alone). Needs clang, cmake, make.
set -eu
if [ "${1:-}" = "--cmake-args" ]; then
  D=$(cd "${2:-build-fuzz-libs}" && pwd)
  echo "-DPNG_LIBRARY=$D/lib/libpng16.a -DPNG_PNG_INCLUDE_DIR=$D/include -DJPEG_LIBRARY=$D/lib/libjpeg.a -DJPEG_INCLUDE_DIR=$D/include"
  exit 0
fi
D=${1:-build-fuzz-libs}
mkdir -p "$D/apt/lists/partial" "$D/src" "$D/lib" "$D/include"
D=$(cd "$D" && pwd)
cat > "$D/apt/sources.list" <<EOS
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOS
APT="-o Dir::Etc::SourceList=$D/apt/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$D/apt/lists -o Debug::NoLocking=1"
apt-get $APT update -qq
cd "$D/src"
# only the upstream tarballs are needed (a security update's Debian part may be missing)
apt-get $APT source --download-only libpng1.6 libjpeg-turbo || true
ls libpng1.6_*.orig.tar.* libjpeg-turbo_*.orig.tar.* >/dev/null
F="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -g -O1"
rm -rf png jpeg && mkdir png jpeg
tar xf libpng1.6_*.orig.tar.* -C png --strip-components=1
tar xf libjpeg-turbo_*.orig.tar.* -C jpeg --strip-components=1
(cd png && CC=clang CFLAGS="$F" LDFLAGS="-fsanitize=address,undefined" ./configure -q --disable-shared \
   --prefix="$D/png-install" && make -j2 && make install) >"$D/png.log" 2>&1
cp "$D/png-install/lib/libpng16.a" "$D/lib/" && cp -r "$D/png-install/include/." "$D/include/"
(mkdir -p jpeg/b && cd jpeg/b && cmake .. -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release \
   -DCMAKE_C_FLAGS_RELEASE="$F" -DENABLE_SHARED=0 -DWITH_SIMD=0 -DWITH_TURBOJPEG=0 && \
   make -j2 jpeg-static) >"$D/jpeg.log" 2>&1
cp jpeg/b/libjpeg.a "$D/lib/" && cp jpeg/jpeglib.h jpeg/jerror.h jpeg/jmorecfg.h jpeg/b/jconfig.h "$D/include/"
echo "instrumented libpng and libjpeg in $D"
