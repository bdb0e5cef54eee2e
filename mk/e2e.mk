# End-to-end tests: a real systemd user manager + journald for an unprivileged test user, Archy
# installed for that user with `make install-files`, a headless sway desktop for the window test.
# They run as root (they create the user and boot its manager); see docs/systemd.md.

E2E_VENV ?= .venv-e2e
E2E_PYTHON ?= python3
E2E_APT := systemd tmux sway foot grim fonts-dejavu-core python3 python3-venv python3-pip \
	passwd util-linux
E2E_PYTEST_ARGS ?=

.PHONY: e2e-deps e2e-test

e2e-deps:
	bash .ci/apt.sh $(E2E_APT)
	@if [ ! -x $(E2E_VENV)/bin/pytest ]; then \
	  $(E2E_PYTHON) -m venv $(E2E_VENV) && echo '*' > $(E2E_VENV)/.gitignore && \
	  $(E2E_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt; \
	fi

e2e-test: build
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "e2e-test: SKIPPED: needs root (it creates a test user and boots its systemd)." \
	       "Run: sudo make e2e-test"; exit 0; fi; \
	$(E2E_VENV)/bin/python -m pytest -p no:cacheprovider -v -s tests/e2e $(E2E_PYTEST_ARGS)

DEPS_TARGETS += e2e-deps
TEST_TARGETS += e2e-test
