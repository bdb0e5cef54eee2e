"""A real systemd user manager and journald for an unprivileged test user.

Runs as root. Where PID 1 is systemd, the machine's own manager starts `user@UID.service`
(lingering). Elsewhere (containers, CI) the harness boots journald and `systemd --user` by hand,
following ../shared/brief.md section 2: /run/systemd/system, persistent journal storage, a
delegated cgroup, then the manager under setpriv. Everything it starts is remembered by pid and
everything it creates by path, and `down()` removes exactly those.

Also usable by hand: `python3 tests/e2e/harness.py up` boots the world and prints how to enter
it; `python3 tests/e2e/harness.py down` tears down a world left by `up` (state in
/run/archy-e2e/state.json).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USER = "archy-e2e"
FIRST_UID = 1500
STATE_DIR = Path("/run/archy-e2e")
LOCK_FILE = Path("/run/lock/archy-e2e.lock")
JOURNALD = "/usr/lib/systemd/systemd-journald"
SYSTEMD = "/usr/lib/systemd/systemd"
USER_PATH = "/usr/local/bin:/usr/bin:/bin"


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def retry_until(
    what: str, fn: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Call `fn` until it returns something truthy; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except Exception as exc:  # noqa: BLE001 - reported if it never succeeds
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_pid_gone(pid: int, timeout: float) -> bool:
    try:
        retry_until(f"pid {pid} to exit", lambda: not pid_alive(pid), timeout)
        return True
    except TimeoutError:
        return False


def pids_of_uid(uid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def exe_pids(exe: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe") == exe:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def pid1_is_systemd() -> bool:
    try:
        return os.readlink("/proc/1/exe").endswith("/systemd") and Path("/run/systemd/system").is_dir()
    except OSError:
        return False


class NotifySocket:
    """A datagram socket to receive sd_notify messages (READY=1) from a child we start."""

    def __init__(self, directory: Path, owner: tuple[int, int] | None = None) -> None:
        self.path = directory / f"notify-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        if owner:
            os.chown(self.path, *owner)

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> list[str]:
        """Messages up to and including READY=1; raises if the child exits or time runs out."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no READY=1 on {self.path} within {timeout}s (seen {seen})")
            # Wake every 0.5 s only to notice a child that died before it said READY=1.
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(4096).decode(errors="replace")
            except TimeoutError:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"child exited with {proc.returncode} before READY=1") from None
                continue
            seen.extend(data.splitlines())
            if "READY=1" in data.splitlines():
                return seen

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class World:
    """The test user and its running systemd user manager."""

    artifacts: Path
    user: str = USER
    uid: int = -1
    gid: int = -1
    home: Path = Path("/nonexistent")
    mode: str = ""  # "host" (PID 1 is systemd) or "manual"
    pids: dict[str, int] = field(default_factory=dict)  # what we started, by name
    # Directories we made, removed in reverse order: `created` only if empty again (others may
    # have put things there meanwhile, e.g. /run/user/0), `owned` whole (only we write there).
    created: list[str] = field(default_factory=list)
    owned: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    user_created: bool = False
    _lock_fd: int = -1

    # ---------------------------------------------------------------- environment of the user
    @property
    def runtime_dir(self) -> Path:
        return Path(f"/run/user/{self.uid}")

    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/bash",
            "PATH": f"{self.home}/.local/bin:{USER_PATH}",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime_dir}/bus",
            "TERM": "xterm-256color",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)  # None unsets
            else:
                env[key] = value
        return env

    def _as_user(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "cwd": str(self.home)}

    def run(
        self,
        argv: Sequence[str],
        check: bool = True,
        timeout: float = 60,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the test user and capture its output."""
        proc = subprocess.run(
            list(argv),
            env=self.env(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._as_user(),
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def popen(self, argv: Sequence[str], env: Mapping[str, str | None] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(argv), env=self.env(env), **self._as_user(), **kw)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", *args], check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """`journalctl --user ARGS -o json` as the test user, parsed."""
        out = self.run(["journalctl", "--user", "--no-pager", "-o", "json", *args]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # ---------------------------------------------------------------- bookkeeping
    def _mkdir(self, path: Path, mode: int = 0o755, owner: tuple[int, int] | None = None) -> None:
        """mkdir -p, remembering every directory that did not exist so down() removes it."""
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir(mode=mode)
            os.chmod(d, mode)
            self.created.append(str(d))
        if owner:
            os.chown(path, *owner)

    def save(self) -> None:
        STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state["artifacts"] = str(self.artifacts)
        state["home"] = str(self.home)
        (STATE_DIR / "state.json").write_text(json.dumps(state))

    @classmethod
    def load(cls) -> World:
        state = json.loads((STATE_DIR / "state.json").read_text())
        state["artifacts"] = Path(state["artifacts"])
        state["home"] = Path(state["home"])
        return cls(**state)

    # ---------------------------------------------------------------- up
    def up(self) -> World:
        if os.geteuid() != 0:
            raise PermissionError("the e2e harness runs as root: it creates a user and boots its manager")
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another e2e run holds {LOCK_FILE}; waiting for it")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        if (STATE_DIR / "state.json").exists():
            log("tearing down the world an interrupted run left behind")
            World.load().down()
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.mode = "host" if pid1_is_systemd() else "manual"
        log(f"mode: {self.mode} (PID 1 is {os.readlink('/proc/1/exe') if os.path.exists('/proc/1/exe') else '?'})")
        try:
            self._make_user()
            if self.mode == "host":
                self._up_host()
            else:
                self._up_manual()
            self.save()
        except BaseException:
            self.down()
            raise
        return self

    def _make_user(self) -> None:
        try:
            pw = pwd.getpwnam(self.user)
            # A user of this name is only ever ours: a leftover of an interrupted run.
            log(f"reusing leftover user {self.user} (uid {pw.pw_uid})")
            self._kill_uid(pw.pw_uid)
        except KeyError:
            uid = FIRST_UID
            while True:
                try:
                    pwd.getpwuid(uid)
                    uid += 1
                except KeyError:
                    break
            subprocess.run(
                ["useradd", "--create-home", "--uid", str(uid), "--user-group", "--shell", "/bin/bash", self.user],
                check=True,
            )
            pw = pwd.getpwnam(self.user)
        self.user_created = True
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        self.save()

    def _up_host(self) -> None:
        """PID 1 is systemd: let logind/systemd start user@UID.service through lingering."""
        subprocess.run(["loginctl", "enable-linger", self.user], check=True)
        subprocess.run(["systemctl", "start", f"user@{self.uid}.service"], check=True, timeout=60)
        retry_until(
            "the user manager",
            lambda: self.run(["systemctl", "--user", "is-system-running"], check=False).stdout.strip()
            in ("running", "degraded"),
            timeout=30,
        )

    def _up_manual(self) -> None:
        uid, gid = self.uid, self.gid
        # 1. systemd --user refuses to start without it; journald's per-user files need /var.
        self._mkdir(Path("/run/systemd/system"))
        self._mkdir(Path("/var/log/journal"), 0o2755)
        # 2. journald, unless one already runs.
        running = exe_pids(JOURNALD)
        if not running:
            try:
                machine_id = Path("/etc/machine-id").read_text().strip()
            except OSError:
                machine_id = ""
            ours = ["/run/systemd/journal", "/run/log"] + ([f"/var/log/journal/{machine_id}"] if machine_id else [])
            for d in ours:
                if not Path(d).exists():
                    self.owned.append(d)  # our journald makes them: ours to remove
            # Per-user journal files (user-UID.journal, what `journalctl --user` reads) exist
            # only in persistent storage. journald writes to /var from the start when the
            # "flushed" flag is set; a flush later would try to delete /run/log/journal, which
            # journald refuses where /run is not a tmpfs (as here), and it stays on /run.
            Path("/run/systemd/journal").mkdir(exist_ok=True)
            Path("/run/systemd/journal/flushed").touch()
            self.pids["journald"] = self._spawn_ready(
                "journald", [JOURNALD], env={"PATH": USER_PATH}, notify_dir=STATE_DIR
            )
        else:
            log(f"journald already runs (pid {running[0]}); using it")
            subprocess.run(["journalctl", "--flush"], check=False, timeout=30, capture_output=True)
        # 3. The user's runtime directory.
        self._mkdir(Path("/run/user"), 0o755)
        self._mkdir(self.runtime_dir, 0o700, owner=(uid, gid))
        # 4. Delegate a cgroup subtree to the user (both hierarchies on hybrid machines).
        for root in self._cgroup_roots():
            path = root / "user.slice" / f"user-{uid}.slice" / f"user@{uid}.service"
            before = []
            p = path
            while not p.exists():
                before.append(str(p))
                p = p.parent
            path.mkdir(parents=True, exist_ok=True)
            self.cgroups.extend(reversed(before))
            for dirpath, dirnames, filenames in os.walk(path):
                for name in [*dirnames, *filenames, "."]:
                    try:
                        os.chown(os.path.join(dirpath, name), uid, gid)
                    except OSError:
                        pass
        # 5. The manager itself, moved into that cgroup before it drops privileges.
        procs = [root / "user.slice" / f"user-{uid}.slice" / f"user@{uid}.service" / "cgroup.procs"
                 for root in self._cgroup_roots()]

        def enter_cgroup() -> None:
            for f in procs:
                with open(f, "w") as fh:
                    fh.write(str(os.getpid()))

        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", SYSTEMD, "--user"]
        env = self.env()
        env.pop("DBUS_SESSION_BUS_ADDRESS")
        self.pids["user-manager"] = self._spawn_ready(
            "user-manager", argv, env=env, notify_dir=self.runtime_dir, owner=(uid, gid), preexec=enter_cgroup,
            timeout=60,
        )
        retry_until(
            "systemctl --user to answer",
            lambda: self.run(["systemctl", "--user", "is-system-running"], check=False).stdout.strip()
            in ("running", "degraded"),
            timeout=30,
        )

    @staticmethod
    def _cgroup_roots() -> list[Path]:
        base = Path("/sys/fs/cgroup")
        if (base / "cgroup.controllers").exists():
            return [base]  # pure cgroup v2
        return [base / h for h in ("systemd", "unified") if (base / h / "cgroup.procs").exists()]

    def _spawn_ready(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        notify_dir: Path,
        owner: tuple[int, int] | None = None,
        preexec: Callable[[], None] | None = None,
        timeout: float = 30,
    ) -> int:
        """Start a daemon in its own session and wait for its READY=1."""
        notify_dir.mkdir(mode=0o700, exist_ok=True)
        sock = NotifySocket(notify_dir, owner)
        out = open(self.artifacts / f"{name}.log", "ab")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv,
            env={**env, "NOTIFY_SOCKET": str(sock.path)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=preexec,
        )
        out.close()
        self.pids[name] = proc.pid
        self.save()
        try:
            sock.wait_ready(timeout, proc)
        finally:
            sock.close()
        log(f"{name} ready (pid {proc.pid}) in {1000 * (time.monotonic() - t0):.0f} ms")
        return proc.pid

    # ---------------------------------------------------------------- down
    def _kill_uid(self, uid: int) -> None:
        """SIGKILL every process of the dedicated test user (all of them are the harness's)."""
        for _ in range(5):
            pids = pids_of_uid(uid)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in pids:
                wait_pid_gone(pid, 5)

    def stop_pid(self, name: str, timeout: float = 20) -> None:
        pid = self.pids.pop(name, None)
        if pid is None or not pid_alive(pid):
            return
        log(f"stopping {name} (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        if not wait_pid_gone(pid, timeout):
            log(f"{name} (pid {pid}) ignored SIGTERM; SIGKILL")
            os.kill(pid, signal.SIGKILL)
            wait_pid_gone(pid, 5)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def down(self) -> None:
        """Stop what we started, newest first, and remove what we created."""
        if self.uid >= 0 and self.mode == "manual" and "user-manager" in self.pids:
            # SIGTERM makes the user manager stop all its units (tmux scopes included) and exit.
            self.stop_pid("user-manager", timeout=30)
        if self.uid >= 0 and self.mode == "host":
            subprocess.run(["loginctl", "disable-linger", self.user], check=False)
            subprocess.run(["systemctl", "stop", f"user@{self.uid}.service"], check=False, timeout=60)
        for name in list(self.pids):
            if name != "journald":
                self.stop_pid(name)
        if self.uid >= 0:
            self._kill_uid(self.uid)
        self.stop_pid("journald")
        for cg in reversed(self.cgroups):
            for dirpath, _dirs, _files in sorted(os.walk(cg), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT,):
                        log(f"cannot remove cgroup {dirpath}: {exc}")
        self.cgroups.clear()
        if self.user_created and self.uid >= 0:
            subprocess.run(["userdel", "--remove", self.user], check=False, capture_output=True)
            self.user_created = False
        if self.uid >= 0:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            for f in Path("/var/log/journal").glob(f"*/user-{self.uid}*.journal*"):
                f.unlink(missing_ok=True)
        for path in reversed(self.owned):
            shutil.rmtree(path, ignore_errors=True)
        for path in reversed(self.created):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log(f"leaving {path}: {exc.strerror}")
        self.created.clear()
        self.owned.clear()
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def stage_tree(repo: Path, dest: Path, release: Path, extra: Iterable[str] = ()) -> Path:
    """Copy what `make install-files` needs into a directory the test user can read.

    The repository may live where the test user cannot look (e.g. under /root in CI).
    """
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    for name in ("Makefile", "mk", "systemd", "README.md", "LICENSE", *extra):
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / name)
    py = repo / "python"
    if (py / "pyproject.toml").exists():
        shutil.copytree(
            py, dest / "python", dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*cache"),
        )
    rel = dest / "target" / "release"
    rel.mkdir(parents=True, exist_ok=True)
    for b in ("archy-executor", "archyctl"):
        shutil.copy2(release / b, rel / b)
    for dirpath, dirnames, filenames in os.walk(dest):
        for n in dirnames:
            os.chmod(os.path.join(dirpath, n), 0o755)
        for n in filenames:
            p = os.path.join(dirpath, n)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
    return dest


def main(argv: list[str]) -> int:
    repo = Path(__file__).resolve().parents[2]
    if argv[1:2] == ["up"]:
        w = World(artifacts=repo / "artifacts" / "e2e").up()
        w.save()
        # Keep the lock only for the life of this process; a later `down` takes it again.
        print(f"user {w.user} (uid {w.uid}) up in {w.mode} mode. Enter it with:")
        print(f"  setpriv --reuid={w.uid} --regid={w.gid} --init-groups env -i "
              + " ".join(f"{k}={v}" for k, v in w.env().items()) + " bash -l")
        return 0
    if argv[1:2] == ["down"]:
        if not (STATE_DIR / "state.json").exists():
            print("nothing to tear down")
            return 0
        World.load().down()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
