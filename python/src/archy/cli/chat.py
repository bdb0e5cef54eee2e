"""``archy`` alone: a chat with line editing and history (prompt_toolkit)."""

from __future__ import annotations

import argparse
import sys

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from rich.text import Text

from ..config import state_dir
from ..errors import ArchyError
from ..providers import ProviderError
from .ask import build_brain
from .common import make_console, report_errors
from .ui import TerminalUI, show_answer

HELP = "Ask anything about this machine. /new starts over, /exit (or Ctrl-D) leaves."


@report_errors
def run(args: argparse.Namespace) -> int:
    if not sys.stdin.isatty():
        from . import ask

        return ask.run(args)
    console = make_console()
    ui = TerminalUI(console)
    brain, memory = build_brain(args, ui)
    directory = state_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(directory / "chat_history"))
    )
    conversation = None
    if not args.new:
        recent = memory.recent_conversation(brain.config.continue_minutes)
        if recent:
            conversation = recent.id
            console.print(
                Text(
                    f"Continuing conversation {recent.id} (“{recent.title[:50]}”); "
                    "/new starts over.",
                    style="dim",
                )
            )
    console.print(Text(f"{HELP} Model: {brain.provider.describe()}.", style="dim"))
    with memory, brain.client:
        while True:
            try:
                line = session.prompt("archy> ").strip()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not line:
                continue
            if line in ("/exit", "/quit", "exit", "quit"):
                break
            if line == "/new":
                conversation = None
                console.print(Text("New conversation.", style="dim"))
                continue
            if line in ("/help", "?"):
                console.print(HELP)
                continue
            try:
                if conversation is None:
                    answer = brain.ask(line, new=True)
                else:
                    answer = brain.ask(line, conversation_id=conversation)
                conversation = answer.conversation_id
                show_answer(console, answer)
            except KeyboardInterrupt:
                brain.stop()
                console.print(Text("interrupted", style="yellow"))
            except (ProviderError, ArchyError) as exc:
                console.print(Text(f"archy: {exc}", style="red"))
            console.print()
    return 0
