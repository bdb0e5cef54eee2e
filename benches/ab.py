#!/usr/bin/env python3
"""Compare executor builds (or settings) on `execute`, alternating them so both see the same
machine: each round starts a private daemon per build, times N commands on it, and stops it.

    benches/ab.py [--rounds 3] [--cmd true] [--n 500] BUILD_A BUILD_B ...
    ARCHY_LOG_TEST=warn benches/ab.py ...     # the daemons' log level

A build is a path to an `archy-executor` binary. Prints each round's median per build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/reliability"))
import harness  # noqa: E402


def median_ms(binary: Path, cmd: str, n: int) -> float:
    harness.BINARY = binary
    d = harness.Daemon(config={"history": 1000}, tmpfs_runtime=True).start()
    try:
        c = d.client()
        for _ in range(20):
            c.call("execute", command=cmd)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            r = c.call("execute", command=cmd)
            times.append((time.perf_counter() - t) * 1000)
            if r["exit_code"] != 0:
                raise SystemExit(f"{binary}: {cmd!r} exited {r['exit_code']}: {r['output']}")
        return statistics.median(times)
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
