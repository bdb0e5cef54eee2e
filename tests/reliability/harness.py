"""Shared by tests/reliability and benches/: start a private archy-executor, talk to it.

Only the standard library: a JSON-RPC 2.0 client over the daemon's newline-delimited Unix
socket, and a launcher that gives each daemon its own runtime dir, config dir and tmux server
and waits for its READY=1 on a notify socket bound here.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("ARCHY_EXECUTOR", ROOT / "target/release/archy-executor"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
_serial = itertools.count()


class RpcError(Exception):
    def __init__(self, error: dict):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class Client:
    """A blocking JSON-RPC client: one request at a time, notifications kept aside."""

    def __init__(self, path, timeout: float = 60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")
        self.ids = itertools.count(1)
        self.notifications: list[dict] = []

    def send(self, obj) -> None:
        self.file.write(json.dumps(obj).encode() + b"\n")
        self.file.flush()

    def read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("daemon closed the connection")
        return json.loads(line)

    def raw(self, method: str, params: dict | None = None) -> dict:
        """The whole response object of one call."""
        rid = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        while True:
            msg = self.read()
            if "id" not in msg:
                self.notifications.append(msg)
                continue
            if msg["id"] != rid:
                raise AssertionError(f"wrong reply: sent id {rid}, got {msg!r}")
            return msg

    def call(self, method: str, **params):
        msg = self.raw(method, params)
        if "error" in msg:
            raise RpcError(msg["error"])
        return msg["result"]

    def read_output(self, cmd_id: str) -> str:
        """A command's whole output, paged through `output`."""
        got, offset = [], 0
        while True:
            page = self.call("output", id=cmd_id, offset=offset, limit=1 << 20)
            got.append(page["data"])
            offset += len(page["data"].encode())
            if page["complete"] or not page["data"]:
                return "".join(got)

    def next_notification(self) -> dict:
        if self.notifications:
            return self.notifications.pop(0)
        msg = self.read()
        assert "id" not in msg, msg
        return msg

    def close(self) -> None:
        for f in (self.file, self.sock):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def ctx_switches(pid: int) -> int:
    """Voluntary context switches of all the daemon's threads (each one is a wake-up)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += _task_vcs(task)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def _task_vcs(task: Path) -> int:
    for line in (task / "status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


class Daemon:
    """A private archy-executor: own XDG_RUNTIME_DIR, XDG_CONFIG_HOME and tmux server.

    `config` is the `[executor]` table written to $XDG_CONFIG_HOME/archy/config.toml.
    `runtime_dir` may point at a prepared directory (e.g. a small tmpfs). `tmpfs_runtime`
    puts it on /dev/shm, as /run/user/UID is a tmpfs where users run Archy (benchmarks).
    """

    def __init__(self, config: dict | None = None, runtime_dir: Path | None = None,
                 base: Path | None = None, tmux_socket: str | None = None,
                 tmpfs_runtime: bool = False):
        self.base = Path(base or tempfile.mkdtemp(prefix="archy-rel-"))
        self.own_base = base is None
        self.own_run: Path | None = None
        if runtime_dir is None and tmpfs_runtime and os.access("/dev/shm", os.W_OK):
            runtime_dir = self.own_run = Path(tempfile.mkdtemp(prefix="archy-run-", dir="/dev/shm"))
        self.run_dir = Path(runtime_dir or self.base / "run")
        self.cfg_dir = self.base / "cfg"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        (self.cfg_dir / "archy").mkdir(parents=True, exist_ok=True)
        self.socket = self.base / "archy.sock"
        self.tmux = tmux_socket or f"archy-rel-{os.getpid()}-{next(_serial)}"
        self.log_path = self.base / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.write_config(config or {})

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "archy" / self.tmux

    def write_config(self, config: dict) -> None:
        lines = ["[executor]"]
        for k, v in config.items():
            lines.append(f"{k} = {json.dumps(v)}")
        (self.cfg_dir / "archy" / "config.toml").write_text("\n".join(lines) + "\n")

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ARCHY_", "LISTEN_", "NOTIFY_", "TMUX"))}
        # A HOME of its own, with no ~/.bashrc: the shell is then the same plain bash the
        # benchmark's alternatives run (`bash --norc`), and no prompt hook of the machine's
        # user (pyenv, starship, ...) is timed as Archy's.
        home = self.base / "home"
        home.mkdir(exist_ok=True)
        env.update(XDG_RUNTIME_DIR=str(self.run_dir), XDG_CONFIG_HOME=str(self.cfg_dir),
                   HOME=str(home), SHELL="/bin/bash", NO_COLOR="1",
                   ARCHY_LOG=env.get("ARCHY_LOG_TEST", "info"))
        return env

    def start(self, timeout: float = 15.0) -> "Daemon":
        notify_path = self.base / f"notify-{next(_serial)}.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(timeout)
        env = self.env()
        env["NOTIFY_SOCKET"] = str(notify_path)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BINARY), "--socket", str(self.socket), "--tmux-socket", self.tmux],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        try:
            while True:
                notify.settimeout(max(0.01, deadline - time.monotonic()))
                msg = notify.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    break
        except socket.timeout:
            raise RuntimeError(f"daemon not ready in {timeout}s; log:\n{self.log()}") from None
        finally:
            notify.close()
            notify_path.unlink(missing_ok=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.socket, timeout)

    def log(self) -> str:
        try:
            return ANSI.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.alive():
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> int | None:
        rc = None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif self.proc is not None:
            rc = self.proc.returncode
        return rc

    def kill_tmux(self) -> None:
        subprocess.run(["tmux", "-L", self.tmux, "kill-server"], capture_output=True)

    def cleanup(self) -> None:
        self.stop()
        self.kill_tmux()
        if self.own_base:
            shutil.rmtree(self.base, ignore_errors=True)
        if self.own_run:
            shutil.rmtree(self.own_run, ignore_errors=True)
