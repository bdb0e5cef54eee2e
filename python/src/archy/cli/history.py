"""``archy history``: past conversations, their turns and every command with its result."""

from __future__ import annotations

import argparse
import time

from rich.text import Text

from ..memory import Memory
from .common import make_console, print_json, report_errors
from .ui import outcome_text


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@report_errors
def run(args: argparse.Namespace) -> int:
    console = make_console()
    with Memory() as memory:
        if args.id is not None:
            convs = [c for c in [memory.conversation(args.id)] if c is not None]
            if not convs:
                console.print(f"no conversation {args.id}")
                return 1
        else:
            convs = list(reversed(memory.conversations(limit=args.limit)))
        data = []
        for conv in convs:
            turns = memory.turns(conv.id)
            commands = memory.commands(conv.id, limit=10_000)
            data.append((conv, turns, commands))
    if args.json:
        print_json(
            [
                {
                    "id": c.id,
                    "started_at": c.started_at,
                    "updated_at": c.updated_at,
                    "title": c.title,
                    "provider": c.provider,
                    "model": c.model,
                    "turns": [{"role": t.role, "text": t.text, "at": t.created_at} for t in turns],
                    "commands": [
                        {
                            "command": r.command,
                            "outcome": r.outcome,
                            "state": r.state,
                            "exit_code": r.exit_code,
                            "duration_ms": r.duration_ms,
                            "id": r.command_id,
                            "risk": r.risk,
                            "detail": r.detail,
                        }
                        for r in commands
                    ],
                }
                for c, turns, commands in data
            ]
        )
        return 0
    if not data:
        console.print("no history yet")
    full = args.id is not None
    for conv, turns, commands in data:
        console.print(
            Text.assemble(
                (f"#{conv.id} ", "bold"),
                (_when(conv.started_at), "dim"),
                ("  ", ""),
                (conv.title, ""),
            )
        )
        for t in turns if full else turns[-4:]:
            who = "you" if t.role == "user" else "archy"
            text = t.text if full else t.text.splitlines()[0][:100] if t.text else ""
            console.print(
                Text.assemble((f"  {who}: ", "cyan" if who == "you" else "green"), (text, ""))
            )
        for r in commands:
            console.print(
                Text.assemble(("    $ ", "dim"), (r.command, ""), ("  ", ""), outcome_text(r))
            )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", type=int, help="show one conversation in full")
    p.add_argument("-n", "--limit", type=int, default=10, help="conversations to list")
