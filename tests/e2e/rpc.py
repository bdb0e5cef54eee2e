"""The smallest JSON-RPC 2.0 client for Archy's socket: stdlib only, one JSON value per line.

Run by the e2e tests as the test user (the daemon refuses other uids):
    python3 rpc.py METHOD [PARAMS_JSON]
prints one JSON object: {"result": ..., "error": ..., "connect_ms": ..., "total_ms": ...}
and exits 0 when the call returned a result, 1 on a JSON-RPC error.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any


def socket_path() -> str:
    return os.environ.get("ARCHY_SOCKET") or os.path.join(os.environ["XDG_RUNTIME_DIR"], "archy.sock")


def call(method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
    t0 = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path())
        t1 = time.perf_counter()
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("rb") as f:
            line = f.readline()
    t2 = time.perf_counter()
    if not line:
        raise ConnectionError(f"{method}: the daemon closed the connection without replying")
    reply = json.loads(line)
    return {
        "result": reply.get("result"),
        "error": reply.get("error"),
        "connect_ms": round((t1 - t0) * 1000, 3),
        "total_ms": round((t2 - t0) * 1000, 3),
    }


def main() -> int:
    method = sys.argv[1]
    params = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    out = call(method, params)
    print(json.dumps(out))
    return 1 if out["error"] is not None else 0


if __name__ == "__main__":
    sys.exit(main())
