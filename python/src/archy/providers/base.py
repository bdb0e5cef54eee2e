"""The small interface every model provider implements.

A :class:`Provider` opens a :class:`ChatSession` with a system prompt, the tool declarations and
the earlier turns of the conversation; the session keeps the provider's own message list, so
whatever the model sent (function-call ids, thought signatures) goes back unchanged.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import BrainConfig
from ..errors import ArchyError

__all__ = [
    "ChatSession",
    "MissingKey",
    "ModelReply",
    "Provider",
    "ProviderError",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
]


class ProviderError(ArchyError):
    """The model's service failed (network, HTTP status, malformed answer)."""


class MissingKey(ProviderError):
    """No API key; the message names the exact variable or setting to fix it."""


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]
    #: The provider's call id (OpenAI always; Gemini sometimes), echoed in the result.
    id: str | None = None


@dataclass(frozen=True)
class ToolResult:
    call: ToolCall
    response: dict[str, Any]


@dataclass
class ModelReply:
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)


class ChatSession(ABC):
    @abstractmethod
    def send(self, text: str) -> ModelReply:
        """Send the user's message; the reply may ask for tool calls."""

    @abstractmethod
    def send_tool_results(self, results: Sequence[ToolResult]) -> ModelReply:
        """Answer every call of the last reply."""


class Provider(ABC):
    """A model service. Subclasses set ``name`` and ``key_env_vars``."""

    name: ClassVar[str]
    #: Variables the key is read from, in order; the first names the fix in errors.
    key_env_vars: ClassVar[tuple[str, ...]] = ()
    #: Whether a key is required (a local OpenAI-compatible server needs none).
    needs_key: ClassVar[bool] = True
    #: Whether output leaves this machine (then it is always redacted).
    remote: bool = True

    def __init__(self, config: BrainConfig) -> None:
        self.config = config
        self.model = config.model_name

    def api_key(self) -> str | None:
        if self.config.api_key:
            return self.config.api_key
        for var in self.key_env_vars:
            if os.environ.get(var):
                return os.environ[var]
        return None

    def require_key(self) -> str:
        key = self.api_key()
        if not key:
            raise MissingKey(
                f"no API key for {self.name}: set {self.key_env_vars[0]}"
                + (f" (or {', '.join(self.key_env_vars[1:])})" if self.key_env_vars[1:] else "")
                + ", or api_key in the [brain] section of config.toml"
            )
        return key

    @abstractmethod
    def start(
        self, system: str, tools: Sequence[ToolSpec], history: Sequence[tuple[str, str]]
    ) -> ChatSession:
        """A chat primed with ``history``: (role, text) pairs, role ``user`` or ``assistant``."""

    def describe(self) -> str:
        return f"{self.name} {self.model}"
