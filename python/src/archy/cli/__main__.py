"""Entry point: ``archy [options] "question"``, ``archy`` (chat) or ``archy COMMAND``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from .. import __version__
from .common import common_parser

Handler = Callable[[argparse.Namespace], int]

USAGE = """\
archy [options] "QUESTION"     ask once (continues the recent conversation unless --new)
archy [options]                chat
archy run [-s S] -- COMMAND    run a command through the executor, exit with its status
archy open | close             open / close a terminal window on the session
archy history [ID]             past conversations and commands
archy doctor                   check the setup and say how to fix it"""

# name: (help, module, handler, argument adder or None). Modules load on use: a quick
# `archy run` should not pay for prompt_toolkit or the model SDKs.
COMMANDS: dict[str, tuple[str, str, str, str | None]] = {
    "run": ("run a command through the executor (no model)", "run", "run", "add_arguments"),
    "open": ("open a terminal window on the session", "terminal", "open_", "add_open_arguments"),
    "close": ("close the terminal windows on the session", "terminal", "close", None),
    "history": ("past conversations and their commands", "history", "run", "add_arguments"),
    "doctor": ("check every part of the setup", "doctor", "run", None),
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"archy.cli.{name}")


def _parser(prog: str, help_: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=help_, parents=[common_parser()])


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # A subcommand is the first word that is not an option; anything else is a question.
    first = next((i for i, a in enumerate(args_list) if not a.startswith("-")), None)
    if first is not None and args_list[first] in COMMANDS and "--" not in args_list[:first]:
        name = args_list[first]
        help_, module_name, handler_name, adder = COMMANDS[name]
        module = _module(module_name)
        parser = _parser(f"archy {name}", help_)
        if adder:
            getattr(module, adder)(parser)
        handler: Handler = getattr(module, handler_name)
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
    ask = _module("ask")
    parser = _parser("archy", "Ask your Linux desktop in plain words.")
    ask.add_brain_options(parser)
    parser.add_argument("question", nargs="*", help="what to ask ('-' reads stdin)")
    parser.add_argument("--version", action="version", version=f"archy {__version__}")
    parser.usage = USAGE
    args = parser.parse_args(args_list)
    if not args.question:
        return int(_module("chat").run(args))
    return int(ask.run(args))


if __name__ == "__main__":
    sys.exit(main())
