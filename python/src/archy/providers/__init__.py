"""Model providers behind one small interface (:mod:`archy.providers.base`)."""

from __future__ import annotations

from ..config import BrainConfig
from .base import (
    ChatSession,
    MissingKey,
    ModelReply,
    Provider,
    ProviderError,
    ToolCall,
    ToolResult,
    ToolSpec,
)

__all__ = [
    "ChatSession",
    "MissingKey",
    "ModelReply",
    "Provider",
    "ProviderError",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "get_provider",
]


def get_provider(config: BrainConfig) -> Provider:
    """The provider the config names (SDKs are imported only when used)."""
    if config.provider == "gemini":
        from .gemini import GeminiProvider

        return GeminiProvider(config)
    if config.provider == "openai":
        from .openai_compat import OpenAIProvider

        return OpenAIProvider(config)
    raise ProviderError(f"unknown provider {config.provider!r} (gemini or openai)")
