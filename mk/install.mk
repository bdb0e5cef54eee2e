# Install for one user without root: binaries, systemd user units, the Python package.
#
#   make install                 # build, then install under PREFIX (default ~/.local)
#   make install-files           # install what is already built (no cargo run)
#   make uninstall
#   make demo                    # build, install, run a real command through the daemon
#   make package                 # Arch package with makepkg (packaging/build-arch.sh)
#
# The Python package goes into its own virtual environment, $(PREFIX)/lib/archy/venv, and its
# console scripts are linked into $(BINDIR). A venv rather than `pip install --user`: Debian,
# Ubuntu, Fedora and Arch mark the system Python externally managed (PEP 668), so --user fails
# there, and a venv keeps Archy's dependencies away from everything else.
# INSTALL_PYTHON=no skips it. DESTDIR stages binaries, units and docs (not the venv: a venv
# cannot be moved after it is made).

BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/systemd/user
DOCDIR ?= $(PREFIX)/share/doc/archy
ARCHY_LIBDIR ?= $(PREFIX)/lib/archy
PYTHON ?= python3
INSTALL_PYTHON ?= auto
RELEASE_DIR ?= target/release

# Absolute paths: they are written into the unit files.
i_bindir = $(abspath $(BINDIR))
i_docdir = $(abspath $(DOCDIR))
i_libdir = $(abspath $(ARCHY_LIBDIR))
i_venv = $(i_libdir)/venv
# systemctl --user is only called for a live install into the user's own unit directory.
i_manager = [ -z "$(DESTDIR)" ] && systemctl --user show-environment >/dev/null 2>&1

.PHONY: install install-files install-bin install-units install-docs install-python uninstall \
	demo package package-deps package-test

install: build
	@$(MAKE) --no-print-directory install-files

install-files: install-bin install-units install-docs install-python
	@if $(i_manager); then systemctl --user daemon-reload; \
	  echo "installed. Enable socket activation once with: systemctl --user enable --now archy.socket"; \
	else echo "installed (no systemd user manager here: archyctl starts the daemon by itself)"; fi

install-bin:
	install -d $(DESTDIR)$(i_bindir)
	install -m 0755 $(RELEASE_DIR)/archy-executor $(RELEASE_DIR)/archyctl $(DESTDIR)$(i_bindir)/

# The units in systemd/ name /usr/bin (the distribution packages' path); point them here.
install-units:
	install -d $(DESTDIR)$(UNITDIR)
	install -m 0644 systemd/archy.socket $(DESTDIR)$(UNITDIR)/archy.socket
	sed -e 's|^ExecStart=/usr/bin/archy-executor|ExecStart=$(i_bindir)/archy-executor|' \
	    -e 's|file:///usr/share/doc/archy/|file://$(i_docdir)/|' \
	    systemd/archy.service > $(DESTDIR)$(UNITDIR)/archy.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/archy.service

install-docs:
	install -d $(DESTDIR)$(i_docdir)
	install -m 0644 $(wildcard README.md LICENSE docs/*.md) $(DESTDIR)$(i_docdir)/

install-python:
	@case "$(INSTALL_PYTHON)" in no) exit 0;; esac; \
	if [ ! -f python/pyproject.toml ]; then echo "python/ has no package yet: skipped"; exit 0; fi; \
	if [ -n "$(DESTDIR)" ]; then echo "DESTDIR set: the Python venv is not staged (not relocatable)"; exit 0; fi; \
	set -e; \
	if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "$(PYTHON) cannot make a venv: install python3-venv (Debian/Ubuntu), or INSTALL_PYTHON=no" >&2; exit 1; fi; \
	echo "Python package -> $(i_venv)"; \
	$(PYTHON) -m venv $(i_venv); \
	$(i_venv)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade ./python; \
	scripts=$$($(i_venv)/bin/python -c 'import importlib.metadata as m, tomllib; \
	  name = tomllib.load(open("python/pyproject.toml", "rb"))["project"]["name"]; \
	  print(" ".join(e.name for e in m.distribution(name).entry_points if e.group == "console_scripts"))'); \
	install -d $(i_bindir); : > $(i_libdir)/scripts; \
	for s in $$scripts; do \
	  case $$s in archy-executor|archyctl) continue;; esac; \
	  ln -sf $(i_venv)/bin/$$s $(i_bindir)/$$s; echo $$s >> $(i_libdir)/scripts; \
	  echo "  $(i_bindir)/$$s"; \
	done

uninstall:
	@if $(i_manager); then \
	  systemctl --user disable --now archy.socket archy.service 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(UNITDIR)/archy.socket $(DESTDIR)$(UNITDIR)/archy.service
	@if [ -f $(i_libdir)/scripts ]; then \
	  for s in $$(cat $(i_libdir)/scripts); do rm -f $(DESTDIR)$(i_bindir)/$$s; done; fi
	rm -f $(DESTDIR)$(i_bindir)/archy-executor $(DESTDIR)$(i_bindir)/archyctl
	rm -rf $(DESTDIR)$(i_libdir) $(DESTDIR)$(i_docdir)
	@if $(i_manager); then systemctl --user daemon-reload; fi
	@echo "uninstalled. Sessions live on in Archy's tmux server; end them with: tmux -L archy kill-server"

# A real command end to end through the daemon. With a systemd user manager: install for this
# user and go through socket activation. Without one (a container, CI, root on a fresh machine):
# run from the build tree, and archyctl's lazy start spawns the daemon itself.
demo: build
	@set -e; \
	if systemctl --user show-environment >/dev/null 2>&1; then \
	  echo "== systemd user manager found: installing under $(PREFIX), enabling archy.socket"; \
	  $(MAKE) --no-print-directory install-files INSTALL_PYTHON=no >/dev/null; \
	  systemctl --user enable --now archy.socket; \
	  ctl=$(i_bindir)/archyctl; \
	else \
	  echo "== no systemd user manager: running from the build tree; archyctl spawns the daemon"; \
	  ctl=$(CURDIR)/$(RELEASE_DIR)/archyctl; \
	  export ARCHY_EXECUTOR=$(CURDIR)/$(RELEASE_DIR)/archy-executor PATH=$(CURDIR)/$(RELEASE_DIR):$$PATH; \
	  if [ -z "$$XDG_RUNTIME_DIR" ] && [ ! -d /run/user/$$(id -u) ]; then \
	    mkdir -p -m 0700 /run/user/$$(id -u) 2>/dev/null || true; fi; \
	fi; \
	echo '$$ archyctl exec -- uname -a'; $$ctl exec -- uname -a; \
	echo '$$ archyctl info'; $$ctl info

# The Arch package, built for real with makepkg (as an unprivileged user when run as root).
package:
	bash packaging/build-arch.sh

package-deps:
	bash .ci/apt.sh makepkg pacman-package-manager libarchive-tools fakeroot git python3 python3-pip

package-test: package

DEPS_TARGETS += package-deps
TEST_TARGETS += package-test
