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
import sys
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
    #: Size of the (shared, appended) log before this daemon started.
    log_start: int = 0


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


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_executor() -> str:
    """``$ARCHY_EXECUTOR``, else ``archy-executor`` beside the running program, else on ``PATH``
    (the order archyctl uses)."""
    env = os.environ.get(EXECUTOR_ENV)
    if env:
        if _is_executable(Path(env)):
            return env
        raise ExecutorUnavailable(
            f"{EXECUTOR_ENV}={env} is not an executable file",
            fix=f"point {EXECUTOR_ENV} at the archy-executor binary, or unset it",
        )
    looked: list[str] = []
    candidates: list[Path] = []
    if sys.argv and sys.argv[0]:
        program = Path(sys.argv[0])
        if program.is_absolute() or os.sep in sys.argv[0]:
            candidates.append(program.parent / "archy-executor")  # e.g. ~/.local/bin/archy
    candidates += [
        Path(d) / "archy-executor" for d in os.environ.get("PATH", "").split(os.pathsep) if d
    ]
    for candidate in candidates:
        if _is_executable(candidate):
            return str(candidate)
        looked.append(str(candidate.parent))
    raise ExecutorUnavailable(
        "archy-executor is not beside archy nor on PATH"
        + (f" (looked in {', '.join(dict.fromkeys(looked))})" if looked else " (PATH is unset)"),
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
            f"{path} belongs to uid {st.st_uid}, but you are uid {os.getuid()}; "
            "the executor only serves its own user",
            fix="use your own socket (unset ARCHY_SOCKET, or point it into your $XDG_RUNTIME_DIR)",
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
            f"permission denied connecting to {path}",
            fix="check the socket's and its directory's owner and mode",
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


def _systemctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["systemctl", "--user", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _systemd_socket_available(path: str) -> bool:
    # archy.socket listens on %t/archy.sock: it cannot help a client of another path.
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or Path(path) != Path(runtime) / "archy.sock":
        return False
    out = _systemctl("cat", SOCKET_UNIT)
    return out is not None and out.returncode == 0


def _systemd_start() -> bool:
    out = _systemctl("start", SOCKET_UNIT)
    if out is not None and out.returncode == 0:
        return True
    raise ExecutorUnavailable(
        f"`systemctl --user start {SOCKET_UNIT}` failed: "
        + (out.stderr.strip() if out is not None else "systemctl did not answer"),
        fix="systemctl --user status archy.socket; journalctl --user -u archy",
    )


def executor_log_path() -> Path | None:
    """``$XDG_RUNTIME_DIR/archy/executor.log``, where a spawned daemon's stderr goes."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "archy" / "executor.log" if runtime else None


def _log_tail(path: str, start: int = 0, limit: int = 2000) -> str:
    """What the daemon wrote to its log since ``start`` (its last ``limit`` bytes)."""
    try:
        with Path(path).open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(start, size - limit))
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
    log = executor_log_path()
    try:
        sock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if log is not None:
            log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ExecutorUnavailable(f"cannot create {exc.filename}: {exc.strerror}") from exc
    log_path = str(log) if log is not None else os.devnull
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env["ARCHY_SOCKET"] = path
    with tempfile.TemporaryDirectory(prefix="archy-notify-") as tmp:
        notify_path = str(Path(tmp) / "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            notify.bind(notify_path)
            env["NOTIFY_SOCKET"] = notify_path
            with Path(log_path).open("ab") as log_file:
                log_start = log_file.tell()
                try:
                    proc = subprocess.Popen(
                        [exe, *(extra_args or [])],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=log_file,
                        env=env,
                        start_new_session=True,
                        close_fds=True,
                    )
                except OSError as exc:
                    raise ExecutorUnavailable(f"cannot run {exe}: {exc.strerror}") from exc
            daemon = SpawnedDaemon(proc.pid, path, log_path, proc, log_start)
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
                    fix=_log_hint(daemon),
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
    tail = _log_tail(daemon.log, daemon.log_start)
    raise ExecutorUnavailable(
        f"archy-executor exited with status {code} before it was ready"
        + (f":\n{tail}" if tail else ""),
        fix=_log_hint(daemon),
    )


def _log_hint(daemon: SpawnedDaemon) -> str:
    if daemon.log == os.devnull:
        return "run archy-executor by hand to see why; `archy doctor` checks the whole setup"
    return f"its log: {daemon.log}; `archy doctor` checks the whole setup"
