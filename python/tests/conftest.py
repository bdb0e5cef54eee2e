"""Fixtures: an isolated user world per test, and the real daemon on a private socket.

Every test gets its own XDG directories (config, state, runtime) and no model keys. The
``daemon`` fixture gives a private socket path (``ARCHY_SOCKET``) and a private tmux server
(``ARCHY_TMUX_SOCKET=archy-test-…``); the daemon itself is started by the client's own lazy
start the first time something connects. Teardown stops whatever daemon serves that socket
and kills the private tmux server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archy import spawn
from archy.client import Client
from archy.errors import ArchyError

REPO = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux") or "tmux"  # resolved now: tests may empty PATH
EXECUTOR = Path(
    os.environ.get("ARCHY_TEST_EXECUTOR") or REPO / "target" / "release" / "archy-executor"
)

_SCRUB = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_API_VERSION",
    "ARCHY_PROVIDER",
    "ARCHY_MODEL",
    "ARCHY_API_KEY",
    "ARCHY_BASE_URL",
    "ARCHY_CONFIRM",
    "ARCHY_MAX_STEPS",
    "ARCHY_SESSION",
    "ARCHY_CONFIG",
    "ARCHY_SOCKET",
    "ARCHY_TMUX_SOCKET",
    "ARCHY_EXECUTOR",
    "ARCHY_LOG",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
)


@pytest.fixture(autouse=True)
def user_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every per-user directory at a temp dir and drop model credentials."""
    for var in _SCRUB:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    for sub in ("config", "state", "cache"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    yield home


@dataclass
class Daemon:
    """Where a test's daemon listens; ``env`` is what a child process needs to reach it."""

    dir: Path
    socket: str
    tmux: str
    env: dict[str, str]

    def client(self, **kwargs: object) -> Client:
        return Client(self.socket, **kwargs)  # type: ignore[arg-type]

    def pid(self) -> int | None:
        try:
            with Client(self.socket, autostart=False, timeout=5) as c:
                return c.daemon_info().pid
        except (ArchyError, OSError):
            return None

    def tmux_cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TMUX, "-L", self.tmux, *args], capture_output=True, text=True, check=False
        )


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, wait on a pidfd for the exit, then SIGKILL."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not select.select([fd], [], [], timeout)[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def require_executor() -> str:
    if not (EXECUTOR.is_file() and os.access(EXECUTOR, os.X_OK)):
        pytest.fail(
            f"the daemon binary {EXECUTOR} is missing: run `make build` first "
            "(or set ARCHY_TEST_EXECUTOR)",
            pytrace=False,
        )
    return str(EXECUTOR)


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    exe = require_executor()
    # A short directory: Unix socket paths are limited to 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="archy-t-", dir="/tmp"))
    directory.chmod(0o700)
    runtime = directory / "run"
    runtime.mkdir(mode=0o700)
    sock = str(directory / "archy.sock")
    tmux = f"archy-test-{secrets.token_hex(4)}"
    env = {
        "ARCHY_SOCKET": sock,
        "ARCHY_TMUX_SOCKET": tmux,
        "ARCHY_EXECUTOR": exe,
        "XDG_RUNTIME_DIR": str(runtime),
        "SHELL": "/bin/bash",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    d = Daemon(directory, sock, tmux, env)
    try:
        yield d
    finally:
        pid = d.pid()
        if pid is not None:
            stop_pid(pid)
        mine = spawn.spawned.pop(sock, None)
        if mine is not None:
            if mine.process.poll() is None:
                stop_pid(mine.pid)
            mine.process.wait(timeout=5)
        d.tmux_cmd("kill-server")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with daemon.client(timeout=60) as c:
        yield c


def retry_until(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes (for state outside our control)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
