"""Fixtures: one real world per test session (user, journald, user manager, Archy installed).

Everything user-side runs as the unprivileged test user, as a person would: `systemctl --user`,
`journalctl --user`, `archyctl`, and a stdlib JSON-RPC client (rpc.py); the daemon refuses any
other uid anyway.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import World, log, retry_until, stage_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "e2e"
PIP_CACHE = Path("/var/cache/archy-e2e/pip")
SERVICE = "archy.service"
SOCKET = "archy.socket"
SERVICE_PROPS = (
    "ActiveState", "SubState", "Result", "MainPID", "TriggeredBy", "Type", "StatusText",
    "NRestarts", "ExecMainStatus", "ExecMainStartTimestampMonotonic",
    "ActiveEnterTimestampMonotonic", "InactiveEnterTimestampMonotonic", "ControlGroup",
)


class RpcError(AssertionError):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error


class Archy:
    """Archy as the test user sees it."""

    def __init__(self, world: World, stage: Path) -> None:
        self.w = world
        self.stage = stage
        self.bindir = world.home / ".local" / "bin"
        self.unitdir = world.home / ".config" / "systemd" / "user"
        self.python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
        self.last_call: dict[str, Any] = {}

    # ------------------------------------------------------------ clients
    def rpc(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """One JSON-RPC call through the stdlib client, as the user; returns the result."""
        proc = self.w.run(
            [self.python, str(self.stage / "rpc.py"), method, json.dumps(params or {})],
            check=False, timeout=timeout,
        )
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            raise AssertionError(f"rpc {method} failed ({proc.returncode}): {proc.stderr}")
        self.last_call = json.loads(proc.stdout)
        if self.last_call["error"] is not None:
            raise RpcError(method, self.last_call["error"])
        return self.last_call["result"]

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> Any:
        return self.w.run([str(self.bindir / "archyctl"), *args], check=check, timeout=timeout)

    def tmux(self, *args: str, check: bool = True) -> str:
        return self.w.run(["tmux", "-L", "archy", *args], check=check).stdout

    # ------------------------------------------------------------ units
    def service(self) -> dict[str, str]:
        return self.w.show(SERVICE, *SERVICE_PROPS)

    def wait_service(self, state: str, timeout: float = 15) -> dict[str, str]:
        return retry_until(
            f"{SERVICE} {state}",
            lambda: (s := self.service())["ActiveState"] == state and s,
            timeout=timeout, interval=0.02,
        )

    def stop_service(self) -> None:
        """Back to the resting state: socket listening, service inactive."""
        self.w.systemctl("start", SOCKET)
        self.w.systemctl("stop", SERVICE)
        self.w.systemctl("reset-failed", SERVICE, check=False)
        self.wait_service("inactive")

    def daemon_reload(self) -> None:
        self.w.systemctl("daemon-reload")

    def write_user_file(self, path: Path, text: str) -> None:
        """Write a file owned by the test user (creating its directories the same way)."""
        self.w.run(["mkdir", "-p", str(path.parent)])
        self.w.run(["tee", str(path)], input=text)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        return self.w.journal("-u", SERVICE, *args)


def nonce() -> str:
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    t0 = time.monotonic()
    w = World(artifacts=ARTIFACTS).up()
    log(f"world up in {time.monotonic() - t0:.1f}s ({w.mode} mode, user {w.user} uid {w.uid})")
    try:
        yield w
    finally:
        try:
            out = w.run(["journalctl", "--user", "--no-pager", "-o", "json"], check=False).stdout
            (ARTIFACTS / "user-journal.json").write_text(out)
        except Exception as exc:  # noqa: BLE001 - keep tearing down
            log(f"could not save the user journal: {exc}")
        w.down()


@pytest.fixture(scope="session")
def archy(world: World) -> Iterator[Archy]:
    """Archy installed for the test user with `make install-files`, as a user would."""
    release = Path(os.environ.get("E2E_RELEASE_DIR", REPO / "target" / "release"))
    for b in ("archy-executor", "archyctl"):
        if not (release / b).exists():
            pytest.fail(f"{release}/{b} missing: run `make build` first")
    stage = Path(tempfile.mkdtemp(prefix="archy-e2e-stage."))
    try:
        stage_tree(REPO, stage, release)
        shutil.copy2(Path(__file__).parent / "rpc.py", stage / "rpc.py")
        os.chmod(stage / "rpc.py", 0o644)
        install_python = os.environ.get("E2E_INSTALL_PYTHON", "auto")
        # pip's downloads outlive the throwaway user, so a second run installs from cache.
        PIP_CACHE.mkdir(parents=True, exist_ok=True)
        for dirpath, _dirs, files in os.walk(PIP_CACHE):
            for name in [".", *files]:
                os.chown(os.path.join(dirpath, name), world.uid, world.gid)
        t0 = time.monotonic()
        proc = world.run(
            ["make", "-C", str(stage), "--no-print-directory", "install-files",
             f"INSTALL_PYTHON={install_python}", "PYTHON=/usr/bin/python3"],
            env={"PIP_CACHE_DIR": str(PIP_CACHE)}, timeout=600, check=False,
        )
        (ARTIFACTS / "install.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, f"make install-files failed:\n{proc.stdout}\n{proc.stderr}"
        log(f"installed for {world.user} in {time.monotonic() - t0:.1f}s")
        yield Archy(world, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@pytest.fixture
def idle_timeout(archy: Archy) -> Iterator[int]:
    """A drop-in giving the service a 3 s idle timeout for one test."""
    secs = 3
    dropin = archy.unitdir / "archy.service.d" / "90-e2e-idle.conf"
    archy.write_user_file(
        dropin,
        "[Service]\nExecStart=\n"
        f"ExecStart={archy.bindir}/archy-executor --idle-timeout {secs}\n",
    )
    archy.daemon_reload()
    archy.stop_service()
    try:
        yield secs
    finally:
        archy.w.run(["rm", "-f", str(dropin)])
        archy.daemon_reload()
        archy.stop_service()
