# Thin front for CMake/CTest.  `make test` is the README's test command.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build test asan tsan deps bench demo clean fuzz fuzz-build

all: build

deps:
	sh tools/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

# Everything: the test suite, then the whole suite again under AddressSanitizer + UBSan
# (the file parsers above all: weights, images, .npy, banks, CSV).
test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) asan
	$(MAKE) tsan

asan:
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DAD_SANITIZE=ON
	cmake --build $(BUILD)-asan -j$(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS)

# The concurrency tests (test_concurrent_*, label tsan) under ThreadSanitizer: clang + LLVM libomp
# with its Archer tool, OpenBLAS' serial build (see CMakeLists.txt, tests/tsan.supp).
ARCHER ?= $(firstword $(wildcard /usr/lib/llvm-*/lib/libarcher.so))
tsan:
	CC=clang cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAD_TSAN=ON
	cmake --build $(BUILD)-tsan -j$(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1" \
	  OMP_TOOL_LIBRARIES=$(ARCHER) ctest --output-on-failure -L tsan -j$(JOBS)

bench: build
	sh bench/run_all.sh

demo: build
	sh samples/demo.sh

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz

# Fuzzing (fuzz/, docs/fuzzing.md): libFuzzer targets built with clang + ASan + UBSan in
# $(BUILD)-fuzz, each run FUZZ_SECONDS (default 60) seconds.
# FUZZ_CMAKE_ARGS: e.g. instrumented image libraries (fuzz/build-image-libs.sh).
FUZZ_SECONDS ?= 60
FUZZ_CMAKE_ARGS ?=
fuzz-build:
	cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DAD_FUZZ=ON \
	  $(FUZZ_CMAKE_ARGS)
	cmake --build $(BUILD)-fuzz -j$(JOBS) --target fuzz_safetensors fuzz_pth fuzz_png fuzz_jpeg \
	  fuzz_npy fuzz_bank fuzz_metrics_csv fuzz_visa_csv fuzz_manifest_csv fuzz_dataset_walk \
	  fuzz_mask fuzz_serve_request

fuzz: fuzz-build
	BUILD=$(BUILD)-fuzz sh fuzz/run.sh $(FUZZ_SECONDS)
