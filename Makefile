# Thin wrapper over CMake + Ninja. `make run` and `make test` work on a fresh
# Debian machine: both install what they need first (scripts/deps.sh): `make
# run` the compiler and libraries, `make test` also the tests' peers and clients.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build deps deps-run run test asan tsan fuzz docs bench clean

all: build

build:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh test

deps-run:
	@scripts/deps.sh run

run: deps-run build
	$(BUILD)/sluice run examples/quickstart.yaml

test: deps
	@scripts/test.sh

asan:
	@CC=clang cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON >/dev/null
	@ninja -C build-asan -j $(JOBS)

# ThreadSanitizer build, and the specs that run pipeline.threads and http.workers on it.
tsan:
	@CC=clang cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_TSAN=ON >/dev/null
	@ninja -C build-tsan -j $(JOBS) sluice
	@SLUICE_BIN=build-tsan/sluice TSAN_OPTIONS="halt_on_error=1:exitcode=66" \
	  busted --lua=luajit -o plainTerminal spec/threads_spec.lua spec/http_workers_spec.lua

fuzz:
	@CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_FUZZ=ON -DSL_SANITIZE=ON >/dev/null
	@ninja -C build-fuzz -j $(JOBS) fuzz_conf fuzz_http fuzz_seglog fuzz_scanner
	@mkdir -p build-fuzz/corpus-fuzz_conf build-fuzz/corpus-fuzz_http
	@cp examples/*.yaml build-fuzz/corpus-fuzz_conf/ 2>/dev/null || true
	build-fuzz/fuzz_conf -max_total_time=$${FUZZ_SECONDS:-60} -max_len=4096 build-fuzz/corpus-fuzz_conf
	build-fuzz/fuzz_http -max_total_time=$${FUZZ_SECONDS:-60} -max_len=4096 build-fuzz/corpus-fuzz_http
	@mkdir -p build-fuzz/corpus-fuzz_seglog
	build-fuzz/fuzz_seglog -max_total_time=$${FUZZ_SECONDS:-60} -max_len=4096 build-fuzz/corpus-fuzz_seglog
	@mkdir -p build-fuzz/corpus-fuzz_scanner
	build-fuzz/fuzz_scanner -max_total_time=$${FUZZ_SECONDS:-60} -max_len=4096 build-fuzz/corpus-fuzz_scanner

docs: build
	$(BUILD)/sluice doc --all --out docs/components

bench: deps build
	bench/run.sh

clean:
	rm -rf build build-asan build-fuzz
