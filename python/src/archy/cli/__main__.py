"""Entry point: ``archy [options] "question"``, ``archy`` (chat) or ``archy COMMAND``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from . import ask, chat, doctor, history, run, terminal
from .common import common_parser

Handler = Callable[[argparse.Namespace], int]

USAGE = """\
archy [options] "QUESTION"     ask once (continues the recent conversation unless --new)
archy [options]                chat
archy run [-s S] -- COMMAND    run a command through the executor, exit with its status
archy open | close             open / close a terminal window on the session
archy history [ID]             past conversations and commands
archy doctor                   check the setup and say how to fix it"""


def _parser(
    prog: str,
    help_: str,
    add: Callable[[argparse.ArgumentParser], None] | None,
    brain: bool = False,
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=help_, parents=[common_parser()])
    if brain:
        ask.add_brain_options(p)
    if add:
        add(p)
    return p


def _ask_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="*", help="what to ask ('-' reads stdin)")
    p.add_argument("--version", action="version", version=f"archy {__version__}")


def _terminal_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--terminal", help="terminal program (default: the executor's choice)")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None, Handler]] = {
    "run": ("run a command through the executor (no model)", run.add_arguments, run.run),
    "open": ("open a terminal window on the session", _terminal_args, terminal.open_),
    "close": ("close the terminal windows on the session", None, terminal.close),
    "history": ("past conversations and their commands", history.add_arguments, history.run),
    "doctor": ("check every part of the setup", None, doctor.run),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # A subcommand is the first word that is not an option; anything else is a question.
    first = next((i for i, a in enumerate(args_list) if not a.startswith("-")), None)
    if first is not None and args_list[first] in COMMANDS and "--" not in args_list[:first]:
        name = args_list[first]
        help_, add, handler = COMMANDS[name]
        parser = _parser(f"archy {name}", help_, add)
        rest = args_list[:first] + args_list[first + 1 :]
        if name == "run":
            # Everything after `--` (or the first word) is the command, options included.
            opts, cmd = (
                (rest[: rest.index("--")], rest[rest.index("--") + 1 :])
                if "--" in rest
                else (rest, [])
            )
            args = parser.parse_args(opts + (["--", *cmd] if cmd else []))
            args.command = cmd or [a for a in args.command if a != "--"]
        else:
            args = parser.parse_args(rest)
        return handler(args)
    parser = _parser("archy", "Ask your Linux desktop in plain words.", _ask_args, brain=True)
    parser.usage = USAGE
    args = parser.parse_args(args_list)
    if not args.question:
        return chat.run(args)
    return ask.run(args)


if __name__ == "__main__":
    sys.exit(main())
