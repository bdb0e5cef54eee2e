"""``archy "question"``: ask once (continuing the recent conversation unless ``--new``)."""

from __future__ import annotations

import argparse
import sys

from ..brain import Brain
from ..memory import Memory
from ..providers import get_provider
from .common import load_config, make_client, make_console, print_json, report_errors
from .ui import TerminalUI, show_answer


def add_brain_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="run commands that change the system without asking (dangerous ones still ask)",
    )
    p.add_argument("--new", action="store_true", help="start a new conversation")
    p.add_argument("--provider", choices=["gemini", "openai"], help="model provider")
    p.add_argument("-m", "--model", help="model name")
    p.add_argument("--max-steps", type=int, help="most model round trips")


def build_brain(args: argparse.Namespace, ui: TerminalUI) -> tuple[Brain, Memory]:
    cfg = load_config(args)
    provider = get_provider(cfg)
    if provider.remote:
        provider.require_key()  # fail before anything runs, naming the variable to set
    memory = Memory()
    brain = Brain(make_client(args), provider, cfg, memory=memory, ui=ui, yes=args.yes)
    return brain, memory


@report_errors
def run(args: argparse.Namespace) -> int:
    question = " ".join(args.question).strip()
    if question == "-" or (not question and not sys.stdin.isatty()):
        question = sys.stdin.read().strip()
    if not question:
        print("archy: empty question", file=sys.stderr)
        return 2
    console = make_console()
    ui = TerminalUI(console, quiet=args.json)
    brain, memory = build_brain(args, ui)
    with memory, brain.client:
        try:
            answer = brain.ask(question, new=args.new)
        except KeyboardInterrupt:
            brain.stop()  # ^C stops the command the model started, as in a terminal
            raise
    if args.json:
        print_json(answer.to_json())
    else:
        show_answer(console, answer)
    return 0 if not answer.stopped else 1
