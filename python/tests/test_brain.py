"""The brain end to end: real SDK code against local model servers, real daemon, real tmux."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archy.brain import Brain
from archy.client import Client
from archy.config import BrainConfig
from archy.memory import CommandRecord, Memory
from archy.providers import get_provider
from archy.safety import Classification

from .conftest import Daemon
from .fake_llm import FakeGemini, FakeOpenAI, function_responses, tool_messages

SESSION = "brain"


class ScriptedUI:
    """A person at the keyboard, scripted: answers and everything shown are recorded."""

    def __init__(self, confirm: bool = False, secret: str | None = None) -> None:
        self.answer = confirm
        self.secret = secret
        self.confirmed: list[str] = []
        self.secret_prompts: list[str] = []
        self.started: list[str] = []
        self.finished: list[CommandRecord] = []
        self.refusals: list[tuple[str, str | None]] = []
        self.chunks: list[str] = []
        self.notices: list[str] = []

    def thinking(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def confirm(self, command: str, classification: Classification) -> bool:
        self.confirmed.append(command)
        return self.answer

    def ask_secret(self, prompt: str) -> str | None:
        self.secret_prompts.append(prompt)
        return self.secret

    def command_started(self, command: str, classification: Classification) -> None:
        self.started.append(command)

    def output(self, chunk: str) -> None:
        self.chunks.append(chunk)

    def command_finished(self, record: CommandRecord) -> None:
        self.finished.append(record)

    def refused(self, command: str, rule: str | None, message: str) -> None:
        self.refusals.append((command, rule))

    def notice(self, text: str) -> None:
        self.notices.append(text)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def make_brain(
    daemon: Daemon,
    fake: FakeGemini | FakeOpenAI,
    *,
    ui: ScriptedUI | None = None,
    yes: bool = False,
    memory: Memory | None = None,
    **cfg: Any,
) -> Brain:
    if isinstance(fake, FakeGemini):
        config = BrainConfig(
            provider="gemini", api_key="test-key", base_url=fake.url, session=SESSION, **cfg
        )
    else:
        config = BrainConfig(
            provider="openai",
            api_key="test-key",
            base_url=fake.base_url,
            model="fake-model",
            session=SESSION,
            **cfg,
        )
    return Brain(
        Client(daemon.socket, timeout=60),
        get_provider(config),
        config,
        memory=memory,
        ui=ui or ScriptedUI(),
        yes=yes,
    )


def last_response(fake: FakeGemini, index: int = -1) -> dict[str, Any]:
    return function_responses(fake.requests[index].body)[0]["response"]  # type: ignore[no-any-return]


def test_gemini_runs_uptime_for_real(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "uptime"}),
        lambda body: FakeGemini.text(
            "Up: " + function_responses(body)[0]["response"]["output"].strip()
        ),
    )
    ui = ScriptedUI()
    brain = make_brain(daemon, gemini, ui=ui)
    answer = brain.ask("what's my uptime?")

    # The wire: the SDK's generateContent requests, tools declared, key sent.
    first, second = gemini.requests
    assert first.path == "/v1beta/models/gemini-flash-latest:generateContent"
    assert first.headers["x-goog-api-key"] == "test-key"
    names = [f["name"] for f in first.body["tools"][0]["functionDeclarations"]]
    assert names == [
        "run_command",
        "read_terminal",
        "answer_prompt",
        "wait_for_command",
        "interrupt",
        "open_terminal",
    ]
    assert "Archy" in first.body["systemInstruction"]["parts"][0]["text"]
    assert first.body["contents"][-1]["parts"][0]["text"] == "what's my uptime?"
    # The second request echoes the model's call and answers it with the real output.
    assert second.body["contents"][-2]["parts"][0]["functionCall"]["name"] == "run_command"
    response = function_responses(second.body)[0]
    assert response["name"] == "run_command"
    real = brain.client.history(session=SESSION).commands[-1]
    assert real.command == "uptime" and real.exit_code == 0
    assert response["response"]["output"] == real.output
    assert "load average" in real.output
    assert response["response"]["exit_code"] == 0 and response["response"]["state"] == "exited"

    assert answer.text == "Up: " + real.output.strip()
    assert [(c.command, c.outcome, c.exit_code) for c in answer.commands] == [("uptime", "ran", 0)]
    assert ui.started == ["uptime"] and ui.finished[0].exit_code == 0
    assert ui.confirmed == []  # read-only: no question asked


def test_gemini_base_url_from_sdk_variable(
    daemon: Daemon, gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.url)
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    gemini.add(FakeGemini.text("hello"))
    config = BrainConfig(session=SESSION)
    brain = Brain(Client(daemon.socket), get_provider(config), config)
    assert brain.ask("hi").text == "hello"
    assert len(gemini.requests) == 1


def test_openai_compatible_runs_commands(daemon: Daemon) -> None:
    with FakeOpenAI() as fake:
        fake.add(
            FakeOpenAI.call(
                "run_command", {"command": "echo from-openai; uname -s"}, call_id="call_7"
            ),
            lambda body: FakeOpenAI.text(tool_messages(body)[0]["content"]["output"]),
        )
        brain = make_brain(daemon, fake)
        answer = brain.ask("which kernel?")
        tool = tool_messages(fake.requests[1].body)[0]
        assert tool["tool_call_id"] == "call_7"
        assert tool["content"]["output"] == "from-openai\nLinux\n"
        assert fake.requests[1].body["messages"][-2]["tool_calls"][0]["id"] == "call_7"
        assert answer.text == "from-openai\nLinux"
        assert answer.commands[0].exit_code == 0


def test_openai_base_url_from_sdk_variable(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(api_key=None) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        fake.add(FakeOpenAI.text("local model here"))
        config = BrainConfig(provider="openai", model="llama", session=SESSION)
        provider = get_provider(config)
        assert provider.remote is False  # a server on this machine: no key needed
        assert Brain(Client(daemon.socket), provider, config).ask("hi").text == "local model here"
        assert fake.requests[0].body["model"] == "llama"


def test_changes_need_confirmation(daemon: Daemon, gemini: FakeGemini, tmp_path: Path) -> None:
    target = tmp_path / "made-by-archy"
    command = f"touch {target}"
    gemini.add(FakeGemini.call("run_command", {"command": command}), FakeGemini.text("ok"))
    ui = ScriptedUI(confirm=False)
    answer = make_brain(daemon, gemini, ui=ui).ask("make a file")
    assert ui.confirmed == [command] and not target.exists()
    assert last_response(gemini)["status"] == "declined"
    assert answer.commands[0].outcome == "declined"

    gemini.add(FakeGemini.call("run_command", {"command": command}), FakeGemini.text("ok"))
    ui = ScriptedUI(confirm=True)
    make_brain(daemon, gemini, ui=ui).ask("make a file")
    assert ui.confirmed == [command] and target.exists()


def test_yes_and_confirm_never_skip_the_question(
    daemon: Daemon, gemini: FakeGemini, tmp_path: Path
) -> None:
    options: list[dict[str, Any]] = [{"yes": True}, {"confirm": "never"}]
    for n, kwargs in enumerate(options):
        target = tmp_path / f"f{n}"
        gemini.add(
            FakeGemini.call("run_command", {"command": f"touch {target}"}), FakeGemini.text("done")
        )
        ui = ScriptedUI(confirm=False)
        make_brain(daemon, gemini, ui=ui, **kwargs).ask("make a file")
        assert ui.confirmed == [] and target.exists()


def test_dangerous_still_asks_with_yes(daemon: Daemon, gemini: FakeGemini, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    gemini.add(
        FakeGemini.call("run_command", {"command": f"rm -r {tmp_path / 'd'}"}),
        FakeGemini.text("no"),
    )
    ui = ScriptedUI(confirm=False)
    make_brain(daemon, gemini, ui=ui, yes=True).ask("delete it")
    assert len(ui.confirmed) == 1 and (tmp_path / "d").exists()


def test_policy_refusal_is_shown_not_bypassed(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "rm -rf /"}),
        FakeGemini.text("The executor refused."),
    )
    ui = ScriptedUI(confirm=True)  # even a yes from the user does not get past the policy
    answer = make_brain(daemon, gemini, ui=ui).ask("wipe everything")
    response = last_response(gemini)
    assert response["status"] == "refused_by_policy" and response["rule"]
    assert ui.refusals and ui.refusals[0][1] == response["rule"]
    assert answer.commands[0].outcome == "refused"
    assert response["rule"] in answer.commands[0].detail


def test_password_prompt_goes_to_the_user_not_the_model(
    daemon: Daemon, gemini: FakeGemini, tmp_path: Path
) -> None:
    # The expected password is in a file, so the command (the model's text) does not hold it.
    (tmp_path / "expected").write_text("hunter2")
    command = (
        "read -s -p 'Password: ' x; echo; "
        f'[ "$x" = "$(cat {tmp_path / "expected"})" ] && echo password-ok'
    )
    gemini.add(FakeGemini.call("run_command", {"command": command}), FakeGemini.text("done"))
    ui = ScriptedUI(secret="hunter2")
    answer = make_brain(daemon, gemini, ui=ui).ask("log in")
    assert ui.secret_prompts and "Password:" in ui.secret_prompts[0]
    response = last_response(gemini)
    assert response["exit_code"] == 0 and "password-ok" in response["output"]
    assert "hunter2" not in gemini.bodies_text()
    assert answer.commands[0].exit_code == 0


def test_no_password_interrupts(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "read -s -p 'Password: ' x"}),
        FakeGemini.text("cancelled"),
    )
    ui = ScriptedUI(secret=None)
    make_brain(daemon, gemini, ui=ui).ask("log in")
    assert last_response(gemini)["state"] != "waiting_for_input"


def test_other_prompts_are_answered_by_the_model(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "read -p 'Continue? ' a; echo ans-$a"}),
        FakeGemini.call("answer_prompt", {"text": "yes"}),
        FakeGemini.text("answered"),
    )
    make_brain(daemon, gemini).ask("go on")
    waiting = function_responses(gemini.requests[1].body)[0]["response"]
    assert waiting["state"] == "waiting_for_input" and "Continue?" in waiting["prompt"]
    done = last_response(gemini)
    assert done["state"] == "exited" and "ans-yes" in done["output"]


def test_secrets_are_redacted_before_they_leave(daemon: Daemon, gemini: FakeGemini) -> None:
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    token = "ghp_" + "a1b2c3d4e5" * 4
    command = (
        f"echo aws={key}; echo GITHUB_TOKEN={token}; echo https://bob:pa55word@example.com/repo"
    )
    gemini.add(FakeGemini.call("run_command", {"command": command}), FakeGemini.text("ok"))
    make_brain(daemon, gemini, confirm="never").ask("show secrets")
    out = last_response(gemini)["output"]
    assert "[REDACTED" in out and "redacted" in last_response(gemini)["note"]
    # (The command line is the model's own text; what it must not see is the output.)
    sent = "\n".join(
        json.dumps(f["response"].get("output"))
        for r in gemini.requests[1:]
        for f in function_responses(r.body)
    )
    for secret in (key, token, "pa55word"):
        assert secret not in sent
    assert "https://bob:[REDACTED]@example.com/repo" in out


def test_long_output_cut_to_head_and_tail(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(FakeGemini.call("run_command", {"command": "seq 1 100000"}), FakeGemini.text("many"))
    make_brain(daemon, gemini, max_output_chars=2000).ask("count")
    out = last_response(gemini)["output"]
    assert len(out) < 2300
    assert out.startswith("1\n2\n3\n") and out.rstrip().endswith("99999\n100000".rstrip())
    assert "cut" in out


def test_step_limit(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(*[FakeGemini.call("run_command", {"command": f"echo step{i}"}) for i in range(10)])
    answer = make_brain(daemon, gemini, max_steps=3).ask("loop forever")
    assert answer.stopped == "step_limit" and answer.steps == 3
    assert len(gemini.requests) == 3
    assert [c.command for c in answer.commands] == ["echo step0", "echo step1"]
    assert "Stopped after 3" in answer.text


def test_read_terminal_and_parallel_calls(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call("run_command", {"command": "echo visible-marker"}),
        FakeGemini.calls(("read_terminal", {"lines": 20}), ("nonexistent_tool", {})),
        FakeGemini.text("seen"),
    )
    make_brain(daemon, gemini).ask("look")
    read, unknown = function_responses(gemini.requests[2].body)
    assert read["name"] == "read_terminal" and "visible-marker" in read["response"]["output"]
    assert "unknown tool" in unknown["response"]["error"]


def test_history_persists_and_continues(
    daemon: Daemon, gemini: FakeGemini, user_world: Path
) -> None:
    db = user_world / "state" / "archy" / "history.db"
    db.parent.mkdir(parents=True)
    gemini.add(
        FakeGemini.call("run_command", {"command": "echo first"}), FakeGemini.text("first answer")
    )
    with Memory(db) as memory:
        a1 = make_brain(daemon, gemini, memory=memory).ask("first question")
    gemini.add(FakeGemini.text("second answer"))
    with Memory(db) as memory:  # a new process would reopen it just like this
        a2 = make_brain(daemon, gemini, memory=memory).ask("second question")
        assert a2.conversation_id == a1.conversation_id
        contents = gemini.requests[-1].body["contents"]
        texts = [p.get("text") for c in contents for p in c["parts"]]
        assert texts[0] == "first question" and "first answer" in texts[1]
        assert "`echo first` → exit 0" in texts[1]
        assert texts[-1] == "second question"
        turns = memory.turns(a1.conversation_id or 0)
        assert [(t.role, t.text) for t in turns] == [
            ("user", "first question"),
            ("assistant", "first answer"),
            ("user", "second question"),
            ("assistant", "second answer"),
        ]
        cmds = memory.commands(a1.conversation_id)
        assert [(c.command, c.exit_code, c.outcome) for c in cmds] == [("echo first", 0, "ran")]
        gemini.add(FakeGemini.text("fresh"))
        a3 = make_brain(daemon, gemini, memory=memory).ask("new topic", new=True)
        assert a3.conversation_id != a1.conversation_id
        assert len(gemini.requests[-1].body["contents"]) == 1


def test_slow_command_then_wait_for_command(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(
        FakeGemini.call(
            "run_command", {"command": "sleep 2; echo slow-done", "timeout_seconds": 1}
        ),
        FakeGemini.call("wait_for_command", {"timeout_seconds": 10}),
        FakeGemini.text("finished"),
    )
    answer = make_brain(daemon, gemini).ask("run the slow thing")
    running = function_responses(gemini.requests[1].body)[0]["response"]
    assert running["state"] == "running" and "wait_for_command" in running["note"]
    done = last_response(gemini)
    assert done["state"] == "exited" and done["output"] == "slow-done\n"
    assert [(c.command, c.exit_code) for c in answer.commands] == [("sleep 2; echo slow-done", 0)]


def test_open_terminal_tool_reports_what_happened(daemon: Daemon, gemini: FakeGemini) -> None:
    gemini.add(FakeGemini.call("open_terminal", {}), FakeGemini.text("ok"))
    make_brain(daemon, gemini).ask("show me the terminal")
    response = last_response(gemini)
    # No display on a test machine: the executor's error comes back as data, not a crash.
    assert "opened" in response or "error" in response
