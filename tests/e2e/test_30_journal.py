"""`journalctl --user -u archy` shows every request and every command's audit line, with their
fields as journal fields (tracing-journald prefixes them with F_); secret input never shows."""

from __future__ import annotations

from typing import Any

from conftest import SERVICE, SOCKET, Archy, nonce
from harness import log, retry_until


def entries(archy: Archy, message: str = "", **match: str) -> list[dict[str, Any]]:
    """Journal entries whose MESSAGE starts with `message` and whose fields equal `match`."""
    return [e for e in archy.journal("--since", "-5min")
            if str(e.get("MESSAGE", "")).startswith(message)
            and all(e.get(k) == v for k, v in match.items())]


def test_requests_and_audit_lines_carry_their_fields(archy: Archy) -> None:
    archy.w.systemctl("enable", "--now", SOCKET)
    tag = nonce()
    session = f"e2e-journal-{tag}"
    result = archy.rpc("execute", {"command": f"echo audit-{tag}; (exit 3)", "session": session})
    assert result["state"] == "exited" and result["exit_code"] == 3
    assert result["output"].strip() == f"audit-{tag}"
    pid = archy.service()["MainPID"]

    request = retry_until(
        "the execute request line",
        lambda: entries(archy, "request execute ", F_METHOD="execute", F_SESSION=session),
    )[-1]
    assert request["_SYSTEMD_USER_UNIT"] == SERVICE
    assert request["_PID"] == pid
    assert request["SYSLOG_IDENTIFIER"] == "archy-executor"
    assert float(request["F_DURATION_MS"]) >= 0
    assert int(request["F_PEER_PID"]) > 0
    assert request["PRIORITY"] == "5"  # INFO -> notice

    audit = retry_until(
        "the audit line",
        lambda: entries(archy, f"command {result['id']} exited 3: ", F_SESSION=session),
    )[-1]
    assert audit["TARGET"] == "archy::audit"
    assert audit["F_COMMAND"] == f"echo audit-{tag}; (exit 3)"
    assert audit["F_EXIT_CODE"] == "3"
    assert audit["F_ID"] == result["id"]
    assert int(audit["F_DURATION_MS"]) >= 0
    assert audit["_SYSTEMD_USER_UNIT"] == SERVICE

    # The same lines as a person reads them, fields included.
    text = archy.w.run(["journalctl", "--user", "-u", "archy", "--no-pager", "--since", "-5min",
                        "-o", "verbose"]).stdout
    assert f"F_COMMAND=echo audit-{tag}; (exit 3)" in text
    assert "F_METHOD=execute" in text
    log(f"journal: request F_DURATION_MS={request['F_DURATION_MS']}, audit F_DURATION_MS={audit['F_DURATION_MS']}")


def test_secret_input_is_never_logged(archy: Archy) -> None:
    tag = nonce()
    session = f"e2e-secret-{tag}"
    secret = f"hunter2-{tag}"
    started = archy.rpc("execute", {"command": "read -r -s answer; echo got ${#answer}",
                                    "session": session, "wait": False})
    archy.rpc("send_input", {"session": session, "text": secret, "secret": True})
    result = archy.rpc("wait", {"id": started["id"], "timeout_ms": 10000})
    assert result["exit_code"] == 0 and result["output"].strip() == f"got {len(secret)}"
    retry_until("the input line", lambda: entries(archy, MESSAGE="input sent", F_SESSION=session))
    everything = archy.w.run(["journalctl", "--user", "--no-pager", "-o", "export", "--since", "-5min"]).stdout
    assert secret not in everything
