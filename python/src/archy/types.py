"""Wire types of the executor's JSON-RPC API, mirroring ``src/api/types.rs``.

Each dataclass has ``from_json`` (lenient: unknown keys are ignored, so a newer daemon does not
break an older client) and ``to_json`` (the exact wire dict).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_SESSION",
    "Capture",
    "Closed",
    "CommandResult",
    "CommandState",
    "DaemonInfo",
    "History",
    "InputSent",
    "Interrupted",
    "OutputEvent",
    "OutputPage",
    "SessionExists",
    "SessionInfo",
    "SessionList",
    "SessionState",
    "Status",
    "TerminalOpened",
]

#: Session used when a call names none (``DEFAULT_SESSION`` in types.rs).
DEFAULT_SESSION = "archy_session"

Json = dict[str, Any]
T = TypeVar("T")


class CommandState(StrEnum):
    """Lifecycle state of one command."""

    RUNNING = "running"
    EXITED = "exited"
    WAITING_FOR_INPUT = "waiting_for_input"
    INTERRUPTED = "interrupted"

    @property
    def is_live(self) -> bool:
        """Whether the command can still change."""
        return self in (CommandState.RUNNING, CommandState.WAITING_FOR_INPUT)


class SessionState(StrEnum):
    """What a session is doing, as ``status`` sees it."""

    IDLE = "idle"
    RUNNING = "running"
    WAITING_FOR_INPUT = "waiting_for_input"
    FULL_SCREEN = "full_screen"


def _build(cls: type[T], data: Any) -> T:
    """Build a dataclass from a wire dict, keeping only the fields it knows."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


class _Wire:
    def to_json(self) -> Json:
        """The wire form (optional fields left out when unset, as the daemon does)."""
        out: Json = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("skip_none"):
                continue
            if isinstance(value, _Wire):
                value = value.to_json()
            elif isinstance(value, list):
                value = [v.to_json() if isinstance(v, _Wire) else v for v in value]
            out[f.name] = value
        return out


_OPT = {"skip_none": True}


@dataclass(frozen=True)
class CommandResult(_Wire):
    """What ``execute``, ``wait`` and ``history`` report about a command."""

    id: str
    session: str
    command: str
    state: CommandState
    exit_code: int | None
    output: str
    output_bytes: int
    truncated: bool
    started_at: str
    duration_ms: int
    prompt: str | None = field(default=None, metadata=_OPT)

    @classmethod
    def from_json(cls, data: Any) -> CommandResult:
        obj = _build(cls, data)
        return dataclasses.replace(obj, state=CommandState(obj.state))

    @property
    def ok(self) -> bool:
        """Exited with status 0."""
        return self.state is CommandState.EXITED and self.exit_code == 0


@dataclass(frozen=True)
class Capture(_Wire):
    output: str
    lines: int

    @classmethod
    def from_json(cls, data: Any) -> Capture:
        return _build(cls, data)


@dataclass(frozen=True)
class SessionExists(_Wire):
    exists: bool

    @classmethod
    def from_json(cls, data: Any) -> SessionExists:
        return _build(cls, data)


@dataclass(frozen=True)
class TerminalOpened(_Wire):
    pid: int
    terminal: str

    @classmethod
    def from_json(cls, data: Any) -> TerminalOpened:
        return _build(cls, data)


@dataclass(frozen=True)
class Closed(_Wire):
    closed: int

    @classmethod
    def from_json(cls, data: Any) -> Closed:
        return _build(cls, data)


@dataclass(frozen=True)
class Status(_Wire):
    session: str
    state: SessionState
    foreground: str | None = None
    foreground_pid: int | None = None
    command_id: str | None = None
    prompt: str | None = field(default=None, metadata=_OPT)

    @classmethod
    def from_json(cls, data: Any) -> Status:
        obj = _build(cls, data)
        return dataclasses.replace(obj, state=SessionState(obj.state))


@dataclass(frozen=True)
class SessionInfo(_Wire):
    name: str
    attached: int
    command_id: str | None
    queued: int

    @classmethod
    def from_json(cls, data: Any) -> SessionInfo:
        return _build(cls, data)


@dataclass(frozen=True)
class SessionList(_Wire):
    sessions: list[SessionInfo]

    @classmethod
    def from_json(cls, data: Any) -> SessionList:
        return cls(sessions=[SessionInfo.from_json(s) for s in data["sessions"]])


@dataclass(frozen=True)
class History(_Wire):
    commands: list[CommandResult]

    @classmethod
    def from_json(cls, data: Any) -> History:
        return cls(commands=[CommandResult.from_json(c) for c in data["commands"]])


@dataclass(frozen=True)
class OutputPage(_Wire):
    id: str
    offset: int
    data: str
    total_bytes: int
    complete: bool

    @classmethod
    def from_json(cls, data: Any) -> OutputPage:
        return _build(cls, data)


@dataclass(frozen=True)
class Interrupted(_Wire):
    id: str | None
    signal: str

    @classmethod
    def from_json(cls, data: Any) -> Interrupted:
        return _build(cls, data)


@dataclass(frozen=True)
class InputSent(_Wire):
    bytes: int

    @classmethod
    def from_json(cls, data: Any) -> InputSent:
        return _build(cls, data)


@dataclass(frozen=True)
class DaemonInfo(_Wire):
    version: str
    pid: int
    uptime_ms: int
    socket_activated: bool
    socket: str
    tmux_socket: str
    sessions: int
    commands_run: int
    connections: int

    @classmethod
    def from_json(cls, data: Any) -> DaemonInfo:
        return _build(cls, data)


@dataclass(frozen=True)
class OutputEvent(_Wire):
    """One ``output_event`` notification: a chunk (``data``) or, last, the ``result``."""

    id: str
    data: str | None = field(default=None, metadata=_OPT)
    result: CommandResult | None = field(default=None, metadata=_OPT)

    @classmethod
    def from_json(cls, data: Any) -> OutputEvent:
        if not isinstance(data, dict):
            raise TypeError("OutputEvent: expected a JSON object")
        result = data.get("result")
        return cls(
            id=str(data["id"]),
            data=data.get("data"),
            result=CommandResult.from_json(result) if result is not None else None,
        )

    @property
    def is_final(self) -> bool:
        return self.result is not None
