"""The brain: a function-calling loop between a model and the executor.

The model never gets a shell: it calls tools (:data:`TOOLS`), and the brain decides what reaches
the executor. Every proposed command is classified first (:mod:`archy.safety`); changes need the
user's yes unless ``--yes`` or ``confirm = "never"``; the executor's policy refusals are reported
to the user and the model, never worked around; a password prompt is handed to the user and
typed with ``secret: true``, never shown to the model. Output is redacted and cut to a head and
tail before it is sent. Each question ends with an :class:`Answer` that lists every command and
its exit code, and everything is written to :class:`~archy.memory.Memory`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .client import Client, OutputStream
from .config import BrainConfig
from .errors import (
    ArchyError,
    NoTerminal,
    RefusedByPolicy,
    RpcError,
    SessionBusy,
    SessionNotFound,
    UnknownCommand,
)
from .memory import CommandRecord, Memory
from .providers.base import ChatSession, ModelReply, Provider, ToolCall, ToolResult, ToolSpec
from .safety import Classification, Risk, classify, cut, looks_like_password_prompt, redact
from .types import CommandResult, CommandState

__all__ = ["TOOLS", "UI", "Answer", "Brain", "QuietUI", "system_prompt"]

TOOLS: list[ToolSpec] = [
    ToolSpec(
        "run_command",
        "Run a shell command in the user's persistent terminal session (a tmux session the "
        "user can watch with `archy open`; cd and export persist) and return its exit code and "
        "output. Prefer read-only commands. Commands that change the system are shown to the "
        "user for confirmation first. Never put passwords in commands: if a command asks for "
        "one, the user is prompted directly.",
        {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command line, run as typed."},
                "timeout_seconds": {
                    "type": "integer",
                    "description": "How long to wait before returning while it keeps running "
                    "(default 60).",
                },
            },
            "required": ["command"],
        },
    ),
    ToolSpec(
        "read_terminal",
        "Read what the terminal session shows now (the last lines of the screen and history).",
        {
            "type": "object",
            "properties": {
                "lines": {"type": "integer", "description": "How many lines (default 50)."},
            },
        },
    ),
    ToolSpec(
        "answer_prompt",
        "Type an answer to a command that is waiting for input (a yes/no question, a menu "
        "choice), followed by Enter. Not for passwords: those go to the user.",
        {
            "type": "object",
            "properties": {
                "text": {"type": "string", "description": "The text to type."},
            },
            "required": ["text"],
        },
    ),
    ToolSpec(
        "wait_for_command",
        "Wait longer for a command that is still running, then return its result.",
        {
            "type": "object",
            "properties": {
                "timeout_seconds": {"type": "integer", "description": "How long (default 60)."},
            },
        },
    ),
    ToolSpec(
        "interrupt",
        "Interrupt the running command (Ctrl-C), e.g. one that hangs or waits for input you "
        "cannot give.",
        {
            "type": "object",
            "properties": {
                "signal": {"type": "string", "description": "INT (default), TERM, KILL, HUP."},
            },
        },
    ),
    ToolSpec(
        "open_terminal",
        "Open a terminal window attached to the session so the user can see it and type.",
        {"type": "object", "properties": {}},
    ),
]


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def system_prompt() -> str:
    """What the model is told about its job and the machine (no user or host names)."""
    desktop = os.environ.get("XDG_CURRENT_DESKTOP") or "unknown"
    session = os.environ.get("XDG_SESSION_TYPE") or "unknown"
    shell = Path(os.environ.get("SHELL") or "bash").name
    return (
        "You are Archy, an assistant that answers questions about and performs tasks on the "
        "user's Linux desktop by running shell commands through tools.\n"
        f"Machine: {_os_name()}, kernel {platform.release()}, {platform.machine()}; desktop "
        f"{desktop} ({session}); shell {shell}.\n"
        "Rules:\n"
        "- Find facts by running commands (run_command); do not guess what a command would "
        "print. Prefer read-only commands and the simplest command that answers.\n"
        "- Commands run one at a time in a persistent terminal session the user can watch.\n"
        "- Changes to the system need the user's confirmation, which the tool asks for; if the "
        "user declines or the executor's policy refuses, do not try to get around it: explain "
        "and suggest what the user could do.\n"
        "- Never ask for or type passwords; when a command needs one, the user is asked "
        "directly.\n"
        "- Output you see may have secrets replaced by [REDACTED] and long output cut.\n"
        "- Answer briefly in Markdown, with the facts the commands showed."
    )


class UI(Protocol):
    """What the brain needs from whoever is at the keyboard."""

    def thinking(self) -> contextlib.AbstractContextManager[None]: ...
    def confirm(self, command: str, classification: Classification) -> bool: ...
    def ask_secret(self, prompt: str) -> str | None: ...
    def command_started(self, command: str, classification: Classification) -> None: ...
    def output(self, chunk: str) -> None: ...
    def command_finished(self, record: CommandRecord) -> None: ...
    def refused(self, command: str, rule: str | None, message: str) -> None: ...
    def notice(self, text: str) -> None: ...


class QuietUI:
    """No one at the keyboard: confirmations are declined (unless ``yes``), no secrets."""

    def __init__(self, yes: bool = False) -> None:
        self.yes = yes

    def thinking(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def confirm(self, command: str, classification: Classification) -> bool:
        return self.yes and classification.risk is not Risk.DANGEROUS

    def ask_secret(self, prompt: str) -> str | None:
        return None

    def command_started(self, command: str, classification: Classification) -> None:
        pass

    def output(self, chunk: str) -> None:
        pass

    def command_finished(self, record: CommandRecord) -> None:
        pass

    def refused(self, command: str, rule: str | None, message: str) -> None:
        pass

    def notice(self, text: str) -> None:
        pass


@dataclass
class Answer:
    text: str
    commands: list[CommandRecord] = field(default_factory=list)
    conversation_id: int | None = None
    steps: int = 0
    #: Why the loop stopped early (``step_limit``), else None.
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "conversation": self.conversation_id,
            "steps": self.steps,
            "stopped": self.stopped,
            "commands": [
                {
                    "command": c.command,
                    "outcome": c.outcome,
                    "risk": c.risk,
                    "id": c.command_id,
                    "state": c.state,
                    "exit_code": c.exit_code,
                    "duration_ms": c.duration_ms,
                    "detail": c.detail,
                }
                for c in self.commands
            ],
        }


class Brain:
    def __init__(
        self,
        client: Client,
        provider: Provider,
        config: BrainConfig,
        *,
        memory: Memory | None = None,
        ui: UI | None = None,
        yes: bool = False,
    ) -> None:
        self.client = client
        self.provider = provider
        self.config = config
        self.memory = memory
        self.ui: UI = ui or QuietUI(yes)
        self.yes = yes
        self.session = config.session
        # Output leaving the machine is always redacted; a local model only if configured.
        self.redact = config.redact or provider.remote
        self._current: str | None = None  # id of the command the model is dealing with
        self._records: list[CommandRecord] = []

    # -- the loop -----------------------------------------------------------------------------

    def ask(
        self, question: str, *, new: bool = False, conversation_id: int | None = None
    ) -> Answer:
        conv = self._conversation(question, new, conversation_id)
        history = self._history(conv) if conv is not None else []
        user_turn = self.memory.add_turn(conv, "user", question) if self.memory and conv else None
        self._records = []
        self._current = None
        try:
            reply, steps, stopped = self._loop(question, history)
        except BaseException as exc:
            # Keep the conversation well formed (user, assistant, user…) and the commands.
            self._save(conv, user_turn, f"*(no answer: {type(exc).__name__}: {exc})*")
            raise
        text = reply.text
        if stopped:
            text = (text + "\n\n" if text else "") + (
                f"*Stopped after {self.config.max_steps} model steps without a final answer.*"
            )
        elif not text:
            text = "*(The model gave no answer.)*"
        self._save(conv, user_turn, text)
        return Answer(text, list(self._records), conv, steps, stopped)

    def _loop(
        self, question: str, history: list[tuple[str, str]]
    ) -> tuple[ModelReply, int, str | None]:
        chat: ChatSession = self.provider.start(system_prompt(), TOOLS, history)
        with self.ui.thinking():
            reply = chat.send(question)
        steps = 1
        while reply.calls:
            if steps >= self.config.max_steps:
                return reply, steps, "step_limit"
            results = [ToolResult(call, self._dispatch(call)) for call in reply.calls]
            with self.ui.thinking():
                reply = chat.send_tool_results(results)
            steps += 1
        return reply, steps, None

    def _save(self, conv: int | None, user_turn: int | None, text: str) -> None:
        if self.memory is None or conv is None:
            return
        for record in self._records:
            self.memory.add_command(conv, user_turn, record)
        self.memory.add_turn(conv, "assistant", text)

    def stop(self) -> None:
        """Interrupt the command this brain is running, if any (e.g. on ^C)."""
        if self._current is None:
            return
        with contextlib.suppress(ArchyError):
            if self.client.status(session=self.session).command_id == self._current:
                self.client.interrupt(id=self._current)

    def _conversation(self, question: str, new: bool, conversation_id: int | None) -> int | None:
        if self.memory is None:
            return None
        if conversation_id is not None:
            return conversation_id
        if not new:
            recent = self.memory.recent_conversation(self.config.continue_minutes)
            if recent is not None:
                return recent.id
        return self.memory.new_conversation(question, self.provider.name, self.provider.model)

    def _history(self, conv: int) -> list[tuple[str, str]]:
        assert self.memory is not None
        turns = self.memory.turns(conv, last=self.config.history_turns)
        out: list[tuple[str, str]] = []
        ran: list[CommandRecord] = []
        for turn in turns:
            if turn.role == "user":
                ran = self.memory.commands(conv, turn_id=turn.id)
                out.append(("user", turn.text))
            else:
                text = turn.text
                if ran:
                    summary = "; ".join(f"`{r.command}` → {_outcome(r)}" for r in ran)
                    text = f"{text}\n\n(Commands run for this answer: {summary})"
                out.append(("assistant", text))
        # A conversation must not start with an assistant turn or end with a user turn.
        while out and out[0][0] != "user":
            out.pop(0)
        if out and out[-1][0] == "user":
            out.pop()
        return out

    # -- tools --------------------------------------------------------------------------------

    def _dispatch(self, call: ToolCall) -> dict[str, Any]:
        handlers = {
            "run_command": self._run_command,
            "read_terminal": self._read_terminal,
            "answer_prompt": self._answer_prompt,
            "wait_for_command": self._wait_for_command,
            "interrupt": self._interrupt,
            "open_terminal": self._open_terminal,
        }
        handler = handlers.get(call.name)
        if handler is None:
            return {"error": f"unknown tool {call.name!r}; use one of {', '.join(handlers)}"}
        try:
            return handler(call.args)
        except RpcError as exc:
            return {"error": exc.message, "code": exc.code, "kind": exc.name}
        except ArchyError as exc:
            return {"error": str(exc)}

    def _timeout(self, args: dict[str, Any]) -> float:
        try:
            value = float(args.get("timeout_seconds") or self.config.command_timeout)
        except (TypeError, ValueError):
            value = self.config.command_timeout
        return max(1.0, min(value, 600.0))

    def _run_command(self, args: dict[str, Any]) -> dict[str, Any]:
        command = str(args.get("command") or "").strip()
        if not command:
            return {"error": "command is empty"}
        verdict = classify(command)
        if not self._allowed(command, verdict):
            self._record(
                CommandRecord(
                    command, "declined", verdict.risk, detail=verdict.reason, session=self.session
                )
            )
            return {
                "status": "declined",
                "message": "The user declined to run this command. Do not run it another "
                "way; ask or explain instead.",
            }
        self.ui.command_started(command, verdict)
        try:
            started = self.client.execute(command, session=self.session, wait=False)
        except RefusedByPolicy as exc:
            self.ui.refused(command, exc.rule, exc.message)
            self._record(
                CommandRecord(
                    command,
                    "refused",
                    verdict.risk,
                    session=self.session,
                    detail=f"rule {exc.rule}: {exc.message}",
                )
            )
            return {
                "status": "refused_by_policy",
                "rule": exc.rule,
                "message": exc.message,
                "note": "The executor's safety policy forbids this command. Do not try to "
                "get around it; tell the user.",
            }
        except SessionBusy as exc:
            return {
                "status": "session_busy",
                "running_id": exc.running_id,
                "message": "Another command is still running in the session: use "
                "wait_for_command, answer_prompt or interrupt first.",
            }
        except RpcError as exc:
            self._record(
                CommandRecord(
                    command,
                    "failed",
                    verdict.risk,
                    session=self.session,
                    detail=f"{exc.name}: {exc.message}",
                )
            )
            self.ui.notice(f"executor error: {exc.message}")
            return {"status": "error", "code": exc.code, "message": exc.message}
        self._current = started.id
        result = self._follow(started, self._timeout(args))
        return self._finish(command, verdict.risk, result)

    def _allowed(self, command: str, verdict: Classification) -> bool:
        mode = self.config.confirm
        if mode == "never":
            return True
        if verdict.risk is Risk.READ_ONLY and mode != "always":
            return True
        if verdict.risk is Risk.CHANGES and (mode == "dangerous" or self.yes):
            return True
        return self.ui.confirm(command, verdict)

    def _follow(self, result: CommandResult, timeout: float) -> CommandResult:
        """Stream a live command to the UI until it ends, waits for input or ``timeout``;
        hand password prompts to the user on the way."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if result.state is CommandState.RUNNING:
                if left <= 0:
                    return result
                result, _ = self._wait_streaming(result.id, left)
                if result.state is CommandState.RUNNING:
                    return result  # timed out: the model hears it is still running
            elif result.state is CommandState.WAITING_FOR_INPUT and looks_like_password_prompt(
                result.prompt
            ):
                secret = self.ui.ask_secret((result.prompt or "Password:").strip())
                if secret is None:
                    self.ui.notice("no password given; interrupting the command")

                    def send_signal(command_id: str = result.id) -> None:
                        self.client.interrupt(id=command_id)

                    return self._wait_streaming(result.id, 5.0, send_signal)[0]
                session = result.session

                def type_secret(text: str = secret, session: str = session) -> None:
                    self.client.send_input(text, session=session, secret=True)

                result, moved = self._wait_streaming(result.id, max(left, 5.0), type_secret)
                if not moved:
                    return result  # no sign of life after the answer: let the model decide
            else:
                return result

    def _wait(self, id: str, timeout: float) -> CommandResult:
        return self.client.wait(id, timeout_ms=int(timeout * 1000), max_bytes=_MAX_BYTES)

    def _wait_streaming(
        self, id: str, timeout: float, send: Callable[[], None] | None = None
    ) -> tuple[CommandResult, bool]:
        """Wait for a command while its output streams to the UI.

        With ``send`` (typing an answer), subscribe first, type, and wait for the command to
        show a sign of life (output or its end) before asking for its state: the executor
        reports ``waiting_for_input`` until new output arrives. Returns the result and whether
        any event came.
        """
        deadline = time.monotonic() + timeout
        stream: OutputStream | None = None
        with contextlib.suppress(ArchyError):
            stream = self.client.subscribe_output(id)
        moved = threading.Event()
        pump = None
        if stream is not None:
            pump = threading.Thread(target=self._pump, args=(stream, moved), daemon=True)
            pump.start()
        result: CommandResult | None = None
        try:
            if send is not None:
                send()
                if stream is not None:
                    moved.wait(timeout)
            left = max(0.0, deadline - time.monotonic())
            result = self._wait(id, left)
        finally:
            if stream is not None and pump is not None:
                if result is not None and not result.state.is_live:
                    pump.join(timeout=2.0)  # let the last chunks and the final event arrive
                stream.close()
                pump.join(timeout=2.0)
        return result, moved.is_set() or stream is None

    def _pump(self, stream: OutputStream, moved: threading.Event) -> None:
        with contextlib.suppress(ArchyError):
            for event in stream:
                moved.set()
                if event.data:
                    self.ui.output(event.data)

    def _finish(self, command: str, risk: str, result: CommandResult) -> dict[str, Any]:
        output, note = self._for_model(result)
        record = CommandRecord(
            command,
            "ran",
            risk,
            command_id=result.id,
            session=result.session,
            state=result.state.value,
            exit_code=result.exit_code,
            output=output,
            duration_ms=result.duration_ms,
        )
        self._record(record)
        out: dict[str, Any] = {
            "command": command,
            "id": result.id,
            "state": result.state.value,
            "exit_code": result.exit_code,
            "duration_ms": result.duration_ms,
            "output": output,
        }
        if result.prompt:
            out["prompt"] = redact(result.prompt)[0] if self.redact else result.prompt
        if result.state is CommandState.RUNNING:
            note = (note + " " if note else "") + (
                "The command is still running: use wait_for_command, or interrupt."
            )
        elif result.state is CommandState.WAITING_FOR_INPUT:
            note = (note + " " if note else "") + (
                "The command waits for input: use answer_prompt, or interrupt."
            )
        if note:
            out["note"] = note
        return out

    def _for_model(self, result: CommandResult) -> tuple[str, str]:
        """The output as the model may see it: redacted, head and tail."""
        text = result.output
        notes = []
        limit = self.config.max_output_chars
        if result.truncated:
            # The executor kept the tail; fetch the head so the model sees both ends.
            head = ""
            with contextlib.suppress(ArchyError):
                head = self.client.output(result.id, offset=0, limit=limit // 3).data
            omitted = result.output_bytes - len(head.encode()) - len(text.encode())
            text = f"{head}\n[… {max(omitted, 0)} bytes cut …]\n{text}"
        if self.redact:
            text, n = redact(text)
            if n:
                notes.append(f"{n} secret(s) redacted.")
        text = cut(text, limit)
        return text, " ".join(notes)

    def _record(self, record: CommandRecord) -> None:
        # A command the model follows up on is replaced by its later state.
        if record.command_id:
            self._records = [r for r in self._records if r.command_id != record.command_id]
        self._records.append(record)
        live = record.state is not None and CommandState(record.state).is_live
        if not live:
            self.ui.command_finished(record)

    def _live_record(self, id: str) -> CommandRecord | None:
        return next((r for r in self._records if r.command_id == id), None)

    def _resume(self, timeout: float, send: Callable[[], None] | None = None) -> dict[str, Any]:
        if self._current is None:
            return {"error": "no command is running"}
        previous = self._live_record(self._current)
        deadline = time.monotonic() + timeout
        try:
            result, _ = self._wait_streaming(self._current, timeout, send)
        except UnknownCommand:
            return {"error": "the command is no longer known to the executor"}
        result = self._follow(result, max(0.0, deadline - time.monotonic()))
        command = previous.command if previous else result.command
        risk = previous.risk if previous else ""
        return self._finish(command, risk, result)

    def _wait_for_command(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._resume(self._timeout(args))

    def _answer_prompt(self, args: dict[str, Any]) -> dict[str, Any]:
        text = str(args.get("text") or "")
        status = self.client.status(session=self.session)
        if status.prompt and looks_like_password_prompt(status.prompt):
            return {
                "error": "that prompt asks for a secret; only the user answers it",
                **self._resume(self.config.command_timeout),
            }
        if status.command_id:
            self._current = status.command_id
        if self._current is None:
            return {"error": "no command is waiting for input"}

        def type_answer() -> None:
            self.client.send_input(text, session=self.session)

        return self._resume(self.config.command_timeout, type_answer)

    def _interrupt(self, args: dict[str, Any]) -> dict[str, Any]:
        signal = str(args.get("signal") or "INT").upper()
        running = self.client.status(session=self.session).command_id
        if running is None:
            done = self.client.interrupt(session=self.session, signal=signal)
            return {"interrupted": done.id, "signal": done.signal, "note": "nothing was running"}
        self._current = running

        def send_signal() -> None:
            self.client.interrupt(session=self.session, signal=signal)

        return self._resume(5.0, send_signal)

    def _read_terminal(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            lines = int(args.get("lines") or 50)
        except (TypeError, ValueError):
            lines = 50
        try:
            shown = self.client.capture(session=self.session, lines=max(1, min(lines, 2000)))
        except SessionNotFound:
            return {"output": "", "note": "the session does not exist yet (nothing ran)"}
        text = shown.output
        if self.redact:
            text = redact(text)[0]
        return {"output": cut(text, self.config.max_output_chars), "lines": shown.lines}

    def _open_terminal(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            opened = self.client.open_terminal(session=self.session)
        except NoTerminal as exc:
            return {
                "error": exc.message,
                "tried": exc.tried,
                "note": "No terminal program was found; the user can run `archy open` "
                "after installing one (foot, kitty, alacritty, …).",
            }
        self.ui.notice(f"opened {opened.terminal} on the session")
        return {"opened": opened.terminal, "pid": opened.pid}


_MAX_BYTES = 256 * 1024


def _outcome(r: CommandRecord) -> str:
    if r.outcome == "ran":
        return f"exit {r.exit_code}" if r.state == "exited" else (r.state or "ran")
    return r.outcome


def summarize(records: Sequence[CommandRecord]) -> Iterator[str]:
    for r in records:
        yield f"{r.command}  ({_outcome(r)})"
