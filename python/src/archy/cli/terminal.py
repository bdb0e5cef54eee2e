"""``archy open`` / ``archy close``: the terminal window on the session."""

from __future__ import annotations

import argparse

from .common import make_client, make_console, print_json, report_errors


def add_open_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--terminal", help="terminal program (default: the executor's choice)")


@report_errors
def open_(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        opened = client.open_terminal(session=args.session, terminal=args.terminal)
    if args.json:
        print_json(opened.to_json())
    else:
        make_console().print(f"opened {opened.terminal} (pid {opened.pid})")
    return 0


@report_errors
def close(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        closed = client.close_terminal(session=args.session)
    if args.json:
        print_json(closed.to_json())
    else:
        make_console().print(f"closed {closed.closed} window(s)")
    return 0
