"""Load: N concurrent connections mixing calls, subscriptions and disconnects mid-call.

Checked: zero wrong replies (every reply carries the id and content its request asked for),
zero daemon errors in its log, RSS bounded, the daemon still serving, and every command
accounted for in `history` and in the audit log (the journal's stand-in outside systemd).

RELIABILITY_SECONDS (default 15) and RELIABILITY_CONNECTIONS (default 200) size the run;
`make soak` runs it longer.
"""

import asyncio
import json
import os
import random
import re
import time

from harness import RpcError, rss_kib

SECONDS = float(os.environ.get("RELIABILITY_SECONDS", "15"))
CONNECTIONS = int(os.environ.get("RELIABILITY_CONNECTIONS", "200"))
SESSIONS = 8
RSS_LIMIT_KIB = 256 * 1024


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.next_id = 0

    @classmethod
    async def open(cls, path):
        r, w = await asyncio.open_unix_connection(str(path), limit=16 << 20)
        return cls(r, w)

    async def send(self, obj):
        self.writer.write(json.dumps(obj).encode() + b"\n")
        await self.writer.drain()

    async def read(self):
        line = await asyncio.wait_for(self.reader.readline(), 120)
        if not line:
            raise ConnectionError("daemon closed the connection")
        return json.loads(line)

    async def request(self, method, params):
        self.next_id += 1
        rid = f"r{self.next_id}"
        await self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    async def call(self, method, **params):
        rid = await self.request(method, params)
        msg = await self.read()
        return rid, msg

    async def close(self):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


class Tally:
    def __init__(self):
        self.requests = 0
        self.wrong = []
        self.commands = {}  # token -> command id (None when the client left before the reply)
        self.subscriptions = 0
        self.disconnects = 0
        self.batches = 0
        self.busy_retries = 0

    def bad(self, what, msg):
        if len(self.wrong) < 20:
            self.wrong.append(f"{what}: {msg!r}"[:500])
        else:
            self.wrong.append("...")


async def worker(n, path, pid, deadline, t: Tally, rng: random.Random):
    conn = await Conn.open(path)
    try:
        while time.monotonic() < deadline:
            roll = rng.random()
            session = f"load{rng.randrange(SESSIONS)}"
            token = f"T{n}x{t.requests}x{rng.randrange(1 << 30)}"
            if roll < 0.40:
                rid, msg = await conn.call("daemon_info")
                t.requests += 1
                if msg.get("id") != rid or msg.get("result", {}).get("pid") != pid:
                    t.bad("daemon_info", msg)
            elif roll < 0.65:
                rid, msg = await conn.call("execute", command=f"echo {token}", session=session,
                                           queue=True, timeout_ms=120000)
                t.requests += 1
                res = msg.get("result") or {}
                t.commands[token] = res.get("id")
                if (msg.get("id") != rid or res.get("state") != "exited" or res.get("exit_code") != 0
                        or res.get("output") != token + "\n"):
                    t.bad("execute", msg)
            elif roll < 0.80:
                # execute without waiting, then follow it through a subscription.
                rid, msg = await conn.call("execute", command=f"echo {token}; sleep 0.0{rng.randrange(10)}",
                                           session=session, queue=True, wait=False)
                t.requests += 1
                res = msg.get("result") or {}
                t.commands[token] = res.get("id")
                if msg.get("id") != rid or not res.get("id"):
                    t.bad("execute wait:false", msg)
                    continue
                rid, msg = await conn.call("subscribe_output", id=res["id"])
                t.requests += 1
                t.subscriptions += 1
                if msg.get("id") != rid or "result" not in msg:
                    t.bad("subscribe_output", msg)
                    continue
                sub = msg["result"]
                while True:
                    note = await conn.read()
                    p = note.get("params", {})
                    if note.get("method") != "output_event" or p.get("subscription") != sub:
                        t.bad("notification", note)
                        break
                    final = p["result"].get("result")
                    if final is not None:
                        if final.get("state") != "exited" or final.get("output") != token + "\n":
                            t.bad("subscription final", note)
                        break
            elif roll < 0.90:
                # A second connection sends a command and leaves before the reply.
                other = await Conn.open(path)
                await other.request("execute", {"command": f"echo {token}", "session": session,
                                                 "queue": True})
                t.commands[token] = None
                if rng.random() < 0.5:
                    await asyncio.sleep(rng.random() * 0.01)
                await other.close()
                t.requests += 1
                t.disconnects += 1
            else:
                ids = [f"b{t.requests}a", f"b{t.requests}b"]
                await conn.send([
                    {"jsonrpc": "2.0", "id": ids[0], "method": "daemon_info", "params": {}},
                    {"jsonrpc": "2.0", "method": "daemon_info"},  # a notification: no reply
                    {"jsonrpc": "2.0", "id": ids[1], "method": "history", "params": {"limit": 1}},
                ])
                msg = await conn.read()
                t.requests += 3
                t.batches += 1
                if not isinstance(msg, list) or sorted(m.get("id") for m in msg) != sorted(ids) \
                        or any("result" not in m for m in msg):
                    t.bad("batch", msg)
    finally:
        await conn.close()


