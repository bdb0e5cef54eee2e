"""Local stand-ins for the model services, speaking their real wire formats.

The brain's real SDK code (google-genai, openai) runs against these: only the model is stood
in, never the executor. Each server answers from a script, one entry per request, and keeps
every request (path, headers, JSON body) for the test to inspect.
"""

from __future__ import annotations

from .gemini import FakeGemini, function_responses
from .openai import FakeOpenAI, tool_messages
from .server import Reply, ScriptedServer

__all__ = [
    "FakeGemini",
    "FakeOpenAI",
    "Reply",
    "ScriptedServer",
    "function_responses",
    "tool_messages",
]
