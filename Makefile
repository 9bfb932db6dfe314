# The two set-up commands: `make run` and `make test`. Everything else is a helper of those.
BUILD     ?= build
TYPE      ?= Release
JOBS      ?= $(shell nproc)
CMAKE_ARGS ?=
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_DIR ?= $(HOME)/.cache/evosip-ccache
# Paths relative to the checkout: another clone or worktree reuses the same cache entries.
export CCACHE_BASEDIR ?= $(CURDIR)

.PHONY: all deps configure build run test test-asan unit integration fuzz format clean image chaos

all: build

# Debian packages, then helm + kubernetes-models for the chart's offline validation (npm, into
# ~/.cache/evosip-k8s-tools, shared by every checkout).
deps:
	@scripts/install-deps
	@deploy/helm/test/install-tools

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/evosip up

# Every test: unit, fuzz-corpus replay and integration (real binaries, real peers).
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600

# Every test against an AddressSanitizer + UBSan build (unit tests, corpora, and the integration
# suites against the instrumented binary). Slower; run before landing parser or lifetime changes.
test-asan: deps
	cmake --preset asan-ubsan
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) --timeout 900

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L unit

integration: build
	ctest --test-dir $(BUILD) --output-on-failure -L integration

# Churn under load on the namespace cluster (tests/cluster; minutes; root and FRR): rolling
# restarts and kills of every tier while calls run, and what callers saw.
chaos: build
	EVOSIP_BIN=$(CURDIR)/$(BUILD)/evosip python3 tests/cluster/chaos.py $(CHAOS_ARGS)

# libFuzzer binaries (clang-14): make fuzz, then build-fuzz/tests/fuzz/<name>_fuzzer CORPUS_DIR
fuzz: deps
	cmake --preset fuzz
	cmake --build build-fuzz -j $(JOBS) --target fuzzers

# The container image for every role, built offline (FROM scratch + the assembled filesystem):
# $(BUILD)/image/evosip-<version>.tar (OCI archive); podman and buildah come from Debian.
image: build
	@EVOSIP_WITH_IMAGE_TOOLS=1 scripts/install-deps
	deploy/image/build-image.sh $(BUILD)

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