async def run_load(path, pid, seconds, connections, t: Tally):
    rng = random.Random(1234)
    deadline = time.monotonic() + seconds
    # All connections are opened first and held for the whole run.
    tasks = [asyncio.create_task(worker(n, path, pid, deadline, t, random.Random(rng.random())))
             for n in range(connections)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


def test_load(daemons, figures):
    d = daemons(config={"max_connections": CONNECTIONS + 64, "history": 100000})
    with d.client() as c:
        c.call("execute", command="true")  # tmux server up before the clock starts
    rss_start = rss_kib(d.pid)
    t = Tally()
    started = time.monotonic()
    errors = asyncio.run(run_load(d.socket, d.pid, SECONDS, CONNECTIONS, t))
    elapsed = time.monotonic() - started
    rss_end = rss_kib(d.pid)

    # Recorded before the checks, so a failing run still reports what it did.
    figures["load"] = {
        "seconds": round(elapsed, 1),
        "connections_held": CONNECTIONS,
        "requests": t.requests,
        "commands": len(t.commands),
        "subscriptions": t.subscriptions,
        "disconnects_mid_call": t.disconnects,
        "batches": t.batches,
        "wrong_replies": len(t.wrong),
        "client_errors": len(errors),
        "client_error_kinds": sorted({type(e).__name__ for e in errors}),
        "rss_kib_start": rss_start,
        "rss_kib_end": rss_end,
    }
    print(figures["load"])
    assert not errors, errors[:5]
    assert not t.wrong, t.wrong
    assert d.alive()

    # Every command, including those whose client left, ends up in history.
    with d.client(timeout=120) as c:
        for _ in range(600):
            hist = c.call("history", limit=1000000)["commands"]
            if not any(h["state"] == "running" for h in hist) and \
                    len({h["command"] for h in hist}) >= len(t.commands):
                break
            time.sleep(0.1)
        by_token = {}
        for h in hist:
            m = re.match(r"echo (T[^;\s]+)", h["command"])
            if m:
                by_token[m.group(1)] = h
        missing = [tok for tok in t.commands if tok not in by_token]
        assert not missing, f"{len(missing)} commands missing from history: {missing[:5]}"
        wrong = [h for tok, h in by_token.items()
                 if h["state"] != "exited" or h["exit_code"] != 0 or h["output"] != tok + "\n"]
        assert not wrong, wrong[:3]
        ids = [h["id"] for h in by_token.values()]
        for tok, cid in t.commands.items():
            if cid is not None:
                assert by_token[tok]["id"] == cid
        info = c.call("daemon_info")
        assert info["pid"] == d.pid

    log = d.log()
    audited = set(re.findall(r"command (c-[0-9a-f]+) (?:exited|interrupted)", log))
    unaudited = [i for i in ids if i not in audited]
    assert not unaudited, f"{len(unaudited)} commands without an audit log line"
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line][:5]
    assert rss_end < RSS_LIMIT_KIB, f"RSS {rss_end} KiB"

    figures["load"].update(commands_missing_from_history=0, commands_without_audit_line=0,
                           daemon_errors_logged=0)


def test_over_connection_limit_is_refused_cleanly(daemons):
    """Past max_connections a client gets a -32028 line, and the daemon keeps serving."""
    import socket

    d = daemons(config={"max_connections": 4})
    held = [d.client() for _ in range(4)]
    try:
        for c in held:
            assert c.call("daemon_info")["pid"] == d.pid
        extra = socket.socket(socket.AF_UNIX)
        extra.connect(str(d.socket))
        extra.settimeout(10)
        data = extra.makefile("rb").readline()
        extra.close()
        assert json.loads(data)["error"]["code"] == -32028
    finally:
        for c in held:
            c.close()
    # Wait until the daemon has seen the disconnects, then it serves again.
    for _ in range(100):
        try:
            with d.client() as c:
                assert c.call("daemon_info")["pid"] == d.pid
                return
        except (RpcError, ConnectionError, AssertionError, ValueError):
            time.sleep(0.05)
    raise AssertionError("daemon refused connections after clients left")
