"""A real terminal window: under headless sway, open_terminal opens foot attached to the session,
a command typed through `execute` draws two blocks of this run's own colours, a grim screenshot
shows them (decoded with png.py, no OCR), and close_terminal closes the window.
The screenshots stay in artifacts/e2e/ (window-before.png, window.png)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import png
import pytest
from conftest import ARTIFACTS, SOCKET, Archy, nonce
from harness import World, log, pid_alive, retry_until, wait_pid_gone

LEVELS = (0, 95, 135, 175, 215, 255)  # the xterm 256-colour cube, as foot draws it


def cube(index: int) -> tuple[int, int, int]:
    i = index - 16
    return (LEVELS[i // 36], LEVELS[(i // 6) % 6], LEVELS[i % 6])


@dataclass
class Sway:
    world: World
    pid: int
    display: str
    ipc: str

    def msg(self, kind: str) -> object:
        out = self.world.run(["swaymsg", "-s", self.ipc, "-r", "-t", kind]).stdout
        return json.loads(out)

    def views(self) -> list[dict]:
        found: list[dict] = []

        def walk(node: dict) -> None:
            if node.get("pid") and node.get("type") in ("con", "floating_con"):
                found.append(node)
            for child in node.get("nodes", []) + node.get("floating_nodes", []):
                walk(child)

        walk(self.msg("get_tree"))  # type: ignore[arg-type]
        return found

    def screenshot(self, name: str) -> png.Image:
        tmp = self.world.home / f"{name}.png"
        self.world.run(["grim", str(tmp)], env={"WAYLAND_DISPLAY": self.display})
        dest = ARTIFACTS / f"{name}.png"
        shutil.copyfile(tmp, dest)
        return png.read(dest)


@pytest.fixture(scope="module")
def sway(archy: Archy) -> Iterator[Sway]:
    w = archy.w
    for tool in ("sway", "swaymsg", "foot", "grim"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (make e2e-deps installs sway, foot and grim)")
    conf = w.home / ".config" / "sway" / "e2e.conf"
    archy.write_user_file(conf, "output HEADLESS-1 resolution 1024x768\n"
                                "default_border none\nxwayland disable\n")
    # A font big enough for a person to read the screenshot.
    archy.write_user_file(w.home / ".config" / "foot" / "foot.ini", "[main]\nfont=monospace:size=13\n")
    before = set(os.listdir(w.runtime_dir))
    log_file = open(ARTIFACTS / "sway.log", "wb")
    proc = w.popen(
        ["sway", "--config", str(conf)],
        env={"WLR_BACKENDS": "headless", "WLR_HEADLESS_OUTPUTS": "1", "WLR_LIBINPUT_NO_DEVICES": "1",
             "WLR_RENDERER": "pixman"},
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True,
    )
    log_file.close()
    w.pids["sway"] = proc.pid  # the harness stops it, by pid, even if this fixture cannot
    try:
        def ready() -> tuple[str, str] | None:
            if proc.poll() is not None:
                raise RuntimeError(f"sway exited with {proc.returncode}; see artifacts/e2e/sway.log")
            new = set(os.listdir(w.runtime_dir)) - before
            display = sorted(n for n in new if n.startswith("wayland-") and not n.endswith(".lock"))
            ipc = [n for n in new if n.startswith(f"sway-ipc.{w.uid}.{proc.pid}.")]
            return (display[0], str(w.runtime_dir / ipc[0])) if display and ipc else None

        display, ipc = retry_until("sway's wayland and IPC sockets", ready, timeout=20)
        s = Sway(w, proc.pid, display, ipc)
        outputs = retry_until("sway's headless output", lambda: s.msg("get_outputs"), timeout=10)
        log(f"sway pid {proc.pid} on {display}, outputs {[o['name'] for o in outputs]}")  # type: ignore[union-attr]
        yield s
    finally:
        w.stop_pid("sway")


def test_open_terminal_shows_the_command_and_close_terminal_closes_it(archy: Archy, sway: Sway) -> None:
    archy.w.systemctl("enable", "--now", SOCKET)
    tag = nonce()
    session = f"e2e-window-{tag}"
    rng = random.Random(tag)
    # Two colours of the cube, not greys, different from each other: this run's marker.
    palette = [i for i in range(16, 232) if len(set(cube(i))) > 1]
    a, b = rng.sample(palette, 2)
    colour_a, colour_b = cube(a), cube(b)

    env = {"WAYLAND_DISPLAY": sway.display, "XDG_RUNTIME_DIR": str(archy.w.runtime_dir)}
    opened = archy.rpc("open_terminal", {"session": session, "env": env})
    pid = opened["pid"]
    assert opened["terminal"] == "foot", opened
    view = retry_until("foot's window in sway's tree",
                       lambda: [v for v in sway.views() if v["pid"] == pid], timeout=15)[0]
    assert view.get("app_id") == "foot", view
    # The window drew something (foot's background over the black output) before we type.
    first = retry_until("foot to draw", lambda: (im := sway.screenshot("window-before"))
                        and len(im.colour_counts()) > 2 and im, timeout=10)
    counts = first.colour_counts()
    assert colour_a not in counts and colour_b not in counts

    marker = f"ARCHY-E2E-{tag}"
    command = (f"for i in 1 2 3; do printf '\\033[48;5;{a}m%48s\\033[0m\\n' ''; done; "
               f"for i in 1 2 3; do printf '\\033[48;5;{b}m%48s\\033[0m\\n' ''; done; echo {marker}")
    result = archy.rpc("execute", {"session": session, "command": command})
    assert result["exit_code"] == 0 and marker in result["output"], result

    def blocks() -> tuple[png.Image, tuple, tuple] | None:
        im = sway.screenshot("window")
        box_a, box_b = im.bbox(colour_a), im.bbox(colour_b)
        return (im, box_a, box_b) if box_a and box_b else None

    im, box_a, box_b = retry_until("both colour blocks on screen", blocks, timeout=10, interval=0.2)
    counts = im.colour_counts()
    for colour, (x0, y0, x1, y1) in ((colour_a, box_a), (colour_b, box_b)):
        w, h = x1 - x0 + 1, y1 - y0 + 1
        assert w >= 200 and h >= 30, (colour, w, h)  # 48 cells by 3 rows
        assert counts[colour] >= 0.95 * w * h, "not a solid block"
    assert box_b[1] > box_a[3] - 1, "the second block is not below the first"
    log(f"window: foot pid {pid}, blocks {colour_a} at {box_a} and {colour_b} at {box_b} "
        f"-> {ARTIFACTS / 'window.png'}")

    t0 = time.monotonic()
    closed = archy.rpc("close_terminal", {"session": session})
    assert closed["closed"] >= 1
    assert wait_pid_gone(pid, 10), f"foot (pid {pid}) still runs after close_terminal"
    assert not pid_alive(pid)
    retry_until("the window to leave sway's tree", lambda: not [v for v in sway.views() if v["pid"] == pid],
                timeout=5)
    log(f"close_terminal: window gone in {(time.monotonic() - t0) * 1000:.0f} ms")
    # The session itself lives on without its window.
    assert archy.rpc("check_session", {"session": session})["exists"] is True
