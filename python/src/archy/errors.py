"""Exceptions. :func:`raise_for_error` is the one place a JSON-RPC error becomes an exception.

Every :class:`RpcError` keeps the wire ``code``, ``message`` and ``data`` and the ``method`` that
failed; subclasses exist per application code (``src/api/errors.rs``) so callers can catch, say,
:class:`RefusedByPolicy` and read its ``rule``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ArchyError",
    "ConnectionLost",
    "ExecutorUnavailable",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "IoFailed",
    "MethodNotFound",
    "NoTerminal",
    "ParseError",
    "ProtocolError",
    "RefusedByPolicy",
    "RpcError",
    "SessionBusy",
    "SessionNotFound",
    "TerminalFailed",
    "TmuxFailed",
    "TooManyConnections",
    "TooManySubscriptions",
    "UnknownCommand",
    "raise_for_error",
]


class ArchyError(Exception):
    """Base of every error this package raises."""


class ExecutorUnavailable(ArchyError):
    """The daemon could not be reached or started. ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")
        self.reason = message
        self.fix = fix


class ConnectionLost(ArchyError):
    """The daemon closed the connection before answering."""


class ProtocolError(ArchyError):
    """The daemon sent something that is not JSON-RPC 2.0."""


class RpcError(ArchyError):
    """A JSON-RPC error response."""

    code: int
    name: ClassVar[str] = "rpc_error"

    def __init__(self, code: int, message: str, data: Any = None, method: str | None = None):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{message} ({code})")

    def _data(self, key: str) -> Any:
        return self.data.get(key) if isinstance(self.data, dict) else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


# JSON-RPC 2.0's own codes.
class ParseError(RpcError):
    name = "parse_error"


class InvalidRequest(RpcError):
    name = "invalid_request"


class MethodNotFound(RpcError):
    name = "method_not_found"


class InvalidParams(RpcError):
    name = "invalid_params"


class InternalError(RpcError):
    name = "internal_error"


# Application codes, src/api/errors.rs.
class TooManySubscriptions(RpcError):
    name = "too_many_subscriptions"


class SessionNotFound(RpcError):
    name = "session_not_found"

    @property
    def session(self) -> str | None:
        return self._data("session")  # type: ignore[no-any-return]


class TmuxFailed(RpcError):
    name = "tmux_failed"

    @property
    def stderr(self) -> str | None:
        return self._data("stderr")  # type: ignore[no-any-return]


class RefusedByPolicy(RpcError):
    name = "refused_by_policy"

    @property
    def rule(self) -> str | None:
        return self._data("rule")  # type: ignore[no-any-return]

    @property
    def pattern(self) -> str | None:
        return self._data("pattern")  # type: ignore[no-any-return]


class UnknownCommand(RpcError):
    name = "unknown_command"


class SessionBusy(RpcError):
    name = "session_busy"

    @property
    def running_id(self) -> str | None:
        return self._data("running_id")  # type: ignore[no-any-return]


class NoTerminal(RpcError):
    name = "no_terminal"

    @property
    def tried(self) -> list[str]:
        tried = self._data("tried")
        return list(tried) if isinstance(tried, list) else []


class TerminalFailed(RpcError):
    name = "terminal_failed"


class IoFailed(RpcError):
    name = "io"


class TooManyConnections(RpcError):
    name = "too_many_connections"


CODES: dict[int, type[RpcError]] = {
    -32700: ParseError,
    -32600: InvalidRequest,
    -32601: MethodNotFound,
    -32602: InvalidParams,
    -32603: InternalError,
    -32006: TooManySubscriptions,
    -32020: SessionNotFound,
    -32021: TmuxFailed,
    -32022: RefusedByPolicy,
    -32023: UnknownCommand,
    -32024: SessionBusy,
    -32025: NoTerminal,
    -32026: TerminalFailed,
    -32027: IoFailed,
    -32028: TooManyConnections,
}


def error_from_wire(error: Any, method: str | None = None) -> RpcError:
    """The exception for a JSON-RPC ``error`` object (built, not raised)."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return ProtocolErrorRpc(-32603, f"malformed error object: {error!r}", None, method)
    code = int(error["code"])
    cls = CODES.get(code, RpcError)
    return cls(code, str(error.get("message", "")), error.get("data"), method)


class ProtocolErrorRpc(RpcError):
    name = "malformed_error"


def raise_for_error(response: dict[str, Any], method: str | None = None) -> Any:
    """Return a response's ``result``, or raise the exception for its ``error``."""
    if "error" in response:
        raise error_from_wire(response["error"], method)
    if "result" not in response:
        raise ProtocolError(f"{method or 'response'}: neither result nor error in {response!r}")
    return response["result"]
