"""Socket activation: the first call from Python and the first from archyctl each start the
service through archy.socket, and the unit is active only once the daemon said READY=1."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import SERVICE, SOCKET, Archy
from harness import log, retry_until


@pytest.fixture(autouse=True)
def resting(archy: Archy) -> None:
    archy.w.systemctl("enable", "--now", SOCKET)
    archy.stop_service()


def assert_socket_started(archy: Archy, svc: dict[str, str]) -> None:
    assert (svc["ActiveState"], svc["SubState"]) == ("active", "running"), svc
    assert svc["TriggeredBy"] == SOCKET
    assert svc["Type"] == "notify"
    # The daemon talks to the notify socket: its STATUS= line is the unit's status text.
    assert svc["StatusText"].startswith(("serving ", "running ")), svc["StatusText"]
    status = archy.w.systemctl("status", "--no-pager", SERVICE, check=False).stdout
    assert f"TriggeredBy: ● {SOCKET}" in status or f"TriggeredBy: {SOCKET}" in status, status


def test_first_call_from_python_starts_the_service(archy: Archy) -> None:
    info = archy.rpc("daemon_info")
    activation_ms = archy.last_call["total_ms"]
    svc = archy.service()
    assert_socket_started(archy, svc)
    assert info["socket_activated"] is True
    assert info["pid"] == int(svc["MainPID"])
    assert info["socket"] == str(archy.w.runtime_dir / "archy.sock")
    # A second call is served by the same process, without activation.
    archy.rpc("daemon_info")
    warm_ms = archy.last_call["total_ms"]
    assert archy.service()["MainPID"] == svc["MainPID"]
    log(f"python: first call (activation) {activation_ms:.1f} ms, next call {warm_ms:.2f} ms")


def test_first_call_from_archyctl_starts_the_service(archy: Archy) -> None:
    before = archy.service()
    t0 = time.perf_counter()
    out = archy.ctl("exec", "--", "echo", "hello-from-archyctl").stdout
    elapsed = (time.perf_counter() - t0) * 1000
    assert out.strip() == "hello-from-archyctl"
    svc = archy.service()
    assert_socket_started(archy, svc)
    assert svc["MainPID"] != before["MainPID"]
    log(f"archyctl: first exec (activation included) {elapsed:.1f} ms")


def test_archyctl_starts_the_socket_unit_when_it_is_stopped(archy: Archy) -> None:
    """archyctl's lazy start: nothing listens, the manager has archy.socket, so start it."""
    archy.w.systemctl("stop", SOCKET, SERVICE)
    assert not (archy.w.runtime_dir / "archy.sock").exists()  # RemoveOnStop=yes
    out = archy.ctl("exec", "--", "echo", "lazy").stdout
    assert out.strip() == "lazy"
    assert archy.w.show(SOCKET, "ActiveState")["ActiveState"] == "active"
    assert_socket_started(archy, archy.service())


def test_active_only_after_ready(archy: Archy) -> None:
    """Hold the daemon back for a second before it even starts (same pid: `exec`): the unit
    stays `activating` the whole time, the client gets no answer, and the unit becomes `active`
    with the daemon's READY=1, which it sends right after logging "archy-executor serving"."""
    dropin = archy.unitdir / "archy.service.d" / "90-e2e-slow-start.conf"
    archy.write_user_file(
        dropin,
        "[Service]\nExecStart=\n"
        f"ExecStart=/bin/sh -c 'sleep 1; exec {archy.bindir}/archy-executor'\n",
    )
    archy.daemon_reload()
    try:
        client = archy.w.popen(
            [archy.python, str(archy.stage / "rpc.py"), "daemon_info"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        seen = retry_until("the unit to be activating", lambda: archy.service()["ActiveState"] == "activating"
                           and archy.service(), timeout=5, interval=0.02)
        assert seen["SubState"] == "start"
        assert client.poll() is None, "the client got an answer before the daemon was ready"
        svc = archy.wait_service("active", timeout=10)
        out, err = client.communicate(timeout=30)
        assert client.returncode == 0, err
        assert json.loads(out)["result"]["pid"] == int(svc["MainPID"])
        started = int(svc["ExecMainStartTimestampMonotonic"])
        active = int(svc["ActiveEnterTimestampMonotonic"])
        assert active - started >= 900_000, (started, active)
        serving = [e for e in archy.journal("--since", "-1min")
                   if e.get("MESSAGE") == "archy-executor serving" and e.get("_PID") == svc["MainPID"]]
        assert serving, "the daemon's 'serving' line is missing from the journal"
        # journald stamps a line when it receives it, not when it was written, so the daemon's
        # "serving" line (written just before READY=1) can be stamped a little after the manager
        # turned the unit active: the order is not observable, the timing is.
        logged = int(serving[-1]["__MONOTONIC_TIMESTAMP"])
        assert logged - started >= 900_000, "the daemon logged 'serving' before its held-back start"
        assert abs(logged - active) < 2_000_000, (logged, active)
        log(f"activating for {(active - started) / 1000:.0f} ms; active after READY=1")
    finally:
        archy.w.run(["rm", "-f", str(dropin)])
        archy.daemon_reload()
        archy.stop_service()


def test_first_call_from_the_installed_archy_package_starts_the_service(archy: Archy) -> None:
    """The same through the `archy` package's own client, from the venv `make install` made."""
    py = archy.w.home / ".local" / "lib" / "archy" / "venv" / "bin" / "python"
    if not py.exists():
        pytest.skip("the Python package was not installed (INSTALL_PYTHON=no)")
    code = ("import json\nfrom archy.client import Client\n"
            "with Client() as c:\n    print(json.dumps(c.call('daemon_info')))\n")
    info = json.loads(archy.w.run([str(py), "-c", code]).stdout)
    svc = archy.service()
    assert_socket_started(archy, svc)
    assert info["pid"] == int(svc["MainPID"])
    assert (archy.bindir / "archy").is_symlink()
