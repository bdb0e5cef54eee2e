"""``archy doctor``: check every part and say how to fix each."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.text import Text

from .. import spawn
from ..client import Client
from ..config import config_path, load, state_dir
from ..errors import ArchyError, ExecutorUnavailable
from ..providers import get_provider
from .common import make_console, print_json, report_errors

TERMINALS = ("foot", "kitty", "alacritty", "wezterm", "gnome-terminal", "konsole", "xterm")


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""


def _run(*argv: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def check_executor() -> Check:
    try:
        exe = spawn.find_executor()
    except ExecutorUnavailable as exc:
        return Check("executor binary", "fail", exc.reason, exc.fix or "")
    return Check("executor binary", "ok", exe)


def check_tmux() -> Check:
    tmux = shutil.which("tmux")
    if not tmux:
        return Check(
            "tmux", "fail", "not installed", "sudo pacman -S tmux (or apt/dnf install tmux)"
        )
    out = _run(tmux, "-V")
    return Check("tmux", "ok", out.stdout.strip() if out else tmux)


def check_socket(socket_arg: str | None) -> Check:
    try:
        path = spawn.socket_path(socket_arg)
    except ExecutorUnavailable as exc:
        return Check("executor socket", "fail", exc.reason, exc.fix or "")
    running = Path(path).exists()
    try:
        with Client(path, autostart=True, timeout=10) as client:
            info = client.daemon_info()
    except ExecutorUnavailable as exc:
        return Check("executor socket", "fail", f"{path}: {exc.reason}", exc.fix or "")
    except ArchyError as exc:
        return Check(
            "executor socket",
            "fail",
            f"{path}: {exc}",
            "journalctl --user -u archy, or the log next to the socket",
        )
    how = "socket-activated by systemd" if info.socket_activated else "started by a client"
    started = "" if running else " (started just now)"
    return Check(
        "executor socket",
        "ok",
        f"{path}: archy-executor {info.version}, pid {info.pid}, {how}{started}, "
        f"tmux -L {info.tmux_socket}",
    )


def check_systemd() -> Check:
    if not shutil.which("systemctl"):
        return Check("systemd units", "warn", "no systemctl; clients spawn the executor")
    out = _run("systemctl", "--user", "is-enabled", "archy.socket")
    if out is None or "Failed to connect" in (out.stderr or ""):
        return Check(
            "systemd units", "warn", "no systemd user manager; clients spawn the executor on demand"
        )
    state = (out.stdout or out.stderr).strip()
    if out.returncode == 0:
        active = _run("systemctl", "--user", "is-active", "archy.socket")
        return Check(
            "systemd units",
            "ok",
            f"archy.socket {state}, {active.stdout.strip() if active else '?'}",
        )
    return Check(
        "systemd units",
        "warn",
        f"archy.socket: {state or 'not installed'}",
        "make install, then systemctl --user enable --now archy.socket",
    )


def check_terminal() -> Check:
    found = [t for t in TERMINALS if shutil.which(t)]
    if found:
        return Check("terminal", "ok", ", ".join(found))
    return Check(
        "terminal",
        "warn",
        "none of " + ", ".join(TERMINALS),
        "install foot (or another) to use `archy open`",
    )


def check_display() -> Check:
    present = [v for v in ("WAYLAND_DISPLAY", "DISPLAY") if os.environ.get(v)]
    if present:
        return Check("display", "ok", ", ".join(f"{v}={os.environ[v]}" for v in present))
    return Check(
        "display",
        "warn",
        "neither WAYLAND_DISPLAY nor DISPLAY is set",
        "run archy from your desktop session to open terminal windows",
    )


def check_config() -> list[Check]:
    path = config_path()
    try:
        cfg = load()
    except ArchyError as exc:
        return [Check("config", "fail", str(exc), f"edit {path}")]
    checks = [Check("config", "ok", f"{path}" + ("" if path.exists() else " (absent: defaults)"))]
    provider = get_provider(cfg)
    key = provider.api_key()
    if key or not provider.needs_key or not provider.remote:
        where = "key set" if key else "no key needed (local)"
        base = cfg.base_url or os.environ.get(
            "GOOGLE_GEMINI_BASE_URL" if cfg.provider == "gemini" else "OPENAI_BASE_URL", ""
        )
        checks.append(
            Check(
                "provider", "ok", f"{provider.describe()}, {where}" + (f", {base}" if base else "")
            )
        )
    else:
        checks.append(
            Check(
                "provider",
                "fail",
                f"{provider.describe()}: no API key",
                f"export {provider.key_env_vars[0]}=… or set api_key in [brain] of {path}",
            )
        )
    return checks


def check_state() -> Check:
    directory = state_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return Check("history", "fail", f"{directory}: {exc.strerror}", "check permissions")
    if not os.access(directory, os.W_OK):
        return Check("history", "fail", f"{directory} is not writable", "check permissions")
    return Check("history", "ok", str(directory / "history.db"))


@report_errors
def run(args: argparse.Namespace) -> int:
    checks = [
        check_executor(),
        check_tmux(),
        check_systemd(),
        check_socket(args.socket),
        check_terminal(),
        check_display(),
        *check_config(),
        check_state(),
    ]
    if args.json:
        print_json([asdict(c) for c in checks])
    else:
        console = make_console()
        marks = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red")}
        for c in checks:
            mark, style = marks[c.status]
            console.print(
                Text.assemble((f"{mark} ", style), (f"{c.name}: ", "bold"), (c.detail, ""))
            )
            if c.fix and c.status != "ok":
                console.print(Text(f"    fix: {c.fix}", style="dim"))
    return 1 if any(c.status == "fail" for c in checks) else 0
