#!/usr/bin/env python3
"""Compare executor builds (or settings) on `execute`, alternating them so both see the same
machine: each round starts a private daemon per build, times N commands on it, and stops it.

    benches/ab.py [--rounds 3] [--cmd true] [--n 500] BUILD_A BUILD_B ...
    ARCHY_LOG_TEST=warn benches/ab.py ...     # the daemons' log level

A build is a path to an `archy-executor` binary. Prints each round's median per build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import ms, timed  # benches/ is on sys.path when this file runs

import harness  # bench.py put tests/reliability on sys.path


def median_ms(binary: Path, cmd: str, n: int) -> float:
    harness.BINARY = binary
    d = harness.Daemon(config={"history": 1000}, tmpfs_runtime=True).start()
    try:
        c = d.client()

        def run() -> None:
            r = c.call("execute", command=cmd)
            if r["exit_code"] != 0:
                raise SystemExit(f"{binary}: {cmd!r} exited {r['exit_code']}: {r['output']}")

        return ms(timed(run, n, 20))["median_ms"]
    finally:
        d.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cmd", default="true")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("builds", nargs="+", type=Path)
    a = ap.parse_args()
    for r in range(a.rounds):
        row = [f"{b}: {median_ms(b, a.cmd, a.n):.3f} ms" for b in a.builds]
        print(f"round {r + 1}: " + "; ".join(row), flush=True)


if __name__ == "__main__":
    main()
