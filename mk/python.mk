# The Python package (python/): the `archy` command, the executor client and the brain.
#
#   make python-deps    # venv at .venv with the package (editable) and its dev tools
#   make python-lint    # ruff check, ruff format --check, mypy (strict)
#   make python-test    # pytest against the real daemon (target/release) and real tmux
#
# The tests start archy-executor through the client's own lazy start, each with a private
# socket and a private tmux server; only the model services are stood in (python/tests/fake_llm).

VENV ?= .venv
PYTHON ?= python3
py_venv = $(abspath $(VENV))

.PHONY: python-deps python-lint python-test

python-deps: $(py_venv)/.archy-deps

$(py_venv)/.archy-deps: python/pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || bash .ci/apt.sh python3-venv
	@command -v tmux >/dev/null || bash .ci/apt.sh tmux
	$(PYTHON) -m venv $(py_venv)
	$(py_venv)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(py_venv)/bin/python -m pip install --quiet --disable-pip-version-check -e 'python[dev]'
	touch $@

python-lint: python-deps
	cd python && $(py_venv)/bin/ruff check src tests
	cd python && $(py_venv)/bin/ruff format --check src tests
	cd python && $(py_venv)/bin/mypy

python-test: python-deps build
	cd python && ARCHY_TEST_EXECUTOR=$(CURDIR)/$(or $(RELEASE_DIR),target/release)/archy-executor \
	  $(py_venv)/bin/python -m pytest -q

DEPS_TARGETS += python-deps
TEST_TARGETS += python-lint python-test
