"""The JSON-RPC client against the real daemon and a private tmux server."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from archy import spawn
from archy.client import Client
from archy.errors import (
    ExecutorUnavailable,
    InvalidParams,
    MethodNotFound,
    NoTerminal,
    RefusedByPolicy,
    RpcError,
    SessionBusy,
    SessionNotFound,
    TerminalFailed,
    UnknownCommand,
)
from archy.types import CommandState, SessionState

from .conftest import Daemon, retry_until, stop_pid

S = "t1"  # a session of our own in each test


def test_lazy_spawn_waits_for_ready(daemon: Daemon) -> None:
    assert not Path(daemon.socket).exists()
    with daemon.client() as c:
        info = c.daemon_info()
    assert info.socket == daemon.socket
    assert info.tmux_socket == daemon.tmux
    assert info.socket_activated is False
    assert info.pid == spawn.spawned[daemon.socket].pid
    assert Path(daemon.socket).exists()
    # The spawned daemon is detached: its own session, so a terminal's ^C does not reach it.
    assert os.getsid(info.pid) == info.pid


def test_execute_output_and_exit_codes(client: Client) -> None:
    ok = client.execute("echo hello; echo world", session=S)
    assert ok.state is CommandState.EXITED
    assert ok.exit_code == 0 and ok.ok
    assert ok.output == "hello\nworld\n"
    assert ok.output_bytes == len(ok.output.encode())
    assert not ok.truncated
    assert ok.session == S and ok.id and ok.started_at
    bad = client.execute("echo oops >&2; sh -c 'exit 3'", session=S)
    assert bad.exit_code == 3 and not bad.ok
    assert "oops" in bad.output


def test_cd_and_export_persist(client: Client) -> None:
    client.execute("cd /tmp && export ARCHY_T=persisted", session=S)
    r = client.execute("pwd; echo $ARCHY_T", session=S)
    assert r.output.split() == ["/tmp", "persisted"]


def test_wait_false_then_wait_and_output_paging(client: Client) -> None:
    started = client.execute("sleep 0.3; seq 1 2000", session=S, wait=False)
    assert started.state is CommandState.RUNNING and started.exit_code is None
    done = client.wait(started.id, timeout_ms=10_000)
    assert done.state is CommandState.EXITED and done.exit_code == 0
    whole = "".join(f"{i}\n" for i in range(1, 2001))
    assert done.output == whole
    page = client.output(started.id, offset=0, limit=100)
    assert page.offset == 0 and page.total_bytes == len(whole)
    assert whole.startswith(page.data) and 0 < len(page.data) <= 100
    rest = client.output(started.id, offset=len(page.data))
    assert page.data + rest.data == whole and rest.complete


def test_max_bytes_keeps_the_tail(client: Client) -> None:
    r = client.execute("seq 1 10000", session=S, max_bytes=100)
    assert r.truncated and r.output.endswith("10000\n") and len(r.output) <= 100
    assert r.output_bytes == sum(len(f"{i}\n") for i in range(1, 10001))


def test_session_methods(client: Client) -> None:
    assert client.check_session(session=S).exists is False
    client.execute("echo on-screen-marker", session=S)
    assert client.check_session(session=S).exists is True
    names = [s.name for s in client.list_sessions().sessions]
    assert S in names
    status = client.status(session=S)
    assert status.session == S and status.state is SessionState.IDLE
    shown = client.capture(session=S, lines=50)
    assert "on-screen-marker" in shown.output and shown.lines > 0
    hist = client.history(session=S)
    assert hist.commands[-1].command == "echo on-screen-marker"
    assert hist.commands[-1].exit_code == 0
    assert client.close_session(session=S).closed == 1
    assert client.check_session(session=S).exists is False


def test_interrupt(client: Client) -> None:
    started = client.execute("sleep 30", session=S, wait=False)
    assert client.status(session=S).command_id == started.id
    sent = client.interrupt(id=started.id)
    assert sent.id == started.id and sent.signal == "INT"
    done = client.wait(started.id, timeout_ms=10_000)
    assert done.state in (CommandState.INTERRUPTED, CommandState.EXITED)
    assert client.execute("echo alive", session=S).output == "alive\n"


def test_prompt_waits_for_input_and_send_input(client: Client) -> None:
    r = client.execute("read -p 'Your name? ' n; echo hi-$n", session=S, timeout_ms=10_000)
    assert r.state is CommandState.WAITING_FOR_INPUT
    assert r.prompt and "Your name?" in r.prompt
    sent = client.send_input("bob", session=S)
    assert sent.bytes >= 3
    done = client.wait(r.id, timeout_ms=10_000)
    assert done.exit_code == 0 and "hi-bob" in done.output


def test_password_prompt_answered_as_secret(client: Client) -> None:
    r = client.execute(
        "read -s -p 'Password: ' x; echo; [ \"$x\" = s3cret ] && echo pw-ok",
        session=S,
        timeout_ms=10_000,
    )
    assert r.state is CommandState.WAITING_FOR_INPUT
    assert "Password:" in (r.prompt or "")
    client.send_input("s3cret", session=S, secret=True)
    done = client.wait(r.id, timeout_ms=10_000)
    assert "pw-ok" in done.output and "s3cret" not in done.output


def test_busy_session_refused_then_queued(client: Client) -> None:
    first = client.execute("sleep 0.5; echo first", session=S, wait=False)
    with pytest.raises(SessionBusy) as busy:
        client.execute("echo second", session=S)
    assert busy.value.code == -32024 and busy.value.running_id == first.id
    assert busy.value.method == "execute"
    queued = client.execute("echo second", session=S, queue=True, timeout_ms=10_000)
    assert queued.output == "second\n"
    assert client.wait(first.id).output == "first\n"


def test_policy_refusal(client: Client) -> None:
    with pytest.raises(RefusedByPolicy) as refused:
        client.execute("rm -rf /", session=S)
    err = refused.value
    assert err.code == -32022 and err.method == "execute"
    assert isinstance(err.data, dict) and err.rule and err.rule == err.data["rule"]


def test_rpc_errors_keep_code_message_data_method(client: Client) -> None:
    with pytest.raises(MethodNotFound) as nf:
        client.call("no_such_method", {})
    assert nf.value.code == -32601 and nf.value.method == "no_such_method"
    with pytest.raises(InvalidParams) as ip:
        client.call("execute", {"session": S})
    assert ip.value.code == -32602 and "command" in ip.value.message
    with pytest.raises(UnknownCommand) as uc:
        client.wait("c0-nope")
    assert uc.value.code == -32023
    with pytest.raises(SessionNotFound) as snf:
        client.capture(session="no-such-session")
    assert snf.value.code == -32020 and snf.value.session == "no-such-session"
    assert isinstance(snf.value, RpcError) and "no-such-session" in str(snf.value.data)


def test_batch_and_notification(client: Client) -> None:
    client.notify("daemon_info")  # a notification: no reply may come back for it
    items = client.batch(
        [
            ("daemon_info", None),
            ("check_session", {"session": S}),
            ("no_such_method", {}),
            ("execute", {"command": "echo b", "session": "other"}),
        ]
    )
    assert [i.method for i in items] == [
        "daemon_info",
        "check_session",
        "no_such_method",
        "execute",
    ]
    assert items[0].unwrap()["pid"] > 0
    assert items[1].unwrap() == {"exists": False}
    assert isinstance(items[2].error, MethodNotFound)
    with pytest.raises(MethodNotFound):
        items[2].unwrap()
    assert items[3].unwrap()["output"] == "b\n"
    assert client.daemon_info().pid > 0  # the connection is still in step


def test_subscribe_output_streams_then_ends_with_result(client: Client) -> None:
    started = client.execute(
        "for i in 1 2 3; do echo line$i; sleep 0.2; done", session=S, wait=False
    )
    chunks = []
    with client.subscribe_output(started.id) as stream:
        events = list(stream)
    for e in events[:-1]:
        assert e.result is None and e.id == started.id
        chunks.append(e.data or "")
    final = events[-1].result
    assert final is not None and final.state is CommandState.EXITED and final.exit_code == 0
    assert final.output == "line1\nline2\nline3\n"
    assert "line3" in "".join(chunks)  # at least the later lines arrived live


def test_run_generator(client: Client) -> None:
    events = list(client.run("echo one; sleep 0.2; echo two", session=S))
    assert events[-1].result is not None and events[-1].result.output == "one\ntwo\n"


def test_unsubscribe(client: Client) -> None:
    started = client.execute("sleep 5", session=S, wait=False)
    stream = client.subscribe_output(started.id)
    assert stream.next(timeout=0.2) is None
    stream.close()
    assert stream.next(timeout=0.1) is None
    client.interrupt(id=started.id)


def test_threads_share_one_connection(client: Client) -> None:
    errors: list[BaseException] = []
    outputs: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        try:
            outputs[n] = [
                client.execute(f"echo w{n}-{i}", session=f"w{n}").output for i in range(5)
            ]
            client.daemon_info()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for n in range(6):
        assert outputs[n] == [f"w{n}-{i}\n" for i in range(5)]
    assert client.daemon_info().connections >= 1


def test_terminal_methods(client: Client) -> None:
    client.execute("true", session=S)
    try:
        opened = client.open_terminal(session=S, env={})
    except (NoTerminal, TerminalFailed) as exc:  # no window system in a test machine
        assert exc.code in (-32025, -32026)
    else:
        assert opened.pid > 0 and opened.terminal
    assert client.close_terminal(session=S).closed >= 0


def test_discover_lists_every_client_method(client: Client) -> None:
    doc = client.discover()
    names = {m["name"] for m in doc["methods"]}
    for name in (
        "execute",
        "wait",
        "output",
        "interrupt",
        "send_input",
        "capture",
        "check_session",
        "status",
        "list_sessions",
        "history",
        "open_terminal",
        "close_terminal",
        "close_session",
        "daemon_info",
        "subscribe_output",
    ):
        assert name in names, name


def test_reconnects_and_restarts_after_the_daemon_dies(daemon: Daemon) -> None:
    with daemon.client(timeout=30) as c:
        first = c.daemon_info().pid
        stop_pid(first)
        spawn.spawned.pop(daemon.socket).process.wait()
        # The next call notices the closed connection, reconnects and starts a new daemon.
        assert retry_until(lambda: not _listening(daemon.socket), 5)
        second = c.daemon_info().pid
        assert second != first
        assert c.execute("echo back", session=S).output == "back\n"


def _listening(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# -- lazy start failures: each names the problem and the fix ------------------------------


def test_missing_binary(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHY_EXECUTOR")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutorUnavailable) as exc:
        Client(daemon.socket).daemon_info()
    assert "nor on PATH" in exc.value.reason and str(tmp_path) in exc.value.reason
    assert exc.value.fix and "ARCHY_EXECUTOR" in exc.value.fix
    monkeypatch.setenv("ARCHY_EXECUTOR", str(tmp_path / "nope"))
    with pytest.raises(ExecutorUnavailable, match="not an executable"):
        Client(daemon.socket).daemon_info()


def test_no_tmux(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutorUnavailable) as exc:
        Client(daemon.socket).daemon_info()
    assert "tmux is not installed" in exc.value.reason and "install" in (exc.value.fix or "")


def test_daemon_that_exits_before_ready(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The real daemon, refusing a bad config: an early exit, seen through the pidfd at once.
    bad = tmp_path / "config.toml"
    bad.write_text("[executor]\nno_such_key = 1\n")
    monkeypatch.setenv("ARCHY_CONFIG", str(bad))
    t0 = time.monotonic()
    with pytest.raises(ExecutorUnavailable) as exc:
        Client(daemon.socket).daemon_info()
    assert time.monotonic() - t0 < 5
    assert "exited with status 78 before it was ready" in exc.value.reason
    assert "no_such_key" in exc.value.reason  # this run's log lines are in the message
    assert "executor.log" in (exc.value.fix or "")


def test_no_autostart(daemon: Daemon) -> None:
    with pytest.raises(ExecutorUnavailable, match="no executor listens"):
        Client(daemon.socket, autostart=False).daemon_info()


def test_socket_of_another_user(daemon: Daemon) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to make a socket owned by another uid")
    s = socket.socket(socket.AF_UNIX)
    s.bind(daemon.socket)
    s.close()
    os.chown(daemon.socket, 4242, 4242)
    with pytest.raises(ExecutorUnavailable, match="belongs to uid 4242"):
        Client(daemon.socket).daemon_info()
    Path(daemon.socket).unlink()
