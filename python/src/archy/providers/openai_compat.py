"""Any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, llama.cpp server, vLLM…).

Uses the official ``openai`` SDK with ``tools``/``tool_calls``. The base URL comes from the
config, else ``OPENAI_BASE_URL`` (read by the SDK), else OpenAI's. A server on this machine
needs no key (``local`` is sent) and counts as local, so output is not required to be redacted.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .base import ChatSession, ModelReply, Provider, ProviderError, ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:  # imported when used: the SDK is slow to import
    import openai

__all__ = ["OpenAIProvider"]


def _is_local(url: str | None) -> bool:
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAIProvider(Provider):
    name = "openai"
    key_env_vars = ("OPENAI_API_KEY",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.remote = not _is_local(self.base_url)

    def client(self) -> openai.OpenAI:
        import openai

        key = self.api_key()
        if not key:
            key = "local" if not self.remote else self.require_key()
        return openai.OpenAI(
            api_key=key, base_url=self.base_url, timeout=self.config.request_timeout, max_retries=1
        )

    def start(
        self, system: str, tools: Sequence[ToolSpec], history: Sequence[tuple[str, str]]
    ) -> ChatSession:
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        messages += [{"role": role, "content": text} for role, text in history]
        specs = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in tools
        ]
        return _OpenAIChat(self.client(), self.model, messages, specs, self.config.temperature)


class _OpenAIChat(ChatSession):
    def __init__(
        self,
        client: openai.OpenAI,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        temperature: float | None,
    ) -> None:
        self.client = client
        self.model = model
        self.messages = messages
        self.tools = tools
        self.temperature = temperature

    def _complete(self) -> ModelReply:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": self.messages}
        if self.tools:
            kwargs["tools"] = self.tools
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        try:
            completion = self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise ProviderError(f"{self.model}: HTTP {exc.status_code}: {exc.message}") from exc
        except openai.APIError as exc:
            raise ProviderError(f"{self.model}: {exc.message}") from exc
        if not completion.choices:
            raise ProviderError(f"{self.model} returned no choices")
        message = completion.choices[0].message
        stored: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        reply = ModelReply(text=(message.content or "").strip())
        if message.tool_calls:
            stored["tool_calls"] = []
            for call in message.tool_calls:
                function = getattr(call, "function", None)
                if function is None:
                    continue
                try:
                    args = json.loads(function.arguments or "{}")
                except ValueError:
                    args = {"_unparsed": function.arguments}
                reply.calls.append(
                    ToolCall(
                        name=function.name,
                        args=args if isinstance(args, dict) else {"_value": args},
                        id=call.id,
                    )
                )
                stored["tool_calls"].append(
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": function.name,
                            "arguments": function.arguments or "{}",
                        },
                    }
                )
        self.messages.append(stored)
        return reply

    def send(self, text: str) -> ModelReply:
        self.messages.append({"role": "user", "content": text})
        return self._complete()

    def send_tool_results(self, results: Sequence[ToolResult]) -> ModelReply:
        for r in results:
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": r.call.id or r.call.name,
                    "content": json.dumps(r.response, ensure_ascii=False),
                }
            )
        return self._complete()
