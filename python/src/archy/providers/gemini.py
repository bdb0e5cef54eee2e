"""Gemini through the official ``google-genai`` SDK, with our own function-calling loop.

Automatic function calling is off: the model's ``functionCall`` parts come back to the brain,
which runs them and sends ``functionResponse`` parts. The base URL comes from the config, else
``GOOGLE_GEMINI_BASE_URL`` (read by the SDK itself), else Google's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import ChatSession, ModelReply, Provider, ProviderError, ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:  # the SDK takes seconds to import: only when a question is asked
    from google import genai
    from google.genai import types

__all__ = ["GeminiProvider"]


class GeminiProvider(Provider):
    name = "gemini"
    key_env_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def client(self) -> genai.Client:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(timeout=int(self.config.request_timeout * 1000))
        if self.config.base_url:
            options.base_url = self.config.base_url
        if self.config.api_version:
            options.api_version = self.config.api_version
        options.retry_options = types.HttpRetryOptions(attempts=2)
        return genai.Client(api_key=self.require_key(), http_options=options)

    def start(
        self, system: str, tools: Sequence[ToolSpec], history: Sequence[tuple[str, str]]
    ) -> ChatSession:
        from google.genai import types

        declarations = [
            types.FunctionDeclaration(
                name=t.name, description=t.description, parameters_json_schema=dict(t.parameters)
            )
            for t in tools
        ]
        config = types.GenerateContentConfig(
            system_instruction=system,
            tools=[types.Tool(function_declarations=declarations)] if declarations else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            temperature=self.config.temperature,
        )
        contents = [
            types.Content(
                role="model" if role == "assistant" else "user", parts=[types.Part(text=text)]
            )
            for role, text in history
        ]
        return _GeminiChat(self.client(), self.model, config, contents)


class _GeminiChat(ChatSession):
    def __init__(
        self,
        client: genai.Client,
        model: str,
        config: types.GenerateContentConfig,
        contents: list[types.Content],
    ) -> None:
        self.client = client
        self.model = model
        self.config = config
        self.contents = contents

    def _generate(self) -> ModelReply:
        from google.genai import errors as genai_errors

        try:
            response = self.client.models.generate_content(
                model=self.model, contents=self.contents, config=self.config
            )
        except genai_errors.APIError as exc:
            raise ProviderError(f"Gemini: {exc.code} {exc.message or exc.status}") from exc
        except Exception as exc:  # httpx errors and the like; the SDK wraps few of them
            raise ProviderError(f"Gemini: {type(exc).__name__}: {exc}") from exc
        if not response.candidates:
            feedback = response.prompt_feedback
            why = feedback.block_reason if feedback else "no candidates"
            raise ProviderError(f"Gemini returned no answer ({why})")
        content = response.candidates[0].content
        if content is None or not content.parts:
            reason = response.candidates[0].finish_reason
            raise ProviderError(f"Gemini returned an empty answer (finish reason: {reason})")
        # Keep the model's content exactly (thought signatures included) for the next turn.
        self.contents.append(content)
        reply = ModelReply()
        texts = []
        for part in content.parts:
            if part.function_call is not None and part.function_call.name:
                call = part.function_call
                reply.calls.append(
                    ToolCall(name=call.name or "", args=dict(call.args or {}), id=call.id)
                )
            elif part.text and not part.thought:
                texts.append(part.text)
        reply.text = "".join(texts).strip()
        return reply

    def send(self, text: str) -> ModelReply:
        from google.genai import types

        self.contents.append(types.Content(role="user", parts=[types.Part(text=text)]))
        return self._generate()

    def send_tool_results(self, results: Sequence[ToolResult]) -> ModelReply:
        from google.genai import types

        parts = []
        for r in results:
            response: dict[str, Any] = r.response
            parts.append(
                types.Part(
                    function_response=types.FunctionResponse(
                        id=r.call.id, name=r.call.name, response=response
                    )
                )
            )
        self.contents.append(types.Content(role="user", parts=parts))
        return self._generate()
