"""The terminal side of the brain: spinner, confirmations, password hand-off, live output."""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.text import Text

from ..brain import Answer
from ..memory import CommandRecord
from ..safety import Classification, Risk

RISK_STYLE = {Risk.READ_ONLY: "green", Risk.CHANGES: "yellow", Risk.DANGEROUS: "bold red"}


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def outcome_text(record: CommandRecord) -> Text:
    if record.outcome == "ran":
        if record.state == "exited":
            ok = record.exit_code == 0
            mark = "✓" if ok else "✗"
            t = Text(f"{mark} exit {record.exit_code}", style="green" if ok else "red")
        else:
            t = Text(f"… {record.state}", style="yellow")
        if record.duration_ms is not None:
            t.append(f" · {record.duration_ms} ms", style="dim")
        return t
    style = {"declined": "yellow", "refused": "bold red", "failed": "red"}.get(record.outcome)
    return Text(
        f"✗ {record.outcome}" + (f" ({record.detail})" if record.detail else ""),
        style=style or "red",
    )


class TerminalUI:
    """Implements :class:`archy.brain.UI` for a person at a terminal (or a pipe)."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet  # --json: nothing but the final JSON on stdout
        self.err = Console(
            stderr=True, highlight=False, soft_wrap=True, no_color=console.no_color or None
        )
        self._streamed = False
        self._ends_newline = True

    @property
    def _out(self) -> Console:
        return self.err if self.quiet else self.console

    @contextlib.contextmanager
    def thinking(self) -> Iterator[None]:
        if self._out.is_terminal and not self._out.is_dumb_terminal:
            with self._out.status("Thinking…", spinner="dots"):
                yield
        else:
            yield

    def confirm(self, command: str, classification: Classification) -> bool:
        out = self._out
        style = RISK_STYLE[classification.risk]
        out.print(
            Text.assemble(
                ("The model wants to run ", ""),
                (classification.risk.value.replace("_", "-"), style),
                (f" ({classification.reason}):", ""),
            )
        )
        out.print(Text(f"  $ {command}", style="bold"))
        if not stdin_is_terminal():
            out.print(
                Text(
                    "  not run: no terminal to confirm on (use --yes, or confirm = "
                    '"never" in [brain])',
                    style="yellow",
                )
            )
            return False
        word = "yes" if classification.risk is Risk.DANGEROUS else "y"
        question = "  Type 'yes' to run it: " if word == "yes" else "  Run it? [y/N] "
        try:
            answer = out.input(question, markup=False).strip().lower()
        except EOFError:
            return False
        return answer == "yes" or (word == "y" and answer == "y")

    def ask_secret(self, prompt: str) -> str | None:
        if not stdin_is_terminal():
            self._out.print(
                Text(
                    "A command asks for a password, but there is no terminal to type it on.",
                    style="yellow",
                )
            )
            return None
        self._newline()
        self._out.print(
            Text(
                "The command asks for a password. It is typed into the command "
                "only, never sent to the model.",
                style="cyan",
            )
        )
        try:
            return getpass.getpass(f"{prompt.rstrip()} ")
        except (EOFError, KeyboardInterrupt):
            return None

    def command_started(self, command: str, classification: Classification) -> None:
        self._streamed = False
        self._out.print(Text.assemble(("$ ", "dim"), (command, "bold")))

    def output(self, chunk: str) -> None:
        if self.quiet or not self.console.is_terminal:
            return
        self._streamed = True
        self.console.file.write(chunk)
        self.console.file.flush()
        self._ends_newline = chunk.endswith("\n")

    def _newline(self) -> None:
        if not self._ends_newline:
            self.console.file.write("\n")
            self._ends_newline = True

    def command_finished(self, record: CommandRecord) -> None:
        self._newline()
        if (
            record.outcome == "ran"
            and not self._streamed
            and record.output.strip()
            and not self.quiet
            and self.console.is_terminal
        ):
            lines = record.output.rstrip("\n").splitlines()
            shown = lines[-15:]
            if len(lines) > 15:
                self._out.print(Text(f"  … {len(lines) - 15} more lines", style="dim"))
            for line in shown:
                self._out.print(Text(line, style="dim"))
        self._out.print(Text.assemble(("  ", ""), outcome_text(record)))
        self._streamed = False

    def refused(self, command: str, rule: str | None, message: str) -> None:
        self._out.print(
            Text(
                f"  refused by the executor's policy (rule {rule or '?'}): {message}",
                style="bold red",
            )
        )

    def notice(self, text: str) -> None:
        self._out.print(Text(text, style="dim"))


def show_answer(console: Console, answer: Answer) -> None:
    from rich.markdown import Markdown  # markdown-it and pygments: only when answering

    console.print()
    console.print(Markdown(answer.text))
    if answer.commands:
        console.print()
        console.print(Text("Commands:", style="bold"))
        for r in answer.commands:
            console.print(
                Text.assemble(("  $ ", "dim"), (r.command, ""), ("  ", ""), outcome_text(r))
            )
