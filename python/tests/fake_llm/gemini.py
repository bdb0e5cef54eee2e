"""The Gemini API's ``generateContent`` REST method (what google-genai sends and parses).

``POST /{version}/models/{model}:generateContent`` with the key in ``x-goog-api-key``; the reply
carries ``candidates[0].content.parts`` with ``text`` or ``functionCall`` parts, and the next
request must carry the matching ``functionResponse`` parts.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from .server import Reply, Request, ScriptedServer

_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 500: "INTERNAL"}


class FakeGemini(ScriptedServer):
    def __init__(self, script: list[Reply] | None = None, api_key: str = "test-key") -> None:
        super().__init__(script)
        self.api_key = api_key
        self._ids = itertools.count(1)

    def route(self, req: Request) -> tuple[int, dict[str, Any]] | None:
        if not _PATH.match(req.path.split("?")[0]):
            return 404, self.error_body(404, f"no such method {req.path}")
        if req.headers.get("x-goog-api-key") != self.api_key:
            return 401, self.error_body(401, "API key not valid")
        if not isinstance(req.body.get("contents"), list) or not req.body["contents"]:
            return 400, self.error_body(400, "contents is required")
        return None

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
        }

    def model(self, index: int = 0) -> str:
        m = _PATH.match(self.requests[index].path.split("?")[0])
        return m.group(2) if m else ""

    # -- replies --------------------------------------------------------------------------

    @staticmethod
    def _candidate(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
        return {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "totalTokenCount": 15,
            },
            "modelVersion": "fake-gemini",
        }

    @classmethod
    def text(cls, text: str) -> dict[str, Any]:
        return cls._candidate([{"text": text}])

    @classmethod
    def call(
        cls, name: str, args: dict[str, Any] | None = None, *, with_id: bool = False
    ) -> dict[str, Any]:
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args or {}}}
        if with_id:
            part["functionCall"]["id"] = f"call-{name}"
        return cls._candidate([part])

    @classmethod
    def calls(cls, *calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        return cls._candidate([{"functionCall": {"name": n, "args": a}} for n, a in calls])


def function_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``functionResponse`` parts of a request's last content."""
    last = body["contents"][-1]
    return [p["functionResponse"] for p in last.get("parts", []) if "functionResponse" in p]
