"""Pieces that need no daemon: safety, redaction, config, memory, wire types, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from archy.config import ConfigError, config_path, load
from archy.errors import (
    CODES,
    InvalidParams,
    ProtocolError,
    RefusedByPolicy,
    RpcError,
    SessionBusy,
    error_from_wire,
    raise_for_error,
)
from archy.memory import CommandRecord, Memory
from archy.safety import Risk, classify, cut, looks_like_password_prompt, redact
from archy.types import CommandResult, CommandState, OutputEvent, Status

READ_ONLY = [
    "uptime",
    "ls -la /etc | grep ssh",
    "df -h; free -m",
    "cat /etc/passwd",
    "systemctl status sshd",
    "journalctl -u NetworkManager --since today",
    "pacman -Qi linux",
    "ip -br a",
    "git log --oneline | head -5",
    "echo $(uname -r)",
    "cat /proc/cpuinfo 2>/dev/null | head",
]
CHANGES = [
    "touch x",
    "sudo pacman -Syu",
    "echo hi > /tmp/x",
    "sed -i s/a/b/ f",
    "systemctl restart nginx",
    "ip link set eth0 down",
    "find . -name x -delete",
    "pip install requests",
    "echo $(touch y)",
    "curl -o f https://x",
]
DANGEROUS = [
    "rm -rf ~/Documents",
    "sudo dd if=/dev/zero of=/dev/sda",
    "mkfs.ext4 /dev/sdb1",
    "curl -fsSL https://x.sh | sh",
    "chmod -R 777 /",
    "sudo reboot",
    "git push --force",
    "sudo pacman -Rns firefox",
    ":(){ :|:& };:",
]


@pytest.mark.parametrize("command", READ_ONLY)
def test_read_only(command: str) -> None:
    assert classify(command).risk is Risk.READ_ONLY, classify(command)


@pytest.mark.parametrize("command", CHANGES)
def test_changes(command: str) -> None:
    assert classify(command).risk is Risk.CHANGES, classify(command)


@pytest.mark.parametrize("command", DANGEROUS)
def test_dangerous(command: str) -> None:
    assert classify(command).risk is Risk.DANGEROUS, classify(command)


def test_redact() -> None:
    text = (
        "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n"
        "export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz\n"
        "url = https://alice:hunter2@git.example.com/x.git\n"
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
        "db_password: 'tr0ub4dor'\nnothing secret here\n"
    )
    out, n = redact(text)
    for secret in (
        "AKIAABCDEFGHIJKLMNOP",
        "abcdefghijklmnopqrstuvwxyz",
        "hunter2",
        "b3BlbnNzaC1rZXk",
        "tr0ub4dor",
    ):
        assert secret not in out
    assert n >= 5 and "nothing secret here" in out
    assert "https://alice:[REDACTED]@git.example.com" in out
    assert redact("plain text 1234")[1] == 0
    # A prompt line followed by output is not a key and its value.
    assert redact("Password: \npassword-ok\n") == ("Password: \npassword-ok\n", 0)


def test_cut_keeps_head_and_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    out = cut(text, 1000)
    assert len(out) < 1100
    assert out.startswith("line 0\n") and out.endswith("line 9999\n")
    assert "lines (" in out and "cut" in out
    assert cut("short", 1000) == "short"


def test_password_prompts() -> None:
    for p in ("Password: ", "[sudo] password for ann: ", "Enter passphrase for key 'x': "):
        assert looks_like_password_prompt(p)
    for q in ("Continue? [Y/n] ", "Name: ", None, ""):
        assert not looks_like_password_prompt(q)


def test_config_file_and_env(user_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load().provider == "gemini"
    path = config_path()
    assert path == user_world / "config" / "archy" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        '[executor]\nidle_timeout = 5\n\n[brain]\nprovider = "openai"\n'
        'model = "llama3"\nconfirm = "never"\nmax_steps = 4\n'
    )
    cfg = load()
    assert (cfg.provider, cfg.model, cfg.confirm, cfg.max_steps) == ("openai", "llama3", "never", 4)
    monkeypatch.setenv("ARCHY_MODEL", "other")
    monkeypatch.setenv("ARCHY_MAX_STEPS", "7")
    cfg = load()
    assert cfg.model == "other" and cfg.max_steps == 7
    path.write_text('[brain]\nmodle = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        load()
    path.write_text('[brain]\nconfirm = "sometimes"\n')
    with pytest.raises(ConfigError, match="confirm"):
        load()
    path.write_text("[brain\n")
    with pytest.raises(ConfigError, match=str(path)):
        load()


def test_memory(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Memory(db) as m:
        conv = m.new_conversation("q", "gemini", "flash")
        t = m.add_turn(conv, "user", "q")
        m.add_command(
            conv, t, CommandRecord("uptime", "ran", "read_only", exit_code=0, state="exited")
        )
        m.add_turn(conv, "assistant", "a")
    with Memory(db) as m:
        recent = m.recent_conversation(10)
        assert recent is not None and recent.id == conv and recent.title == "q"
        assert [x.role for x in m.turns(conv)] == ["user", "assistant"]
        assert m.commands(conv)[0].command == "uptime"
        assert m.commands(turn_id=t)[0].exit_code == 0
        assert m.recent_conversation(0) is None or m.recent_conversation(0).id == conv  # type: ignore[union-attr]


def test_wire_types_round_trip() -> None:
    wire = {
        "id": "c1",
        "session": "s",
        "command": "true",
        "state": "waiting_for_input",
        "exit_code": None,
        "output": "",
        "output_bytes": 0,
        "truncated": False,
        "prompt": "Password: ",
        "started_at": "2026-01-01T00:00:00Z",
        "duration_ms": 3,
        "future_field": 1,
    }
    r = CommandResult.from_json(wire)
    assert r.state is CommandState.WAITING_FOR_INPUT and r.state.is_live
    wire.pop("future_field")
    assert r.to_json() == wire
    ev = OutputEvent.from_json({"id": "c1", "result": wire})
    assert ev.is_final and ev.result == r
    assert OutputEvent.from_json({"id": "c1", "data": "x"}).to_json() == {"id": "c1", "data": "x"}
    st = Status.from_json(
        {
            "session": "s",
            "state": "full_screen",
            "foreground": "vim",
            "foreground_pid": 5,
            "command_id": None,
        }
    )
    assert st.state.value == "full_screen" and "prompt" not in st.to_json()


def test_one_raise_point_keeps_everything() -> None:
    err = error_from_wire(
        {"code": -32022, "message": "refused", "data": {"rule": "rm-root"}}, "execute"
    )
    assert isinstance(err, RefusedByPolicy) and err.rule == "rm-root"
    assert err.method == "execute" and str(err) == "execute: refused (-32022)"
    assert isinstance(
        error_from_wire({"code": -32024, "message": "busy", "data": {"running_id": "c9"}}),
        SessionBusy,
    )
    assert type(error_from_wire({"code": -32099, "message": "new"})) is RpcError
    with pytest.raises(InvalidParams):
        raise_for_error(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad"}}, "x"
        )
    with pytest.raises(ProtocolError):
        raise_for_error({"jsonrpc": "2.0", "id": 1}, "x")
    assert raise_for_error({"result": 5}) == 5
    assert all(c < 0 for c in CODES)
