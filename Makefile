# Thin front for CMake/CTest.  `make test` is the README's test command.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build test asan deps bench demo clean tsan

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

# ThreadSanitizer: the service's reload race (bank swaps under load) in build-tsan.
tsan:
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=Debug -DAD_TSAN=ON
	cmake --build $(BUILD)-tsan -j$(JOBS) --target anomalydino
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=0 exitcode=66" \
	  ctest --output-on-failure -R 'serve\.test_serve_reload_race'

bench: build
	sh bench/run_all.sh

demo: build
	sh samples/demo.sh

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan
