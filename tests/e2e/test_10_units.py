"""The unit files: they verify, they install pointing at the installed binary, and enabling the
socket starts nothing."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

from conftest import REPO, SERVICE, SOCKET, Archy


def verify(archy: Archy, *units: Path) -> None:
    proc = archy.w.run(["systemd-analyze", "--user", "verify", *map(str, units)], check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), (
        f"systemd-analyze verify {units}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
    )


def test_source_units_verify(archy: Archy) -> None:
    """systemd/ as shipped (ExecStart=/usr/bin/...), with the binary path swapped for one that
    exists here, since verify insists that ExecStart is executable."""
    with tempfile.TemporaryDirectory(prefix="archy-e2e-units.") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        service = (REPO / "systemd" / SERVICE).read_text()
        assert "ExecStart=/usr/bin/archy-executor\n" in service
        (d / SERVICE).write_text(service.replace("/usr/bin/archy-executor", "/bin/true"))
        (d / SOCKET).write_text((REPO / "systemd" / SOCKET).read_text())
        for f in d.iterdir():
            f.chmod(0o644)
        verify(archy, d / SOCKET, d / SERVICE)


def test_installed_units_verify_and_point_at_the_installed_binary(archy: Archy) -> None:
    service = archy.unitdir / SERVICE
    verify(archy, archy.unitdir / SOCKET, service)
    exec_start = [line for line in service.read_text().splitlines() if line.startswith("ExecStart=")]
    assert exec_start == [f"ExecStart={archy.bindir}/archy-executor"]
    props = archy.w.show(SERVICE, "Type", "Restart", "KillMode", "NoNewPrivileges", "ProtectSystem",
                         "ProtectHome", "FragmentPath")
    assert props["FragmentPath"] == str(service)
    assert props["Type"] == "notify"
    assert props["Restart"] == "on-failure"
    # What users run needs sudo, their home and their display: no sandbox that breaks them.
    assert props["NoNewPrivileges"] == "no"
    assert props["ProtectSystem"] == "no"
    assert props["ProtectHome"] == "no"
    assert props["KillMode"] == "control-group"


def test_enabling_the_socket_leaves_the_service_inactive(archy: Archy) -> None:
    archy.w.systemctl("enable", "--now", SOCKET)
    sock = archy.w.show(SOCKET, "ActiveState", "SubState", "Listen", "UnitFileState")
    assert (sock["ActiveState"], sock["SubState"]) == ("active", "listening")
    assert sock["UnitFileState"] == "enabled"
    path = archy.w.runtime_dir / "archy.sock"
    assert sock["Listen"] == f"{path} (Stream)"
    st = path.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == archy.w.uid
    svc = archy.service()
    assert svc["ActiveState"] == "inactive", svc
    assert svc["MainPID"] == "0"
    wants = archy.unitdir / "sockets.target.wants" / SOCKET
    assert wants.is_symlink()
