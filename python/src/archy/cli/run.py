"""``archy run -- CMD``: run a command through the executor directly (no model).

Output streams live; the exit status is the command's. A password prompt is read without echo
and sent with ``secret: true``; another prompt is answered with a line from the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import shlex
import sys
import threading

from rich.text import Text

from ..client import Client, OutputStream
from ..errors import ArchyError, RefusedByPolicy
from ..safety import looks_like_password_prompt
from ..types import CommandResult, CommandState
from .common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    make_client,
    make_console,
    print_json,
    report_errors,
)
from .ui import stdin_is_terminal


def command_line(words: list[str]) -> str:
    """One word is a command line as typed; several are argv, quoted for the shell."""
    if words and words[0] == "--":
        words = words[1:]
    return words[0] if len(words) == 1 else shlex.join(words)


class _Printer:
    """Prints a command's output exactly once and in order.

    Stream events only say "there is more": the text itself is paged with ``output {id,
    offset}``, so chunks a slow terminal made the daemon drop, or output made before the
    subscription began, are never lost.
    """

    PAGE = 1 << 20

    def __init__(self, client: Client, id: str, show: bool) -> None:
        self.client = client
        self.id = id
        self.show = show
        self.offset = 0
        self._lock = threading.Lock()

    def catch_up(self) -> bool:
        """Print everything new; True once the whole output is printed and complete."""
        if not self.show:
            return True
        with self._lock:
            while True:
                page = self.client.output(self.id, offset=self.offset, limit=self.PAGE)
                if page.data:
                    sys.stdout.write(page.data)
                    sys.stdout.flush()
                    self.offset += len(page.data.encode())
                if page.complete or not page.data:
                    return page.complete

    def pump(self, stream: OutputStream, moved: threading.Event) -> None:
        try:
            for _ in stream:
                moved.set()
                self.catch_up()
        except ArchyError:
            pass

    def rest(self) -> None:
        with contextlib.suppress(ArchyError):
            self.catch_up()


def _answer(result: CommandResult) -> tuple[str, bool] | None:
    """Ask the person at the terminal for what the command waits for; None if no one is."""
    prompt = (result.prompt or "").rstrip()
    if not stdin_is_terminal():
        sys.stderr.write(
            f"archy: the command waits for input ({prompt!r}) and there is no terminal; "
            "interrupting it\n"
        )
        return None
    if looks_like_password_prompt(prompt):
        return getpass.getpass(f"{prompt} "), True
    return input(f"{prompt} " if prompt else "input> "), False


def _interrupt(client: Client, result: CommandResult) -> CommandResult:
    """Interrupt and wait for the command to react (subscribed first, so nothing is missed)."""
    try:
        stream = client.subscribe_output(result.id)
    except ArchyError:
        client.interrupt(id=result.id)
        return client.wait(result.id, timeout_ms=5000)
    with stream:
        client.interrupt(id=result.id)
        event = stream.next(timeout=5.0)
        if event is not None and event.result is not None:
            return event.result
    return client.wait(result.id, timeout_ms=5000)


def follow(
    client: Client, result: CommandResult, printer: _Printer, timeout: float | None
) -> CommandResult:
    """Stream the command until it ends (or ``timeout``), answering its prompts."""
    while result.state.is_live:
        answer = None
        if result.state is CommandState.WAITING_FOR_INPUT:
            answer = _answer(result)
            if answer is None:
                return _interrupt(client, result)
        moved = threading.Event()
        stream = None
        try:
            stream = client.subscribe_output(result.id)
        except ArchyError:
            stream = None
        pump = None
        if stream is not None:
            pump = threading.Thread(target=printer.pump, args=(stream, moved), daemon=True)
            pump.start()
        new = None
        try:
            if answer is not None:
                client.send_input(answer[0], session=result.session, secret=answer[1] or None)
                # The executor says "waiting" until the command prints again.
                moved.wait(timeout)
            new = client.wait(
                result.id,
                timeout_ms=int((timeout or 3600) * 1000),
                max_bytes=16 * 1024 * 1024,
            )
        finally:
            if stream is not None and pump is not None:
                if new is not None and not new.state.is_live:
                    pump.join(timeout=2.0)
                stream.close()
                pump.join(timeout=2.0)
        result = new
        if timeout is not None and result.state is CommandState.RUNNING:
            break
    return result


@report_errors
def run(args: argparse.Namespace) -> int:
    command = command_line(args.command)
    if not command.strip():
        print("usage: archy run [-s SESSION] [--timeout SECS] -- COMMAND…", file=sys.stderr)
        return 2
    client = make_client(args)
    err = make_console(stderr=True)
    with client:
        try:
            result = client.execute(
                command, session=args.session, wait=False, queue=args.queue or None, cwd=args.cwd
            )
        except RefusedByPolicy as exc:
            if args.json:
                print_json({"error": exc.to_json()})
            else:
                err.print(
                    Text(
                        f"archy: refused by the executor's policy (rule {exc.rule}): {exc.message}",
                        style="bold red",
                    )
                )
            return EXIT_REFUSED
        printer = _Printer(client, result.id, show=not args.json)
        try:
            result = follow(client, result, printer, args.timeout)
        except KeyboardInterrupt:
            client.interrupt(id=result.id)
            return EXIT_INTERRUPTED
        if args.json:
            print_json(result.to_json())
        else:
            printer.rest()
    if result.state is CommandState.EXITED and result.exit_code is not None:
        return result.exit_code
    if result.state is CommandState.INTERRUPTED:
        return EXIT_INTERRUPTED
    if not args.json:
        err.print(
            Text(
                f"archy: {result.id} is still {result.state.value} after "
                f"{args.timeout} s (it keeps running)",
                style="yellow",
            )
        )
    return EXIT_ERROR


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, help="stop waiting after SECS (it keeps running)")
    p.add_argument("--queue", action="store_true", help="wait for a busy session")
    p.add_argument("--cwd", help="directory to run in (persists, like cd)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")
