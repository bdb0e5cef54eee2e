"""The ``archy`` command driven as a person would: in a pseudo-terminal (pexpect)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from .conftest import Daemon
from .fake_llm import FakeGemini, function_responses

A = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"  # any escape sequences (bold, dim: NO_COLOR keeps them)
ARCHY = str(Path(sys.executable).with_name("archy"))


@pytest.fixture
def gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.url)
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        yield fake


def spawn(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    return pexpect.spawn(
        ARCHY,
        list(args),
        env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", **(env or {})},
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 120),
    )


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus)


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARCHY, *args], capture_output=True, text=True, timeout=60, input=input, check=False
    )


def test_ask_in_a_terminal(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "uptime"}),
        lambda body: FakeGemini.text(
            "Your machine has been **up** for: "
            + function_responses(body)[0]["response"]["output"].split(",")[0].strip()
        ),
    )
    child = spawn("what's my uptime?")
    child.expect(rf"\$ {A}uptime")
    child.expect(r"exit 0")
    child.expect(f"Your machine has been {A}up{A} for")  # Markdown rendered: no ** left
    child.expect(r"Commands:(?s:.*?)\$ (?s:.*?)uptime\s+✓ exit 0")
    assert finish(child) == 0
    assert "\x1b[3" not in (child.before or "")  # NO_COLOR: no colour codes


def test_confirmation_prompt(daemon: Daemon, gemini: FakeGemini, tmp_path: Path) -> None:
    target = tmp_path / "confirmed"
    gemini.add(
        FakeGemini.call("run_command", {"command": f"touch {target}"}),
        FakeGemini.text("Created it."),
    )
    child = spawn("make a file")
    child.expect("changes")
    child.expect_exact("Run it? [y/N]")
    child.sendline("y")
    child.expect("Created it.")
    assert finish(child) == 0
    assert target.exists()


def test_confirmation_declined(daemon: Daemon, gemini: FakeGemini, tmp_path: Path) -> None:
    target = tmp_path / "declined"
    gemini.add(
        FakeGemini.call("run_command", {"command": f"touch {target}"}),
        FakeGemini.text("Not created."),
    )
    child = spawn("make a file")
    child.expect_exact("Run it? [y/N]")
    child.sendline("n")
    child.expect("declined")
    child.expect("Not created.")
    assert finish(child) == 0
    assert not target.exists()


def test_password_typed_without_echo(daemon: Daemon, gemini: FakeGemini, tmp_path: Path) -> None:
    # The expected password is in a file, so the command (the model's text) does not hold it.
    (tmp_path / "expected").write_text("hunter2")
    command = (
        "read -s -p 'Password: ' x; echo; "
        f'[ "$x" = "$(cat {tmp_path / "expected"})" ] && echo password-ok'
    )
    gemini.add(
        FakeGemini.call("run_command", {"command": command}),
        lambda body: FakeGemini.text(
            "result: " + function_responses(body)[0]["response"]["output"].strip()
        ),
    )
    child = spawn("--yes", "log in")
    child.expect("never sent to the model")
    child.expect("Password:")
    child.sendline("hunter2")
    child.expect(r"result: (?s:.*?)password-ok")
    assert finish(child) == 0
    assert "hunter2" not in gemini.bodies_text()


def test_refusal_is_shown(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "rm -rf /"}), FakeGemini.text("I can't do that.")
    )
    child = spawn("wipe my disk")
    child.expect_exact("Type 'yes' to run it:")
    child.sendline("yes")
    child.expect("refused by the executor's policy")
    child.expect("I can't do that.")
    assert finish(child) == 0


def test_json_answer_and_history(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "echo json-marker"}), FakeGemini.text("done")
    )
    r = run("--json", "say it")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["answer"] == "done"
    assert data["commands"][0]["command"] == "echo json-marker"
    assert data["commands"][0]["exit_code"] == 0
    gemini.add(FakeGemini.text("again"))
    assert json.loads(run("--json", "follow-up").stdout)["conversation"] == data["conversation"]
    gemini.add(FakeGemini.text("new"))
    assert json.loads(run("--json", "--new", "x").stdout)["conversation"] != data["conversation"]
    hist = json.loads(run("history", "--json").stdout)
    first = next(c for c in hist if c["id"] == data["conversation"])
    assert [t["role"] for t in first["turns"]] == ["user", "assistant"] * 2
    assert first["commands"][0]["exit_code"] == 0
    text = run("history").stdout
    assert "say it" in text and "echo json-marker" in text and "exit 0" in text


def test_chat(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "echo chat-marker"}),
        FakeGemini.text("first reply"),
        FakeGemini.text("second reply"),
    )
    child = spawn()
    child.expect_exact("archy>")
    child.sendline("hello there")
    child.expect("chat-marker")
    child.expect("first reply")
    child.expect_exact("archy>")
    child.sendline("and again")
    child.expect("second reply")
    child.expect_exact("archy>")
    child.sendeof()
    assert finish(child) == 0
    # The second question went with the first exchange.
    texts = [p.get("text", "") for c in gemini.requests[-1].body["contents"] for p in c["parts"]]
    assert texts[0] == "hello there" and texts[-1] == "and again"


def test_run_exits_with_the_commands_status(daemon: Daemon) -> None:
    child = spawn("run", "--", "sh", "-c", "echo out-line; exit 7")
    child.expect("out-line")
    assert finish(child) == 7
    r = run("run", "--json", "--", "echo one; echo two")
    assert r.returncode == 0
    assert json.loads(r.stdout)["output"] == "one\ntwo\n"
    r = run("run", "--", "rm -rf /")
    assert r.returncode == 126 and "refused" in r.stderr


def test_run_prints_the_whole_output_exactly(daemon: Daemon) -> None:
    r = run("run", "--", "seq 1 100000; printf 'h\\xc3\\xa9llo'")
    assert r.returncode == 0
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 100001)) + "héllo"


def test_run_streams_and_answers_a_password(daemon: Daemon) -> None:
    child = spawn("run", "--", "echo before; read -s -p 'Password: ' x; echo; echo got-${#x}")
    child.expect("before")
    child.expect("Password:")
    child.sendline("abcd")
    child.expect("got-4")
    assert finish(child) == 0


def test_open_close_and_doctor(daemon: Daemon) -> None:
    r = run("close", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"closed": 0}
    r = run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert checks["executor binary"]["status"] == "ok"
    assert checks["tmux"]["status"] == "ok"
    assert checks["executor socket"]["status"] == "ok"
    assert daemon.tmux in checks["executor socket"]["detail"]
    assert checks["provider"]["status"] == "fail"  # no key in this test
    assert "GEMINI_API_KEY" in checks["provider"]["fix"]
    assert r.returncode == 1
    human = run("doctor").stdout
    assert re.search(r"✗ provider: .*no API key", human) and "fix: export GEMINI_API_KEY" in human


def test_missing_key_names_the_fix(daemon: Daemon) -> None:
    r = run("hello")
    assert r.returncode == 1
    assert "GEMINI_API_KEY" in r.stderr


def test_executor_missing_is_explained(daemon: Daemon, tmp_path: Path) -> None:
    env = {**os.environ, "ARCHY_EXECUTOR": str(tmp_path / "none")}
    r = subprocess.run(
        [ARCHY, "run", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert r.returncode == 69
    assert "not an executable file" in r.stderr and "fix:" in r.stderr
