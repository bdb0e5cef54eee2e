"""Standard-library JSON-RPC 2.0 client for ``archy-executor``.

One JSON value per line over the Unix socket. A :class:`Client` owns one connection, shared by
every thread: writes are serialized by a lock, and a reader thread hands each response to the
caller waiting for its id and each ``output_event`` notification to its subscription, so a call
costs exactly one round trip and a stream can run while other threads make calls. A lost
connection fails what was in flight with :class:`ConnectionLost`; the next call reconnects
(starting the daemon again if needed).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import spawn
from .errors import ArchyError, ConnectionLost, ProtocolError, RpcError, error_from_wire
from .types import (
    Capture,
    Closed,
    CommandResult,
    DaemonInfo,
    History,
    InputSent,
    Interrupted,
    OutputEvent,
    OutputPage,
    SessionExists,
    SessionList,
    Status,
    TerminalOpened,
)

__all__ = ["BatchItem", "Client", "OutputStream"]

#: Variables a window needs to reach the user's display; the daemon's own environment has none.
DISPLAY_VARS = (
    "WAYLAND_DISPLAY",
    "DISPLAY",
    "XDG_RUNTIME_DIR",
    "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_SESSION_TYPE",
    "XDG_CURRENT_DESKTOP",
)

_CLOSED = object()  # the connection ended
_STOP = object()  # the stream was closed by its owner


class _Slot:
    """Where the reader thread leaves one response."""

    __slots__ = ("event", "response", "subscription")

    def __init__(self, subscription: bool = False) -> None:
        self.event = threading.Event()
        self.response: dict[str, Any] | None = None
        self.subscription = subscription


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile: BinaryIO = sock.makefile("rb")
        self.write_lock = threading.Lock()
        self.lock = threading.Lock()  # guards pending, subs, alive
        self.pending: dict[int, _Slot] = {}
        self.subs: dict[Any, queue.SimpleQueue[Any]] = {}
        self.dropped: set[Any] = set()  # ended subscriptions: late notifications are ignored
        self.alive = True
        self.reader = threading.Thread(target=self._read, name="archy-rpc-reader", daemon=True)
        self.reader.start()

    def send(self, payload: Any, slots: Mapping[int, _Slot]) -> None:
        line = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        with self.lock:
            if not self.alive:
                raise ConnectionLost("the connection to archy-executor is closed")
            self.pending.update(slots)
        try:
            with self.write_lock:
                self.sock.sendall(line)
        except OSError as exc:
            self._fail()
            raise ConnectionLost(f"writing to archy-executor failed: {exc}") from exc

    def subscription_queue(self, sub: Any) -> queue.SimpleQueue[Any]:
        with self.lock:
            q = self.subs.get(sub)
            if q is None:
                q = self.subs[sub] = queue.SimpleQueue()
                if not self.alive:
                    q.put(_CLOSED)
            return q

    def drop_subscription(self, sub: Any) -> None:
        with self.lock:
            self.subs.pop(sub, None)
            self.dropped.add(sub)

    def _deliver(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if "method" in msg:  # a notification
            params = msg.get("params")
            if msg["method"] == "output_event" and isinstance(params, dict):
                sub = params.get("subscription")
                with self.lock:
                    if sub in self.dropped:
                        return
                self.subscription_queue(sub).put(params.get("result"))
            return
        msg_id = msg.get("id")
        with self.lock:
            slot = self.pending.pop(msg_id, None) if isinstance(msg_id, int) else None
            if slot is not None and slot.subscription and "result" in msg:
                # Create the queue before the caller wakes: notifications may follow at once.
                sub = msg["result"]
                if sub not in self.subs:
                    self.subs[sub] = queue.SimpleQueue()
        if slot is not None:
            slot.response = msg
            slot.event.set()

    def _read(self) -> None:
        try:
            for raw in self.rfile:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                for item in msg if isinstance(msg, list) else [msg]:
                    self._deliver(item)
        except (OSError, ValueError):
            pass
        self._fail()

    def _fail(self) -> None:
        with self.lock:
            if not self.alive:
                return
            self.alive = False
            slots = list(self.pending.values())
            self.pending.clear()
            queues = list(self.subs.values())
        for slot in slots:
            slot.event.set()
        for q in queues:
            q.put(_CLOSED)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._fail()
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        if threading.current_thread() is not self.reader:
            self.reader.join(timeout=2)


@dataclass
class BatchItem:
    """One answer of a batch: ``result`` or ``error``. :meth:`unwrap` raises the error."""

    method: str
    result: Any = None
    error: RpcError | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


def _params(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


class Client:
    """A thread-safe, reusable connection to ``archy-executor``.

    ``socket_path`` defaults to ``$ARCHY_SOCKET``, else ``$XDG_RUNTIME_DIR/archy.sock``. With
    ``autostart`` (the default) the daemon is started when nothing listens (see
    :mod:`archy.spawn`). ``timeout`` bounds each call in seconds (None: wait for the daemon).
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        autostart: bool = True,
        timeout: float | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.socket_path = spawn.socket_path(socket_path)
        self.autostart = autostart
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._conn_lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect now (otherwise the first call does)."""
        self._connection()

    def _connection(self) -> _Connection:
        with self._conn_lock:
            if self._conn is None or not self._conn.alive:
                if self._conn is not None:
                    self._conn.close()
                sock = spawn.connect(
                    self.socket_path, autostart=self.autostart, start_timeout=self.start_timeout
                )
                self._conn = _Connection(sock)
            return self._conn

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw calls ----------------------------------------------------------------------------

    def _wait(self, slot: _Slot, method: str) -> dict[str, Any]:
        if not slot.event.wait(self.timeout):
            raise ArchyError(f"{method}: no answer from archy-executor within {self.timeout} s")
        if slot.response is None:
            raise ConnectionLost(f"{method}: archy-executor closed the connection")
        return slot.response

    def _request(
        self, method: str, params: Mapping[str, Any] | None, subscription: bool = False
    ) -> tuple[Any, _Connection]:
        conn = self._connection()
        msg_id = next(self._ids)
        slot = _Slot(subscription)
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            payload["params"] = dict(params)
        conn.send(payload, {msg_id: slot})
        response = self._wait(slot, method)
        if "error" in response:
            raise error_from_wire(response["error"], method)  # the one raise point
        if "result" not in response:
            raise ProtocolError(f"{method}: neither result nor error in {response!r}")
        return response["result"], conn

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` with params by name; return the raw ``result``."""
        return self._request(method, params if params is not None else {})[0]

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (no id, so no reply)."""
        payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            payload["params"] = dict(params)
        self._connection().send(payload, {})

    def batch(self, calls: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[BatchItem]:
        """Send several calls as one JSON-RPC batch (one line, one reply array)."""
        if not calls:
            raise ValueError("a batch needs at least one call")
        conn = self._connection()
        slots: dict[int, _Slot] = {}
        payload = []
        for method, params in calls:
            msg_id = next(self._ids)
            slots[msg_id] = _Slot()
            payload.append(
                {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": dict(params or {})}
            )
        conn.send(payload, slots)
        items = []
        for (method, _), slot in zip(calls, slots.values(), strict=True):
            response = self._wait(slot, method)
            if "error" in response:
                items.append(BatchItem(method, error=error_from_wire(response["error"], method)))
            else:
                items.append(BatchItem(method, result=response.get("result")))
        return items

    # -- typed methods, one per executor method -----------------------------------------------

    def execute(
        self,
        command: str,
        *,
        session: str | None = None,
        wait: bool | None = None,
        timeout_ms: int | None = None,
        max_bytes: int | None = None,
        queue: bool | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``command`` in a session; by default wait for it (up to ``timeout_ms``)."""
        return CommandResult.from_json(
            self.call(
                "execute",
                _params(
                    command=command,
                    session=session,
                    wait=wait,
                    timeout_ms=timeout_ms,
                    max_bytes=max_bytes,
                    queue=queue,
                    cwd=cwd,
                    env=dict(env) if env else None,
                ),
            )
        )

    def wait(
        self, id: str, *, timeout_ms: int | None = None, max_bytes: int | None = None
    ) -> CommandResult:
        return CommandResult.from_json(
            self.call("wait", _params(id=id, timeout_ms=timeout_ms, max_bytes=max_bytes))
        )

    def output(self, id: str, *, offset: int | None = None, limit: int | None = None) -> OutputPage:
        return OutputPage.from_json(self.call("output", _params(id=id, offset=offset, limit=limit)))

    def interrupt(
        self, *, id: str | None = None, session: str | None = None, signal: str | None = None
    ) -> Interrupted:
        return Interrupted.from_json(
            self.call("interrupt", _params(id=id, session=session, signal=signal))
        )

    def send_input(
        self,
        text: str,
        *,
        session: str | None = None,
        enter: bool | None = None,
        secret: bool | None = None,
    ) -> InputSent:
        return InputSent.from_json(
            self.call("send_input", _params(text=text, session=session, enter=enter, secret=secret))
        )

    def capture(self, *, session: str | None = None, lines: int | None = None) -> Capture:
        return Capture.from_json(self.call("capture", _params(session=session, lines=lines)))

    def check_session(self, *, session: str | None = None) -> SessionExists:
        return SessionExists.from_json(self.call("check_session", _params(session=session)))

    def status(self, *, session: str | None = None) -> Status:
        return Status.from_json(self.call("status", _params(session=session)))

    def list_sessions(self) -> SessionList:
        return SessionList.from_json(self.call("list_sessions", {}))

    def history(self, *, session: str | None = None, limit: int | None = None) -> History:
        return History.from_json(self.call("history", _params(session=session, limit=limit)))

    def open_terminal(
        self,
        *,
        session: str | None = None,
        terminal: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> TerminalOpened:
        """Open a window on a session. ``env`` defaults to this process's display variables."""
        if env is None:
            env = {k: os.environ[k] for k in DISPLAY_VARS if os.environ.get(k)}
        return TerminalOpened.from_json(
            self.call("open_terminal", _params(session=session, terminal=terminal, env=dict(env)))
        )

    def close_terminal(self, *, session: str | None = None) -> Closed:
        return Closed.from_json(self.call("close_terminal", _params(session=session)))

    def close_session(self, *, session: str | None = None) -> Closed:
        return Closed.from_json(self.call("close_session", _params(session=session)))

    def daemon_info(self) -> DaemonInfo:
        return DaemonInfo.from_json(self.call("daemon_info", {}))

    def discover(self) -> dict[str, Any]:
        """The OpenRPC document (``rpc.discover``)."""
        doc = self.call("rpc.discover", {})
        if not isinstance(doc, dict):
            raise ProtocolError("rpc.discover did not return an object")
        return doc

    def subscribe_output(self, id: str) -> OutputStream:
        """Stream a command's output: chunks as printed, then one event with the result."""
        sub, conn = self._request("subscribe_output", {"id": id}, subscription=True)
        return OutputStream(self, conn, sub, id)

    def unsubscribe_output(self, subscription: Any) -> bool:
        return bool(self.call("unsubscribe_output", {"subscription": subscription}))

    def run(self, command: str, **kwargs: Any) -> Iterator[OutputEvent]:
        """Start ``command`` without waiting and stream it: yields chunks, then the result."""
        started = self.execute(command, wait=False, **kwargs)
        if not started.state.is_live:
            yield OutputEvent(id=started.id, result=started)
            return
        with self.subscribe_output(started.id) as stream:
            yield from stream


class OutputStream(Iterator[OutputEvent]):
    """Iterator over one ``subscribe_output`` subscription; ends after the final result.

    Use it as a context manager (or call :meth:`close`) to unsubscribe early.
    """

    def __init__(self, client: Client, conn: _Connection, subscription: Any, id: str) -> None:
        self.client = client
        self.subscription = subscription
        self.id = id
        self._conn = conn
        self._queue = conn.subscription_queue(subscription)
        self._done = False

    def __iter__(self) -> OutputStream:
        return self

    def __next__(self) -> OutputEvent:
        event = self.next()
        if event is None:
            raise StopIteration
        return event

    def next(self, timeout: float | None = None) -> OutputEvent | None:
        """The next event; None once the stream ended or if none came within ``timeout`` s."""
        if self._done:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _STOP:
            return None
        if item is _CLOSED:
            self._finish()
            raise ConnectionLost(f"subscribe_output {self.id}: the connection was closed")
        event = OutputEvent.from_json(item)
        if event.is_final:
            self._finish()
        return event

    def _finish(self) -> None:
        self._done = True
        self._conn.drop_subscription(self.subscription)

    def close(self) -> None:
        """Unsubscribe (if still subscribed) and wake a thread blocked in :meth:`next`."""
        if self._done:
            return
        self._finish()
        self._queue.put(_STOP)
        if self._conn.alive:
            with contextlib.suppress(ArchyError):
                self.client.unsubscribe_output(self.subscription)

    def __enter__(self) -> OutputStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
