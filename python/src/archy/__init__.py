"""Archy: ask your Linux desktop in plain words.

The public API: :class:`Client` (the executor's JSON-RPC client), the wire types and errors,
:class:`Brain` and the providers.
"""

from __future__ import annotations

from .client import BatchItem, Client, OutputStream
from .errors import (
    ArchyError,
    ConnectionLost,
    ExecutorUnavailable,
    InvalidParams,
    MethodNotFound,
    RefusedByPolicy,
    RpcError,
    SessionBusy,
    SessionNotFound,
    UnknownCommand,
)
from .types import (
    DEFAULT_SESSION,
    CommandResult,
    CommandState,
    DaemonInfo,
    OutputEvent,
    SessionState,
    Status,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SESSION",
    "ArchyError",
    "BatchItem",
    "Client",
    "CommandResult",
    "CommandState",
    "ConnectionLost",
    "DaemonInfo",
    "ExecutorUnavailable",
    "InvalidParams",
    "MethodNotFound",
    "OutputEvent",
    "OutputStream",
    "RefusedByPolicy",
    "RpcError",
    "SessionBusy",
    "SessionNotFound",
    "SessionState",
    "Status",
    "UnknownCommand",
    "__version__",
]
