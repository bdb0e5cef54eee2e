"""Finding the executor's socket and starting the daemon lazily, as ``archyctl`` does.

Connect; if nothing listens, start ``archy.socket`` when the systemd user manager has that unit
(and the socket is the default one it listens on), else spawn ``archy-executor`` detached with
``NOTIFY_SOCKET`` pointing at a datagram socket bound here, and wait for its ``READY=1``:
``poll`` on that socket and on a pidfd of the child, so an early exit is seen at once. No sleeps.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ExecutorUnavailable

__all__ = [
    "EXECUTOR_ENV",
    "SpawnedDaemon",
    "connect",
    "default_socket_path",
    "find_executor",
    "socket_path",
    "spawn_executor",
    "spawned",
]

EXECUTOR_ENV = "ARCHY_EXECUTOR"
SOCKET_UNIT = "archy.socket"
#: Variables a child must not inherit (they describe *our* service manager context).
_SCRUB = (
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "JOURNAL_STREAM",
)


@dataclass
class SpawnedDaemon:
    """A daemon this process started (kept so tests and callers can stop it)."""

    pid: int
    socket: str
    log: str
    process: subprocess.Popen[bytes]


#: Daemons spawned by this process, by socket path.
spawned: dict[str, SpawnedDaemon] = {}


def runtime_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg)
    fallback = Path(f"/run/user/{os.getuid()}")
    if fallback.is_dir():
        return fallback
    raise ExecutorUnavailable(
        "neither ARCHY_SOCKET nor XDG_RUNTIME_DIR is set, so the executor's socket has no home",
        fix="export XDG_RUNTIME_DIR=/run/user/$(id -u) (normally set by your login session)",
    )


def default_socket_path() -> str:
    return str(runtime_dir() / "archy.sock")


def socket_path(explicit: str | None = None) -> str:
    """``explicit``, else ``$ARCHY_SOCKET``, else ``$XDG_RUNTIME_DIR/archy.sock``."""
    return explicit or os.environ.get("ARCHY_SOCKET") or default_socket_path()


def find_executor() -> str:
    """``$ARCHY_EXECUTOR``, else ``archy-executor`` on ``PATH``."""
    env = os.environ.get(EXECUTOR_ENV)
    if env:
        if os.access(env, os.X_OK) and Path(env).is_file():
            return env
        raise ExecutorUnavailable(
            f"{EXECUTOR_ENV}={env} is not an executable file",
            fix=f"point {EXECUTOR_ENV} at the archy-executor binary, or unset it",
        )
    found = shutil.which("archy-executor")
    if found:
        return found
    raise ExecutorUnavailable(
        "archy-executor is not on PATH",
        fix="install it (`make install` in the archy repository puts it in ~/.local/bin; make "
        f"sure that is on PATH), or set {EXECUTOR_ENV}=/path/to/archy-executor",
    )


def _raw_connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _owner_problem(path: str) -> ExecutorUnavailable | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    if st.st_uid != os.getuid():
        return ExecutorUnavailable(
            f"the socket {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
            "the executor only serves its own user",
            fix="point ARCHY_SOCKET at a path of your own, or remove that socket",
        )
    return None


def connect(
    path: str | None = None, *, autostart: bool = True, start_timeout: float = 10.0
) -> socket.socket:
    """A connected stream socket to the executor, starting it first when nothing listens."""
    path = socket_path(path)
    try:
        return _raw_connect(path)
    except PermissionError as exc:
        raise _owner_problem(path) or ExecutorUnavailable(
            f"cannot connect to {path}: {exc.strerror}",
            fix="check the permissions of the socket and its directory",
        ) from exc
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        owner = _owner_problem(path)
        if owner:
            raise owner from exc
        if not autostart:
            raise ExecutorUnavailable(
                f"no executor listens on {path}",
                fix="run `archy doctor`, or start it: systemctl --user start archy.socket",
            ) from exc
    start(path, timeout=start_timeout)
    try:
        return _raw_connect(path)
    except OSError as exc:
        raise ExecutorUnavailable(
            f"the executor was started but {path} does not accept connections: {exc}",
            fix="see `journalctl --user -u archy` or the executor log",
        ) from exc


def start(path: str, *, timeout: float = 10.0) -> None:
    """Start a daemon serving ``path``: through systemd when possible, else by spawning it."""
    if _systemd_socket_available(path) and _systemd_start():
        return
    spawn_executor(path, timeout=timeout)


def _systemd_socket_available(path: str) -> bool:
    # archy.socket listens on %t/archy.sock: starting it helps only for that path.
    try:
        if path != default_socket_path():
            return False
    except ExecutorUnavailable:
        return False
    if not shutil.which("systemctl"):
        return False
    try:
        out = subprocess.run(
            ["systemctl", "--user", "show", SOCKET_UNIT, "--property=LoadState", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "loaded"


def _systemd_start() -> bool:
    try:
        out = subprocess.run(
            ["systemctl", "--user", "start", SOCKET_UNIT],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def _log_tail(path: str, limit: int = 2000) -> str:
    try:
        with Path(path).open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def spawn_executor(
    path: str, *, timeout: float = 10.0, extra_args: list[str] | None = None
) -> SpawnedDaemon:
    """Spawn ``archy-executor --socket PATH`` detached and wait for its ``READY=1``."""
    exe = find_executor()
    if not shutil.which("tmux"):
        raise ExecutorUnavailable(
            "tmux is not installed; the executor runs every command in tmux",
            fix="install it: sudo pacman -S tmux, sudo apt install tmux or sudo dnf install tmux",
        )
    sock_dir = Path(path).parent
    try:
        sock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ExecutorUnavailable(f"cannot create {sock_dir}: {exc.strerror}") from exc
    log_path = str(sock_dir / "archy-executor.log")
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    with tempfile.TemporaryDirectory(prefix="archy-notify-") as tmp:
        notify_path = str(Path(tmp) / "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            notify.bind(notify_path)
            env["NOTIFY_SOCKET"] = notify_path
            with Path(log_path).open("ab") as log:
                try:
                    proc = subprocess.Popen(
                        [exe, "--socket", path, *(extra_args or [])],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        env=env,
                        start_new_session=True,
                        close_fds=True,
                    )
                except OSError as exc:
                    raise ExecutorUnavailable(f"cannot run {exe}: {exc.strerror}") from exc
            daemon = SpawnedDaemon(proc.pid, path, log_path, proc)
            ours = _wait_ready(notify, daemon, timeout)
        finally:
            notify.close()
    if ours:
        spawned[path] = daemon
    return daemon


def _wait_ready(notify: socket.socket, daemon: SpawnedDaemon, timeout: float) -> bool:
    """True once ours is ready; False when it exited because another daemon serves the path."""
    pidfd = os.pidfd_open(daemon.pid)
    status = ""
    try:
        poller = select.poll()
        poller.register(notify.fileno(), select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                daemon.process.kill()
                daemon.process.wait()
                raise ExecutorUnavailable(
                    f"archy-executor did not report READY=1 within {timeout:g} s"
                    + (f" (last status: {status})" if status else ""),
                    fix=f"see its log, {daemon.log}:\n{_log_tail(daemon.log)}",
                )
            for fd, _ in poller.poll(left * 1000):
                if fd == notify.fileno():
                    msg = notify.recv(4096).decode("utf-8", "replace")
                    for line in msg.splitlines():
                        if line == "READY=1":
                            return True
                        if line.startswith("STATUS="):
                            status = line[len("STATUS=") :]
                elif fd == pidfd:
                    _exited_early(daemon)
                    return False
    finally:
        os.close(pidfd)


def _exited_early(daemon: SpawnedDaemon) -> None:
    """Return if another daemon answers on the path (it won a start race), else raise."""
    code = daemon.process.wait()
    # Another client may have started a daemon on the same path first: that one serves us.
    with contextlib.suppress(OSError):
        _raw_connect(daemon.socket).close()
        return
    tail = _log_tail(daemon.log)
    raise ExecutorUnavailable(
        f"archy-executor exited with status {code} before it was ready"
        + (f":\n{tail}" if tail else ""),
        fix=f"read {daemon.log}; `archy doctor` checks the whole setup",
    )
