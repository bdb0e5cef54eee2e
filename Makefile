# Archy: build, test, install. `make demo` and `make test` are the README's quick start.
# Each part adds its own targets from mk/*.mk (python, install, e2e, bench), appending to
# DEPS_TARGETS (what `make deps` installs) and TEST_TARGETS (what `make test` runs).

CARGO ?= cargo
PREFIX ?= $(HOME)/.local
export CARGO_TERM_COLOR ?= never

DEPS_TARGETS := rust-deps
TEST_TARGETS := lint rust-test

.PHONY: all build deps rust-deps lint rust-test test demo
all: build

build:
	$(CARGO) build --release --bins

include $(sort $(wildcard mk/*.mk))

# System packages the Rust tests need (tmux); skipped when present.
rust-deps:
	bash .ci/apt.sh tmux systemd zsh fish

deps: $(DEPS_TARGETS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

rust-test: build
	$(CARGO) test --release

test: deps
	$(MAKE) $(TEST_TARGETS)
