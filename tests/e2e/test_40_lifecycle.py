"""The daemon comes and goes; the tmux server, its sessions and the commands' results stay:
idle exit, `systemctl --user restart`, and SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import SOCKET, Archy, nonce
from harness import log, pid_alive, retry_until


@pytest.fixture(autouse=True)
def socket_on(archy: Archy) -> None:
    archy.w.systemctl("enable", "--now", SOCKET)


def tmux_server_pid(archy: Archy) -> int:
    return int(archy.tmux("list-sessions", "-F", "#{pid}").split()[0])


def pane_command(archy: Archy, session: str) -> str:
    return archy.tmux("list-panes", "-t", session, "-F", "#{pane_current_command}").strip()


def cgroup_of(pid: int) -> str:
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    # The systemd-managed hierarchy: cgroup v2 ("0::") or the v1 name=systemd one.
    named = [line for line in lines if ":name=systemd:" in line] or [line for line in lines if line.startswith("0::")]
    return named[0].split(":", 2)[2]


def assert_tmux_outside_service(archy: Archy) -> int:
    pid = tmux_server_pid(archy)
    cg = cgroup_of(pid)
    assert "archy.service" not in cg, f"tmux server {pid} is in the service's cgroup: {cg}"
    assert cg.endswith(".scope"), cg
    return pid


def test_idle_exit_then_reactivation_reads_a_result_made_while_away(archy: Archy, idle_timeout: int) -> None:
    tag = nonce()
    session = f"e2e-idle-{tag}"
    started = archy.rpc("execute", {"command": f"sleep 6; echo done-{tag}", "session": session, "wait": False})
    t_disconnect = time.monotonic()
    assert started["state"] == "running"
    first = archy.service()
    assert first["ActiveState"] == "active"
    tmux_pid = assert_tmux_outside_service(archy)

    # No client for `idle_timeout` seconds: the daemon exits cleanly, the socket listens on.
    gone = archy.wait_service("inactive", timeout=idle_timeout + 10)
    idle_exit_s = time.monotonic() - t_disconnect
    assert gone["Result"] == "success" and gone["ExecMainStatus"] == "0", gone
    assert not pid_alive(int(first["MainPID"]))
    assert archy.w.show(SOCKET, "SubState")["SubState"] == "listening"
    assert idle_timeout - 0.5 <= idle_exit_s <= idle_timeout + 5, idle_exit_s

    # The command is still running in tmux, in the same server, while no daemon exists.
    assert tmux_server_pid(archy) == tmux_pid
    assert pane_command(archy, session) == "sleep"
    retry_until("the command to end with no daemon around", lambda: pane_command(archy, session) != "sleep",
                timeout=15, interval=0.1)
    assert archy.service()["ActiveState"] == "inactive"

    # The next call activates a new daemon, which knows the command and its result.
    result = archy.rpc("wait", {"id": started["id"], "timeout_ms": 10000})
    again = archy.service()
    assert again["ActiveState"] == "active" and again["MainPID"] != first["MainPID"]
    assert result["state"] == "exited" and result["exit_code"] == 0, result
    assert result["output"].strip() == f"done-{tag}"
    assert session in [s["name"] for s in archy.rpc("list_sessions")["sessions"]]
    log(f"idle exit {idle_exit_s:.2f} s after the last client (timeout {idle_timeout} s); "
        f"reactivated as pid {again['MainPID']} and read {started['id']}")


def run_two(archy: Archy, session: str, tag: str) -> tuple[dict, dict]:
    done = archy.rpc("execute", {"command": f"echo before-{tag}", "session": session})
    assert done["exit_code"] == 0
    running = archy.rpc("execute", {"command": f"sleep 3; echo after-{tag}", "session": session, "wait": False})
    assert running["state"] == "running"
    return done, running


def assert_nothing_lost(archy: Archy, session: str, tag: str, done: dict, running: dict, tmux_pid: int) -> None:
    assert tmux_server_pid(archy) == tmux_pid
    assert session in [s["name"] for s in archy.rpc("list_sessions")["sessions"]]
    assert archy.rpc("check_session", {"session": session})["exists"] is True
    finished = archy.rpc("wait", {"id": running["id"], "timeout_ms": 15000})
    assert finished["state"] == "exited" and finished["exit_code"] == 0, finished
    assert finished["output"].strip() == f"after-{tag}"
    earlier = archy.rpc("wait", {"id": done["id"], "timeout_ms": 1000})
    assert earlier["output"].strip() == f"before-{tag}"
    ids = [c["id"] for c in archy.rpc("history", {"session": session})["commands"]]
    assert done["id"] in ids and running["id"] in ids
    # And the session still works.
    assert archy.rpc("execute", {"command": "echo still-here", "session": session})["output"].strip() == "still-here"


def test_restart_loses_no_session_and_no_result(archy: Archy) -> None:
    tag = nonce()
    session = f"e2e-restart-{tag}"
    done, running = run_two(archy, session, tag)
    tmux_pid = assert_tmux_outside_service(archy)
    before = archy.service()
    t0 = time.monotonic()
    archy.w.systemctl("restart", "archy.service")
    after = archy.service()
    assert after["ActiveState"] == "active" and after["MainPID"] != before["MainPID"]
    assert pane_command(archy, session) == "sleep"
    log(f"restart took {(time.monotonic() - t0) * 1000:.0f} ms; tmux server {tmux_pid} kept")
    assert_nothing_lost(archy, session, tag, done, running, tmux_pid)


def test_sigkill_loses_no_session_and_no_result(archy: Archy) -> None:
    tag = nonce()
    session = f"e2e-kill-{tag}"
    done, running = run_two(archy, session, tag)
    tmux_pid = assert_tmux_outside_service(archy)
    before = archy.service()
    os.kill(int(before["MainPID"]), signal.SIGKILL)
    # Restart=on-failure brings it back by itself (RestartSec=1s), counted in NRestarts.
    back = retry_until(
        "the service to be restarted",
        lambda: (s := archy.service())["ActiveState"] == "active" and s["MainPID"] != before["MainPID"] and s,
        timeout=15, interval=0.05,
    )
    assert int(back["NRestarts"]) == int(before["NRestarts"]) + 1, (before, back)
    assert pane_command(archy, session) == "sleep"
    log(f"SIGKILL: restarted as pid {back['MainPID']} (NRestarts={back['NRestarts']})")
    assert_nothing_lost(archy, session, tag, done, running, tmux_pid)
