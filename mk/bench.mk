# Benchmarks, reliability suite and fuzzing (issue 5). See docs/performance.md, docs/reliability.md.
#
#   make reliability-test   # short load + fault suite + bounded fuzz run (part of `make test`)
#   make soak               # the same, longer (RELIABILITY_SECONDS, FUZZ_SECONDS)
#   make bench              # benchmarks -> benches/results.json, docs/performance.{md,png}
#   make fuzz               # cargo fuzz (libFuzzer) on the framing + dispatcher, FUZZ_SECONDS

BENCH_VENV ?= .venv-bench
BENCH_PYTHON ?= python3
BENCH_ARGS ?=
RELIABILITY_SECONDS ?= 15
SOAK_SECONDS ?= 300
FUZZ_SECONDS ?= 60
FUZZ_CASES ?= 20000

.PHONY: bench-deps bench reliability-test soak fuzz fuzz-test

bench-deps:
	bash .ci/apt.sh tmux systemd python3 python3-venv util-linux
	@if [ ! -x $(BENCH_VENV)/bin/pytest ] || ! $(BENCH_VENV)/bin/python -c 'import libtmux, matplotlib' 2>/dev/null; then \
	  $(BENCH_PYTHON) -m venv $(BENCH_VENV) && echo '*' > $(BENCH_VENV)/.gitignore && \
	  $(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r benches/requirements.txt; \
	fi

# Short enough for `make test` (about a minute): 200 connections for RELIABILITY_SECONDS,
# every fault once, and a seeded fuzz run of FUZZ_CASES inputs over the real transport.
reliability-test: build
	RELIABILITY_SECONDS=$(RELIABILITY_SECONDS) $(BENCH_VENV)/bin/python -m pytest -p no:cacheprovider -q tests/reliability
	FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release --manifest-path fuzz/Cargo.toml --target-dir target -- --nocapture

soak: build
	RELIABILITY_SECONDS=$(SOAK_SECONDS) RELIABILITY_RESULTS=artifacts/soak.json \
	  $(BENCH_VENV)/bin/python -m pytest -p no:cacheprovider -q -s tests/reliability
	FUZZ_CASES=1000000 $(CARGO) test --release --manifest-path fuzz/Cargo.toml --target-dir target -- --nocapture
	$(MAKE) fuzz FUZZ_SECONDS=$(SOAK_SECONDS)

# libFuzzer through cargo-fuzz. Needs nightly features; RUSTC_BOOTSTRAP=1 lets stable build it.
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --features libfuzzer dispatch corpus/dispatch -- \
	  -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10

bench: build
	$(BENCH_VENV)/bin/python benches/bench.py $(BENCH_ARGS)

DEPS_TARGETS += bench-deps
TEST_TARGETS += reliability-test
