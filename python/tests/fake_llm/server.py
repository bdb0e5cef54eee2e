"""A scripted JSON-over-HTTP server on 127.0.0.1, in a thread (stdlib only)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# A script entry: a response body, or a function of the request body that returns one.
Reply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


class ScriptedServer:
    """Subclasses implement :meth:`route` (is the path right?) and :meth:`error_body`."""

    def __init__(self, script: list[Reply] | None = None) -> None:
        self.script: list[Reply] = list(script or [])
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, server.error_body(400, "body is not JSON"))
                    return
                req = Request(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw
                )
                status, payload = server.handle(req)
                self._send(status, payload)

            def do_GET(self) -> None:
                self._send(404, server.error_body(404, f"no GET {self.path}"))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def handle(self, req: Request) -> tuple[int, dict[str, Any]]:
        problem = self.route(req)
        if problem is not None:
            return problem
        with self._lock:
            self.requests.append(req)
            if not self.script:
                return 500, self.error_body(500, "the test's script has no more replies")
            entry = self.script.pop(0)
        body = entry(req.body) if callable(entry) else entry
        return 200, self.wrap(body)

    def route(self, req: Request) -> tuple[int, dict[str, Any]] | None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def wrap(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def bodies_text(self) -> str:
        """Every request body, as sent, for 'this never left the machine' checks."""
        return "\n".join(r.raw.decode("utf-8", "replace") for r in self.requests)
