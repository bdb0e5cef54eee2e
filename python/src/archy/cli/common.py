"""What every subcommand shares: options, the console, config, client and error reporting."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from ..client import Client
from ..config import BrainConfig, load
from ..errors import ArchyError, ExecutorUnavailable

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the executor could not be reached or started
EXIT_REFUSED = 126  # like a shell's "cannot execute"
EXIT_INTERRUPTED = 130


def common_parser() -> argparse.ArgumentParser:
    """Options every subcommand accepts (before or after its name)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help="print data as JSON")
    p.add_argument("-s", "--session", help="tmux session (default: [brain] session)")
    p.add_argument(
        "--socket",
        help="executor socket (default: $ARCHY_SOCKET, else $XDG_RUNTIME_DIR/archy.sock)",
    )
    return p


def make_console(stderr: bool = False) -> Console:
    # rich honours NO_COLOR and turns styling off when the stream is not a terminal.
    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=True,
        no_color=bool(os.environ.get("NO_COLOR")) or None,
    )


def load_config(args: argparse.Namespace) -> BrainConfig:
    cfg = load()
    if getattr(args, "session", None):
        cfg.session = args.session
    if getattr(args, "provider", None):
        cfg.provider = args.provider
    if getattr(args, "model", None):
        cfg.model = args.model
    if getattr(args, "max_steps", None):
        cfg.max_steps = args.max_steps
    return cfg


def make_client(args: argparse.Namespace) -> Client:
    return Client(getattr(args, "socket", None))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def report_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn our exceptions into a one-paragraph message and an exit code."""

    def wrapper(args: argparse.Namespace) -> int:
        err = make_console(stderr=True)
        try:
            return fn(args)
        except KeyboardInterrupt:
            err.print("\ninterrupted")
            return EXIT_INTERRUPTED
        except ExecutorUnavailable as exc:
            if getattr(args, "json", False):
                print_json({"error": exc.reason, "fix": exc.fix})
            else:
                err.print(f"[bold red]archy:[/] {exc.reason}", markup=True)
                if exc.fix:
                    err.print(f"  fix: {exc.fix}", markup=False)
            return EXIT_UNAVAILABLE
        except ArchyError as exc:
            if getattr(args, "json", False):
                print_json({"error": str(exc)})
            else:
                err.print("[bold red]archy:[/] ", end="", markup=True)
                err.print(str(exc), markup=False)
            return EXIT_ERROR

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
