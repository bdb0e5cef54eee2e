"""The ``[brain]`` section of Archy's ``config.toml``, with environment overrides.

The file is the executor's (``$ARCHY_CONFIG``, else ``$XDG_CONFIG_HOME/archy/config.toml``); the
brain reads only ``[brain]`` and leaves ``[executor]`` and ``[policy]`` to the daemon. Precedence,
lowest first: defaults, the file, environment variables, command-line flags.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from .errors import ArchyError

__all__ = ["BrainConfig", "ConfigError", "config_path", "load", "state_dir"]

Provider = Literal["gemini", "openai"]
Confirm = Literal["changes", "dangerous", "always", "never"]

DEFAULT_MODELS: dict[str, str] = {
    # Google's alias for the current Flash model.
    "gemini": "gemini-flash-latest",
    "openai": "gpt-4o-mini",
}


class ConfigError(ArchyError):
    """A bad config file or value; the message names the file, key and reason."""


@dataclass
class BrainConfig:
    #: ``gemini`` (google-genai) or ``openai`` (any OpenAI-compatible endpoint).
    provider: Provider = "gemini"
    #: Model name; empty means the provider's default (``DEFAULT_MODELS``).
    model: str = ""
    #: API key; empty means the provider's environment variable.
    api_key: str = field(default="", repr=False)
    #: Endpoint; empty means the SDK's default or its own variable.
    base_url: str = ""
    #: Gemini API version (``v1beta`` has every function-calling feature; empty: SDK default).
    api_version: str = "v1beta"
    #: Which commands need a yes: changes (and dangerous ones), only dangerous, always, never.
    confirm: Confirm = "changes"
    #: Most model round trips for one question.
    max_steps: int = 12
    #: How long one command may run before the model is told it is still running.
    command_timeout: float = 60.0
    #: Most characters of one command's output sent to the model (head and tail are kept).
    max_output_chars: int = 6000
    #: Redact secrets from output before it leaves the machine (always on for remote models).
    redact: bool = True
    #: tmux session the brain's commands run in.
    session: str = "archy_session"
    #: A new question continues the last conversation if it was active this recently (minutes).
    continue_minutes: float = 60.0
    #: How many earlier turns of the conversation are sent along.
    history_turns: int = 10
    #: Seconds one model request may take.
    request_timeout: float = 120.0
    #: Sampling temperature; None leaves the provider's default.
    temperature: float | None = None

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS[self.provider]


_ENV: dict[str, str] = {
    "ARCHY_PROVIDER": "provider",
    "ARCHY_MODEL": "model",
    "ARCHY_API_KEY": "api_key",
    "ARCHY_BASE_URL": "base_url",
    "ARCHY_CONFIRM": "confirm",
    "ARCHY_MAX_STEPS": "max_steps",
    "ARCHY_SESSION": "session",
    "ARCHY_COMMAND_TIMEOUT": "command_timeout",
}


def config_path() -> Path:
    env = os.environ.get("ARCHY_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "archy" / "config.toml"


def state_dir() -> Path:
    """``$XDG_STATE_HOME/archy`` (created 0700 on first use by the caller)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "archy"


def _coerce(name: str, value: Any, where: str) -> Any:
    f = {x.name: x for x in dataclasses.fields(BrainConfig)}[name]
    kind = str(f.type)
    try:
        if kind == "Provider":
            if value not in get_args(Provider):
                raise ValueError(f"must be one of {', '.join(get_args(Provider))}")
            return value
        if kind == "Confirm":
            if value not in get_args(Confirm):
                raise ValueError(f"must be one of {', '.join(get_args(Confirm))}")
            return value
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError("must be a string")
            return value
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("must be an integer")
            number = int(value)
            if number < 1:
                raise ValueError("must be at least 1")
            return number
        if kind in ("float", "float | None"):
            if isinstance(value, bool):
                raise ValueError("must be a number")
            number_f = float(value)
            if number_f < 0:
                raise ValueError("must not be negative")
            return number_f
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {name} = {value!r}: {exc}") from None
    raise ConfigError(f"{where}: {name}: unsupported type {kind}")  # pragma: no cover


def load(path: Path | None = None, env: dict[str, str] | None = None) -> BrainConfig:
    """Defaults, then ``[brain]`` of the file (if it exists), then the environment."""
    path = path or config_path()
    environ = os.environ if env is None else env
    cfg = BrainConfig()
    known = {f.name for f in dataclasses.fields(BrainConfig)}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        brain = data.get("brain", {})
        if not isinstance(brain, dict):
            raise ConfigError(f"{path}: [brain] must be a table")
        for key, value in brain.items():
            if key not in known:
                raise ConfigError(
                    f"{path}: [brain] unknown key {key!r} (known: {', '.join(sorted(known))})"
                )
            setattr(cfg, key, _coerce(key, value, f"{path} [brain]"))
    for var, key in _ENV.items():
        if environ.get(var):
            setattr(cfg, key, _coerce(key, environ[var], f"${var}"))
    return cfg
