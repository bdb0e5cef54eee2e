"""Faults injected into a running daemon: each must give a clear answer (a result with the
right state, or an error with an application code and a message naming the cause), no data
lost, and the daemon keeps serving afterwards."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import RpcError

APP_CODES = range(-32099, -31999)


def still_serving(d):
    with d.client() as c:
        assert c.call("daemon_info")["pid"] == d.pid
        r = c.call("execute", command="echo still-serving", session="after_fault")
        assert (r["state"], r["exit_code"], r["output"]) == ("exited", 0, "still-serving\n")


def count(figures, name):
    faults = figures.setdefault("faults", {})
    faults[name] = faults.get(name, 0) + 1


def test_tmux_server_killed_mid_command(daemons, figures):
    d = daemons()
    with d.client() as c:
        r = c.call("execute", command="sleep 30", wait=False)
        time.sleep(0.3)
        d.kill_tmux()
        done = c.call("wait", id=r["id"], timeout_ms=10000)
        assert done["state"] == "interrupted" and done["exit_code"] is None
        # The next call starts a fresh tmux server.
        again = c.call("execute", command="echo back")
        assert again["output"] == "back\n"
    still_serving(d)
    count(figures, "tmux_server_killed")


def test_command_directory_removed(daemons, figures):
    d = daemons()
    with d.client() as c:
        c.call("execute", command="true")
        # The daemon may be saving the last record meanwhile: remove until it is gone.
        for _ in range(50):
            shutil.rmtree(d.state_dir / "cmds", ignore_errors=True)
            if not (d.state_dir / "cmds").exists():
                break
        assert not (d.state_dir / "cmds").exists()
        try:
            r = c.call("execute", command="echo recovered")
            assert r["output"] == "recovered\n"
        except RpcError as e:
            assert e.code in APP_CODES and "cmds" in e.message, e
        r = c.call("execute", command="echo recovered")
        assert r["output"] == "recovered\n"
    still_serving(d)
    count(figures, "command_dir_removed")


@pytest.fixture
def small_tmpfs():
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    base = Path(tempfile.mkdtemp(prefix="archy-rel-tmpfs-"))
    mnt = base / "run"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], check=True)
    yield base, mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)
    shutil.rmtree(base, ignore_errors=True)


def test_disk_full_for_output_spill(daemons, small_tmpfs, figures):
    """XDG_RUNTIME_DIR is a 1 MiB tmpfs, the memory cap 64 KiB, the output 2.6 MB: the spill
    fills the disk. The whole output must still be readable, later calls answer (a result or
    a clear -32027 naming ENOSPC), and the daemon keeps serving."""
    base, mnt = small_tmpfs
    d = daemons(config={"output_memory_cap": 65536}, runtime_dir=mnt, base=base)
    n = 400_000
    expected = "".join(f"{i}\n" for i in range(1, n + 1))
    with d.client() as c:
        r = c.call("execute", command=f"seq 1 {n}", max_bytes=100)
        assert r["state"] == "exited" and r["exit_code"] == 0
        assert r["output_bytes"] == len(expected) and r["truncated"]
        assert c.read_output(r["id"]) == expected, "output lost when the spill hit a full disk"
        # The fault really happened (the daemon then took the spill back into memory and
        # deleted the partial file, so the disk is no longer full).
        assert "output spill failed" in d.log() and "No space left" in d.log(), d.log()[-2000:]
        try:
            after = c.call("execute", command="echo after")
            assert after["output"] == "after\n"
            figures["disk_full_recovers_by_itself"] = True
        except RpcError as e:
            assert e.code == -32027 and "No space left" in e.message, e
            figures["disk_full_recovers_by_itself"] = False
        assert c.call("daemon_info")["pid"] == d.pid
    # Once space is freed (the partial spill file removed), commands run again.
    for f in (d.state_dir / "out").glob("*"):
        f.unlink()
    still_serving(d)
    count(figures, "disk_full")


def test_client_vanishes_mid_subscription(daemons, figures):
    d = daemons()
    c = d.client()
    r = c.call("execute", command="for i in $(seq 1 30); do echo line$i; sleep 0.01; done", wait=False)
    c.call("subscribe_output", id=r["id"])
    c.next_notification()
    c.sock.shutdown(2)
    c.close()
    with d.client() as c2:
        done = c2.call("wait", id=r["id"], timeout_ms=10000)
        assert done["state"] == "exited"
        assert done["output"] == "".join(f"line{i}\n" for i in range(1, 31))
    still_serving(d)
    count(figures, "client_vanished_mid_subscription")


def test_daemon_sigkilled_mid_command(daemons, figures):
    d = daemons()
    with d.client() as c:
        c.call("execute", command="true")
        r = c.call("execute", command="sleep 1; echo survived", wait=False)
        time.sleep(0.2)
    d.kill()
    d.start()
    with d.client() as c:
        done = c.call("wait", id=r["id"], timeout_ms=10000)
        assert (done["state"], done["exit_code"], done["output"]) == ("exited", 0, "survived\n")
        assert any(h["id"] == r["id"] for h in c.call("history", limit=100)["commands"])
    still_serving(d)
    count(figures, "daemon_sigkilled")


def test_terminal_binary_missing(daemons, figures):
    d = daemons()
    with d.client() as c:
        with pytest.raises(RpcError) as e:
            c.call("open_terminal", terminal="nope")
        assert e.value.code == -32025 and "nope" in e.value.message
    still_serving(d)
    count(figures, "terminal_missing")


def test_garbage_and_half_lines(daemons, figures):
    """Hostile bytes on the socket: parse errors answered, the connection and daemon live on."""
    d = daemons()
    with d.client() as c:
        c.file.write(b"\x00\xff{not json\n")
        c.file.flush()
        assert c.read()["error"]["code"] == -32700
        assert c.call("daemon_info")["pid"] == d.pid
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(d.socket))
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"execute","params":{"command":"echo ha')
    s.close()
    still_serving(d)
    count(figures, "garbage_and_half_lines")
