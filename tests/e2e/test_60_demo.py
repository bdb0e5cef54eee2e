"""`make demo`, both ways: through socket activation where a user manager runs, and from the
build tree with archyctl spawning the daemon where none does."""

from __future__ import annotations

import json
import os
import signal

from conftest import SERVICE, SOCKET, Archy
from harness import log, wait_pid_gone


def demo(archy: Archy, env: dict[str, str | None] | None = None) -> str:
    # CARGO=true: the staged tree is already built, and the test user has no Rust toolchain.
    proc = archy.w.run(["make", "-C", str(archy.stage), "--no-print-directory", "demo", "CARGO=true"],
                       env=env, check=False, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def test_make_demo_with_a_user_manager(archy: Archy) -> None:
    archy.w.systemctl("disable", "--now", SOCKET)
    archy.w.systemctl("stop", SERVICE)
    out = demo(archy)
    assert "systemd user manager found" in out
    uname = archy.w.run(["uname", "-a"]).stdout.strip()
    assert uname in out
    svc = archy.service()
    assert svc["ActiveState"] == "active" and svc["TriggeredBy"] == SOCKET
    assert svc["MainPID"] in out  # `archyctl info` printed the daemon's pid
    assert archy.w.show(SOCKET, "UnitFileState")["UnitFileState"] == "enabled"


def test_make_demo_without_a_user_manager(archy: Archy) -> None:
    """No XDG_RUNTIME_DIR or D-Bus address: `systemctl --user` cannot reach a manager, so the
    demo runs archyctl from the build tree and archyctl spawns archy-executor itself."""
    sock = archy.w.home / "demo" / "archy.sock"
    archy.w.run(["mkdir", "-p", "-m", "0700", str(sock.parent)])
    env: dict[str, str | None] = {"XDG_RUNTIME_DIR": None, "DBUS_SESSION_BUS_ADDRESS": None, "ARCHY_SOCKET": str(sock),
           "ARCHY_TMUX_SOCKET": "archy-demo"}
    pid = 0
    try:
        out = demo(archy, env)
        assert "no systemd user manager" in out
        assert archy.w.run(["uname", "-a"]).stdout.strip() in out
        info = json.loads(archy.w.run([str(archy.stage / "target/release/archyctl"), "--json", "info"],
                                      env=env).stdout)
        pid = info["pid"]
        assert info["socket_activated"] is False and info["socket"] == str(sock)
        assert os.readlink(f"/proc/{pid}/exe").endswith("/archy-executor")
        log(f"demo without a manager: archyctl spawned archy-executor pid {pid}")
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            assert wait_pid_gone(pid, 10)
        archy.w.run(["tmux", "-L", "archy-demo", "kill-server"], check=False)
