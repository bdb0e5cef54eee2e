"""OpenAI's chat-completions API (``POST {base}/chat/completions``) with ``tool_calls``."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from .server import Reply, Request, ScriptedServer


class FakeOpenAI(ScriptedServer):
    def __init__(self, script: list[Reply] | None = None, api_key: str | None = "test-key"):
        super().__init__(script)
        self.api_key = api_key
        self._ids = itertools.count(1)

    def route(self, req: Request) -> tuple[int, dict[str, Any]] | None:
        if req.path.split("?")[0] not in ("/v1/chat/completions", "/chat/completions"):
            return 404, self.error_body(404, f"no route {req.path}")
        if self.api_key and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, self.error_body(401, "Incorrect API key provided")
        if not isinstance(req.body.get("messages"), list):
            return 400, self.error_body(400, "messages is required")
        return None

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "code": status}}

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def wrap(self, body: dict[str, Any]) -> dict[str, Any]:
        message = body
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    @staticmethod
    def text(text: str) -> dict[str, Any]:
        return {"role": "assistant", "content": text}

    @staticmethod
    def call(
        name: str, args: dict[str, Any] | None = None, call_id: str = "call_1"
    ) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args or {})},
                }
            ],
        }


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool`` messages at the end of a request (contents decoded from JSON)."""
    out = []
    for m in reversed(body["messages"]):
        if m.get("role") != "tool":
            break
        out.append({**m, "content": json.loads(m["content"])})
    return list(reversed(out))
