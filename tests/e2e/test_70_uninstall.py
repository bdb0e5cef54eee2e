"""`make uninstall` (last: it removes what the other tests use): units disabled and gone,
binaries, venv and docs gone; Archy's tmux server, with its sessions, left alone."""

from __future__ import annotations

from conftest import SERVICE, SOCKET, Archy


def test_make_uninstall_removes_what_install_put_in_place(archy: Archy) -> None:
    archy.w.systemctl("enable", "--now", SOCKET)
    archy.rpc("execute", {"command": "true", "session": "e2e-uninstall"})
    assert archy.w.show(SERVICE, "ActiveState")["ActiveState"] == "active"
    proc = archy.w.run(["make", "-C", str(archy.stage), "--no-print-directory", "uninstall"])
    assert "tmux -L archy kill-server" in proc.stdout
    home = archy.w.home
    for gone in (archy.bindir / "archy-executor", archy.bindir / "archyctl", archy.bindir / "archy",
                 archy.unitdir / SOCKET, archy.unitdir / SERVICE, archy.unitdir / "sockets.target.wants" / SOCKET,
                 home / ".local" / "lib" / "archy", home / ".local" / "share" / "doc" / "archy"):
        assert not gone.exists() and not gone.is_symlink(), gone
    for unit in (SOCKET, SERVICE):
        props = archy.w.show(unit, "LoadState", "ActiveState")
        assert props == {"LoadState": "not-found", "ActiveState": "inactive"}, (unit, props)
    assert not (archy.w.runtime_dir / "archy.sock").exists()
    assert "e2e-uninstall" in archy.tmux("list-sessions", "-F", "#{session_name}").split()
