//! Commands through the real daemon and a real tmux server: exit codes, exact output, shell
//! state, prompts, interrupts, queueing, streaming, sessions and their errors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

#[test]
fn exit_codes() {
    let d = Daemon::start();
    let mut c = d.client();
    assert_exited(&c.exec("true"), 0, "");
    assert_exited(&c.exec("false"), 1, "");
    assert_exited(&c.exec("(exit 42)"), 42, "");
    assert_exited(&c.exec("sh -c 'exit 255'"), 255, "");
    // A failing command in the middle does not hide the last one's code.
    assert_exited(&c.exec("false; echo after"), 0, "after\n");
    assert_exited(&c.exec("echo before; (exit 3)"), 3, "before\n");
}

#[test]
fn back_to_back_commands_all_run() {
    // Each command is typed the moment the previous one's end marker arrives.
    let d = Daemon::start();
    let mut c = d.client();
    for i in 0..40 {
        let r = c.exec_with(&format!("echo n{i}"), json!({"timeout_ms": 10_000}));
        assert_exited(&r, 0, &format!("n{i}\n"));
    }
}

#[test]
fn exact_output_of_a_multi_line_script() {
    let d = Daemon::start();
    let mut c = d.client();
    let script = "echo one\nfor i in 1 2 3; do\n  echo \"item $i\"\ndone\nprintf 'no newline'\nprintf '\\n  indented\\n\\nblank above\\n'";
    assert_exited(
        &c.exec(script),
        0,
        "one\nitem 1\nitem 2\nitem 3\nno newline\n  indented\n\nblank above\n",
    );
    // Output that does not end its line.
    assert_exited(
        &c.exec("printf 'a\\nno newline at the end'"),
        0,
        "a\nno newline at the end",
    );
    assert_exited(&c.exec("printf partial"), 0, "partial");
    // A script that defines and calls a function, and ends on a failing test.
    let script = "f() {\n  local x=$1\n  echo \"f got $x\"\n}\nf 7\n[ 1 -eq 2 ]";
    assert_exited(&c.exec(script), 1, "f got 7\n");
}

#[test]
fn heredocs() {
    let d = Daemon::start();
    let mut c = d.client();
    let quoted = "cat <<'EOF'\nliteral $HOME `x` \\n\n  indented\nEOF";
    assert_exited(&c.exec(quoted), 0, "literal $HOME `x` \\n\n  indented\n");
    let expanding = "X=5\ncat <<EOF\nx=$X sum=$((X+1))\nEOF";
    assert_exited(&c.exec(expanding), 0, "x=5 sum=6\n");
    let tabs = "cat <<-EOF\n\tstripped tab\nEOF";
    assert_exited(&c.exec(tabs), 0, "stripped tab\n");
}

#[test]
fn quotes() {
    let d = Daemon::start();
    let mut c = d.client();
    assert_exited(
        &c.exec(r#"echo 'single "double" $HOME \n'"#),
        0,
        "single \"double\" $HOME \\n\n",
    );
    assert_exited(
        &c.exec(r#"x=v; echo "double 'single' $x \$x \"esc\"""#),
        0,
        "double 'single' v $x \"esc\"\n",
    );
    assert_exited(
        &c.exec(r#"printf '%s|\n' "a  b" 'c   d' e\ f"#),
        0,
        "a  b|\nc   d|\ne f|\n",
    );
    assert_exited(&c.exec(r#"echo $'tab\there'"#), 0, "tab\there\n");
}

#[test]
fn trailing_semicolon_and_leading_dash() {
    let d = Daemon::start();
    let mut c = d.client();
    // tmux's command-line send-keys drops a trailing `;`: the daemon must not.
    assert_exited(&c.exec("echo semi;"), 0, "semi\n");
    assert_exited(&c.exec("echo a; echo b;"), 0, "a\nb\n");
    assert_exited(&c.exec("printf -- '-leading\\n'"), 0, "-leading\n");
    assert_exited(&c.exec("echo -- -x"), 0, "-- -x\n");
    // A command line that itself starts with `-` (tmux would read it as an option).
    assert_exited(
        &c.exec("-archy-no-such-cmd 2>/dev/null; echo rc=$?"),
        0,
        "rc=127\n",
    );
}

#[test]
fn hundred_thousand_lines_counted_whole() {
    let d = Daemon::start();
    let mut c = d.client();
    let expected: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(expected.len(), 588_895);

    let r = c.exec("seq 1 100000");
    assert_eq!(state(&r), "exited", "{r}");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["output_bytes"], 588_895);
    // The default max_bytes is 64 KiB: the tail, marked truncated.
    assert_eq!(r["truncated"], true);
    assert!(output(&r).len() <= 65_536);
    assert!(expected.ends_with(output(&r)), "output is not the tail");

    // `output` pages through every byte.
    let cmd = id(&r);
    let mut whole = String::new();
    let mut pages = 0;
    loop {
        let page = c.ok(
            "output",
            json!({"id": cmd, "offset": whole.len(), "limit": 100_000}),
        );
        assert_eq!(page["offset"], whole.len());
        assert_eq!(page["total_bytes"], 588_895);
        let data = page["data"].as_str().unwrap();
        assert!(data.len() <= 100_000);
        whole.push_str(data);
        pages += 1;
        if page["complete"] == true {
            break;
        }
        assert!(!data.is_empty(), "an empty page that is not complete");
        assert!(pages < 20, "too many pages");
    }
    assert_eq!(pages, 6);
    assert_eq!(whole.lines().count(), 100_000);
    assert!(whole == expected, "paged output differs from seq 1 100000");

    // The default limit returns it in one page.
    let page = c.ok("output", json!({"id": cmd}));
    assert_eq!(page["data"].as_str().unwrap().len(), 588_895);
    assert_eq!(page["complete"], true);
}

#[test]
fn max_bytes_keeps_the_tail() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("seq 1 1000", json!({"max_bytes": 10}));
    assert_eq!(r["truncated"], true);
    assert_eq!(output(&r), "\n999\n1000\n");
    assert_eq!(r["output_bytes"], 3_893);
    let r = c.exec_with("echo short", json!({"max_bytes": 10}));
    assert_exited(&r, 0, "short\n");
}

#[test]
fn unicode() {
    let d = Daemon::start();
    let mut c = d.client();
    let text = "héllo wörld ✓ 日本語 🎉 ∑";
    assert_exited(&c.exec(&format!("echo '{text}'")), 0, &format!("{text}\n"));
    // Unicode in the command file itself, in a variable and through a pipe.
    assert_exited(
        &c.exec("v='ünï'; echo \"${#v} $v\" | sed 's/ï/i/'"),
        0,
        "3 üni\n",
    );
}

#[test]
fn cleaned_output_ansi_and_carriage_returns() {
    let d = Daemon::start();
    let mut c = d.client();
    assert_exited(
        &c.exec(r"printf '\033[1;31mred\033[0m plain\n'"),
        0,
        "red plain\n",
    );
    // A progress line redrawn with `\r`: the reader sees the last state.
    assert_exited(&c.exec(r"printf '10%%\r50%%\r100%%\n'"), 0, "100%\n");
    // stderr is the terminal too.
    assert_exited(&c.exec("echo to-stderr >&2"), 0, "to-stderr\n");
}

#[test]
fn cd_and_export_persist() {
    let d = Daemon::start();
    let mut c = d.client();
    let dir = d.path().join("work dir");
    std::fs::create_dir(&dir).unwrap();
    assert_exited(
        &c.exec(&format!(
            "cd '{}' && export ARCHY_T=42 && X_LOCAL=7",
            dir.display()
        )),
        0,
        "",
    );
    assert_exited(
        &c.exec("pwd; echo $ARCHY_T $X_LOCAL"),
        0,
        &format!("{}\n42 7\n", dir.display()),
    );
    // A new session starts fresh.
    let r = c.exec_with("echo \"[$ARCHY_T]\"", json!({"session": "other"}));
    assert_exited(&r, 0, "[]\n");
}

#[test]
fn env_and_cwd_params() {
    let d = Daemon::start();
    let mut c = d.client();
    let dir = d.path().join("cwd");
    std::fs::create_dir(&dir).unwrap();
    let r = c.exec_with(
        "echo \"$FOO|$BAR\"; pwd",
        json!({"env": {"FOO": "bar baz", "BAR": "it's \"q\" $x"}, "cwd": dir}),
    );
    assert_exited(
        &r,
        0,
        &format!("bar baz|it's \"q\" $x\n{}\n", dir.display()),
    );
    // A missing directory fails the command, not the call.
    let r = c.exec_with("echo never", json!({"cwd": d.path().join("missing")}));
    assert_eq!(state(&r), "exited");
    assert_ne!(r["exit_code"], 0);
    assert!(!output(&r).contains("never"), "{r}");
    // Bad variable names are bad params.
    let e = c.err_code(
        "execute",
        json!({"command": "true", "env": {"1BAD": "x"}}),
        INVALID_PARAMS,
    );
    assert!(e.message.contains("1BAD"), "{e:?}");
    let e = c.err_code(
        "execute",
        json!({"command": "true", "env": {"A=B": "x"}}),
        INVALID_PARAMS,
    );
    assert!(e.message.contains("A=B"), "{e:?}");
}

#[test]
fn password_prompt_is_detected_and_answered_and_never_logged() {
    let mut d = Daemon::builder().env("ARCHY_LOG", "trace").start();
    let mut c = d.client();
    let secret = format!("s3cr3t-{}", random_hex());
    let started = Instant::now();
    let r = c.exec_with(
        "read -s -p 'Password: ' x; echo; echo got-$x",
        json!({"timeout_ms": 10_000}),
    );
    assert_eq!(state(&r), "waiting_for_input", "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "detection took {:?}",
        started.elapsed()
    );
    assert!(
        r["prompt"].as_str().unwrap_or("").contains("Password"),
        "{r}"
    );
    assert_eq!(r["exit_code"], Value::Null);

    let st = c.ok("status", json!({}));
    assert_eq!(st["state"], "waiting_for_input", "{st}");
    assert_eq!(st["command_id"], r["id"]);

    let sent = c.ok("send_input", json!({"text": secret, "secret": true}));
    assert_eq!(sent["bytes"], secret.len());
    let done = c.wait(&id(&r));
    assert_eq!(state(&done), "exited", "{done}");
    assert_eq!(done["exit_code"], 0);
    assert!(output(&done).contains(&format!("got-{secret}")), "{done}");
    assert!(done.get("prompt").is_none_or(Value::is_null), "{done}");

    // Everything it logged, up to its exit.
    drop(c);
    assert!(d.stop().success());
    let log = d.log();
    assert!(
        log.contains("input sent"),
        "the input is logged as an event:\n{log}"
    );
    assert!(
        !log.contains(&secret),
        "the secret reached the daemon's log:\n{log}"
    );
}

#[test]
fn read_prompt_waits_for_plain_input() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with(
        "read -p 'Name? ' n; echo hello-$n",
        json!({"timeout_ms": 10_000}),
    );
    assert_eq!(state(&r), "waiting_for_input", "{r}");
    assert!(r["prompt"].as_str().unwrap().contains("Name?"), "{r}");
    c.ok("send_input", json!({"text": "ada"}));
    let done = c.wait(&id(&r));
    assert_eq!(state(&done), "exited", "{done}");
    assert!(output(&done).ends_with("hello-ada\n"), "{done}");
}

#[test]
fn interrupt_a_running_command() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("sleep 30", json!({"wait": false}));
    assert_eq!(state(&r), "running");
    let started = Instant::now();
    let i = c.ok("interrupt", json!({"id": id(&r)}));
    assert_eq!(i["id"], r["id"]);
    assert_eq!(i["signal"], "INT");
    let done = c.ok("wait", json!({"id": id(&r), "timeout_ms": 5_000}));
    assert_eq!(state(&done), "interrupted", "{done}");
    assert_eq!(done["exit_code"], Value::Null);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The session is usable again.
    assert_exited(&c.exec("echo next"), 0, "next\n");

    // By session, with TERM.
    let r = c.exec_with("sleep 30", json!({"wait": false, "session": "s2"}));
    let i = c.ok("interrupt", json!({"session": "s2", "signal": "TERM"}));
    assert_eq!(i["signal"], "TERM");
    assert_eq!(i["id"], r["id"]);
    let done = c.ok("wait", json!({"id": id(&r), "timeout_ms": 5_000}));
    assert_eq!(state(&done), "interrupted", "{done}");

    c.err_code(
        "interrupt",
        json!({"session": "s2", "signal": "BOGUS"}),
        INVALID_PARAMS,
    );
    // Interrupting a finished command changes nothing.
    let i = c.ok("interrupt", json!({"id": id(&r)}));
    assert_eq!(i["id"], Value::Null);
    assert_eq!(state(&c.wait(&id(&r))), "interrupted");
}

#[test]
fn queued_command_runs_after_the_running_one() {
    let d = Daemon::start();
    let mut c = d.client();
    let f = d.path().join("order");
    let first = c.exec_with(
        &format!("sleep 1; echo first >> '{}'", f.display()),
        json!({"wait": false}),
    );
    let second = c.exec_with(
        &format!("echo second >> '{}'; cat '{}'", f.display(), f.display()),
        json!({"wait": false, "queue": true}),
    );
    assert_eq!(state(&second), "running");
    assert_ne!(second["id"], first["id"]);
    let sessions = c.ok("list_sessions", json!({}));
    let s = &sessions["sessions"][0];
    assert_eq!(s["command_id"], first["id"], "{sessions}");
    assert_eq!(s["queued"], 1, "{sessions}");

    let done = c.wait(&id(&second));
    assert_exited(&done, 0, "first\nsecond\n");
    assert_exited(&c.wait(&id(&first)), 0, "");
    // A queued call that waits returns when its own command ends.
    let a = c.exec_with("sleep 0.3; echo a", json!({"wait": false}));
    let b = c.exec_with("echo b", json!({"queue": true}));
    assert_exited(&b, 0, "b\n");
    assert_exited(&c.wait(&id(&a)), 0, "a\n");
}

#[test]
fn busy_session_refuses_a_second_command() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("sleep 30", json!({"wait": false}));
    let e = c.err_code("execute", json!({"command": "echo no"}), SESSION_BUSY);
    assert_eq!(e.data["running_id"], r["id"], "{e:?}");
    assert!(e.message.contains(&id(&r)), "{e:?}");
    // Other sessions are not affected.
    assert_exited(
        &c.exec_with("echo yes", json!({"session": "free"})),
        0,
        "yes\n",
    );
    assert_eq!(
        state(&c.ok("wait", json!({"id": id(&r), "timeout_ms": 0}))),
        "running"
    );
    c.ok("interrupt", json!({"id": id(&r)}));
    assert_eq!(state(&c.wait(&id(&r))), "interrupted");
    // The refused command never ran.
    let h = c.ok("history", json!({"session": "archy_session"}));
    assert!(!h.to_string().contains("echo no"), "{h}");
}

#[test]
fn wait_false_then_wait() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("sleep 0.3; echo done", json!({"wait": false}));
    assert_eq!(state(&r), "running");
    assert_eq!(r["exit_code"], Value::Null);
    assert_eq!(r["session"], "archy_session");
    assert_eq!(r["command"], "sleep 0.3; echo done");
    assert!(r["id"].as_str().unwrap().len() > 3);
    let done = c.wait(&id(&r));
    assert_exited(&done, 0, "done\n");
    assert!(done["duration_ms"].as_u64().unwrap() >= 300, "{done}");
    // Waiting again on a finished command returns at once, the same result.
    assert_eq!(c.wait(&id(&r)), done);
}

#[test]
fn timeout_is_not_an_error() {
    let d = Daemon::start();
    let mut c = d.client();
    let started = Instant::now();
    let r = c.exec_with("sleep 2; echo late", json!({"timeout_ms": 200}));
    let took = started.elapsed();
    assert_eq!(state(&r), "running", "{r}");
    assert!(took < Duration::from_millis(1_800), "took {took:?}");
    let w = c.ok("wait", json!({"id": id(&r), "timeout_ms": 100}));
    assert_eq!(state(&w), "running");
    let done = c.ok("wait", json!({"id": id(&r), "timeout_ms": 10_000}));
    assert_exited(&done, 0, "late\n");
}

#[test]
fn subscribe_output_streams_chunks_then_the_result() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with(
        "sleep 0.3; for i in 1 2 3; do echo line$i; sleep 0.2; done",
        json!({"wait": false}),
    );
    c.send(&json!({"jsonrpc": "2.0", "id": "sub", "method": "subscribe_output", "params": {"id": id(&r)}}));
    let reply = c.reply_to(&json!("sub"));
    let sub = to_result(&reply).expect("subscribe_output");
    assert!(sub.is_u64() || sub.is_string(), "subscription id: {sub}");

    let mut data = String::new();
    let mut chunks = 0;
    let result = loop {
        let n = c.notification("output_event");
        assert_eq!(n["jsonrpc"], "2.0");
        assert!(n.get("id").is_none(), "a notification has no id: {n}");
        assert_eq!(n["params"]["subscription"], sub, "{n}");
        let ev = &n["params"]["result"];
        assert_eq!(ev["id"], r["id"], "{n}");
        if let Some(chunk) = ev.get("data").and_then(Value::as_str) {
            data.push_str(chunk);
            chunks += 1;
        } else {
            break ev["result"].clone();
        }
    };
    assert_exited(&result, 0, "line1\nline2\nline3\n");
    assert!(
        chunks >= 2,
        "expected streaming in several chunks, got {chunks}: {data:?}"
    );
    assert_eq!(data, "line1\nline2\nline3\n");

    // Subscribing to a finished command yields the final result at once.
    c.send(&json!({"jsonrpc": "2.0", "id": "sub2", "method": "subscribe_output", "params": {"id": id(&r)}}));
    to_result(&c.reply_to(&json!("sub2"))).unwrap();
    let n = c.notification("output_event");
    assert_exited(&n["params"]["result"]["result"], 0, "line1\nline2\nline3\n");

    // An unknown id is refused.
    c.err_code("subscribe_output", json!({"id": "c-nope"}), UNKNOWN_COMMAND);
}

#[test]
fn unsubscribe_output_by_name() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("sleep 30", json!({"wait": false}));
    let sub = c.ok("subscribe_output", json!({"id": id(&r)}));
    // The OpenRPC document names the param `subscription`, by name like every method.
    assert_eq!(
        c.ok("unsubscribe_output", json!({"subscription": sub})),
        true
    );
    assert_eq!(
        c.ok("unsubscribe_output", json!({"subscription": sub})),
        false
    );
    c.ok("interrupt", json!({"id": id(&r)}));
}

/// jsonrpsee sends a subscription's id before it registers it; an unsubscribe sent the moment
/// the id arrives must still find it, however busy the daemon is.
#[test]
fn unsubscribe_right_after_subscribe_always_finds_the_subscription() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("sleep 30", json!({"wait": false}));
    let cmd = id(&r);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut c = d.client();
            let cmd = cmd.clone();
            std::thread::spawn(move || {
                for round in 0..150 {
                    let sub = c.ok("subscribe_output", json!({"id": cmd}));
                    let gone = c.ok("unsubscribe_output", json!({"subscription": sub}));
                    assert_eq!(gone, true, "round {round}: subscription {sub} not found");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
    c.ok("interrupt", json!({"id": cmd}));
}

/// The command file can vanish between the daemon writing it and the shell reading it (a
/// clean-up job, a user's `rm`): the command must still end, with the shell's error, never
/// run on until its timeout.
#[test]
fn a_command_file_removed_before_the_shell_reads_it_still_ends() {
    for shell in ["bash", "zsh", "fish"] {
        if shell == "bash" || have(shell) {
            removed_command_file_ends(shell);
        }
    }
}

fn removed_command_file_ends(shell: &str) {
    let d = Daemon::builder()
        .config(&format!("[executor]\nshell = \"{shell}\"\n"))
        .start();
    let mut c = d.client();
    assert_exited(&c.exec("echo up"), 0, "up\n");
    let file = d
        .path()
        .join("archy")
        .join(&d.tmux)
        .join("cmds/archy_session.sh");
    assert!(file.exists(), "{} is not where commands go", file.display());
    let stop = Arc::new(AtomicBool::new(false));
    let remover = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&file);
            }
        })
    };
    let mut missing = 0;
    for _ in 0..20 {
        let r = c.exec_with("echo ran", json!({"timeout_ms": 10_000}));
        assert_eq!(state(&r), "exited", "{shell}: {r}");
        if r["exit_code"] != 0 {
            assert!(output(&r).contains("archy_session.sh"), "{shell}: {r}");
            missing += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    remover.join().unwrap();
    assert!(
        missing > 0,
        "{shell}: the file was never removed in time: nothing was tested"
    );
    assert_exited(&c.exec("echo after"), 0, "after\n");
}

#[test]
fn subscriptions_per_connection_are_capped() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec_with("sleep 30", json!({"wait": false}));
    for _ in 0..64 {
        c.ok("subscribe_output", json!({"id": id(&r)}));
    }
    c.err_code(
        "subscribe_output",
        json!({"id": id(&r)}),
        TOO_MANY_SUBSCRIPTIONS,
    );
    // Another connection has its own budget.
    let mut c2 = d.client();
    c2.ok("subscribe_output", json!({"id": id(&r)}));
    c2.ok("interrupt", json!({"id": id(&r)}));
}

#[test]
fn killed_tmux_server_is_reported_then_recovered() {
    let d = Daemon::start();
    let mut c = d.client();
    // Several rounds: the end of a server and the start of the next race with each other.
    for round in 0..5 {
        let r = c.exec_with("sleep 5", json!({"wait": false}));
        d.tmux(&["kill-server"]);
        let started = Instant::now();
        let done = c.ok("wait", json!({"id": id(&r), "timeout_ms": 10_000}));
        assert_eq!(state(&done), "interrupted", "round {round}: {done}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "round {round}: noticed after {:?}",
            started.elapsed()
        );
        // The next command starts a new server and runs.
        let back = c.call(
            "execute",
            json!({"command": "echo back", "timeout_ms": 10_000}),
        );
        let back = back.unwrap_or_else(|e| panic!("round {round}: not recovered: {e:?}"));
        assert_exited(&back, 0, "back\n");
        assert_exited(&c.exec("echo again"), 0, "again\n");
        assert_eq!(c.ok("check_session", json!({}))["exists"], true);
    }
}

#[test]
fn close_session() {
    let d = Daemon::start();
    let mut c = d.client();
    assert_exited(&c.exec_with("true", json!({"session": "s1"})), 0, "");
    assert_eq!(
        c.ok("check_session", json!({"session": "s1"}))["exists"],
        true
    );
    let r = c.exec_with("sleep 30", json!({"session": "s1", "wait": false}));
    assert_eq!(c.ok("close_session", json!({"session": "s1"}))["closed"], 1);
    assert_eq!(
        c.ok("check_session", json!({"session": "s1"}))["exists"],
        false
    );
    // Its running command ended.
    let done = c.ok("wait", json!({"id": id(&r), "timeout_ms": 5_000}));
    assert_eq!(state(&done), "interrupted", "{done}");
    assert_eq!(c.ok("close_session", json!({"session": "s1"}))["closed"], 0);
    let tmux_sessions = d.tmux(&["list-sessions", "-F", "#{session_name}"]);
    assert!(!tmux_sessions.lines().any(|l| l == "s1"), "{tmux_sessions}");
    // The name can be used again, with a fresh shell.
    assert_exited(
        &c.exec_with("echo reborn", json!({"session": "s1"})),
        0,
        "reborn\n",
    );
}

#[test]
fn capture_shows_the_pane() {
    let d = Daemon::start();
    let mut c = d.client();
    c.exec("echo capture-me; seq 1 300");
    let cap = c.ok("capture", json!({}));
    let text = cap["output"].as_str().unwrap();
    assert_eq!(cap["lines"], text.lines().count(), "{cap}");
    assert!(text.contains("300"), "{text}");
    // No marker bytes leak into what a person sees.
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains("archy;end"), "{text:?}");
    // History included: 300 lines went by on a 50-line pane.
    let cap = c.ok("capture", json!({"lines": 400}));
    let text = cap["output"].as_str().unwrap();
    assert!(text.contains("capture-me"), "{text}");
    assert!(text.lines().any(|l| l == "1"), "{text}");
    let cap = c.ok("capture", json!({"lines": 3}));
    assert_eq!(cap["lines"], 3, "{cap}");
    assert_eq!(cap["output"].as_str().unwrap().lines().count(), 3);
}

#[test]
fn status_idle_running_and_back() {
    let d = Daemon::start();
    let mut c = d.client();
    c.err_code("status", json!({}), SESSION_NOT_FOUND);
    c.exec("true");
    let st = c.ok("status", json!({}));
    assert_eq!(st["state"], "idle", "{st}");
    assert_eq!(st["session"], "archy_session");
    assert_eq!(st["foreground"], "bash", "{st}");
    assert_eq!(st["command_id"], Value::Null);
    let r = c.exec_with("sleep 30", json!({"wait": false}));
    let st = c.ok("status", json!({}));
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(st["command_id"], r["id"]);
    c.ok("interrupt", json!({"id": id(&r)}));
    c.wait(&id(&r));
    let st = c.ok("status", json!({}));
    assert_eq!(st["state"], "idle", "{st}");
    assert_eq!(st["command_id"], Value::Null);
}

#[test]
fn list_sessions_check_session_and_history() {
    let d = Daemon::start();
    let mut c = d.client();
    assert_eq!(c.ok("list_sessions", json!({}))["sessions"], json!([]));
    assert_eq!(
        c.ok("check_session", json!({"session": "b"}))["exists"],
        false
    );
    c.exec_with("echo 1", json!({"session": "b"}));
    c.exec_with("echo 2", json!({"session": "a"}));
    c.exec_with("echo 3", json!({"session": "b"}));
    assert_eq!(
        c.ok("check_session", json!({"session": "b"}))["exists"],
        true
    );
    assert_eq!(c.ok("check_session", json!({}))["exists"], false);

    let list = c.ok("list_sessions", json!({}));
    let names: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "{list}");
    for s in list["sessions"].as_array().unwrap() {
        assert_eq!(s["command_id"], Value::Null);
        assert_eq!(s["queued"], 0);
        assert_eq!(s["attached"], 0);
    }

    let all = c.ok("history", json!({}));
    let cmds: Vec<&str> = all["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(cmds, ["echo 1", "echo 2", "echo 3"], "newest last: {all}");
    let b = c.ok("history", json!({"session": "b", "limit": 1}));
    assert_eq!(b["commands"].as_array().unwrap().len(), 1);
    assert_exited(&b["commands"][0], 0, "3\n");
    let two = c.ok("history", json!({"limit": 2}));
    assert_eq!(two["commands"][0]["command"], "echo 2");
    assert_eq!(two["commands"][1]["command"], "echo 3");
    let info = c.ok("daemon_info", json!({}));
    assert_eq!(info["commands_run"], 3);
    assert_eq!(info["sessions"], 2);
}

#[test]
fn output_paging_with_offset_and_limit() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.exec("printf 'abcdefghij'");
    let cmd = id(&r);
    let p = c.ok("output", json!({"id": cmd, "offset": 2, "limit": 3}));
    assert_eq!(p["data"], "cde");
    assert_eq!(p["offset"], 2);
    assert_eq!(p["total_bytes"], 10);
    assert_eq!(p["complete"], false);
    let p = c.ok("output", json!({"id": cmd, "offset": 7, "limit": 100}));
    assert_eq!(p["data"], "hij");
    assert_eq!(p["complete"], true);
    let p = c.ok("output", json!({"id": cmd, "offset": 50}));
    assert_eq!(p["data"], "");
    assert_eq!(p["complete"], true);
    // Pages never split a character.
    let r = c.exec("printf 'aé'");
    let p = c.ok("output", json!({"id": id(&r), "offset": 0, "limit": 2}));
    assert_eq!(p["data"], "a");
}

#[test]
fn session_names_are_validated() {
    let d = Daemon::start();
    let mut c = d.client();
    let long = "x".repeat(65);
    for bad in [
        "",
        "a b",
        "x:y",
        "a.b",
        "_archy_hub",
        "é",
        long.as_str(),
        "$(id)",
    ] {
        for method in [
            "execute",
            "check_session",
            "capture",
            "status",
            "close_session",
        ] {
            let e = c.err_code(
                method,
                json!({"command": "true", "session": bad}),
                INVALID_PARAMS,
            );
            assert!(e.message.contains("session"), "{method} {bad:?}: {e:?}");
        }
    }
    // The edges of what is allowed.
    let ok = "A-z_0+9@x".to_string() + &"y".repeat(55);
    assert_eq!(ok.len(), 64);
    assert_exited(
        &c.exec_with("echo fine", json!({"session": ok})),
        0,
        "fine\n",
    );
    assert_eq!(c.ok("list_sessions", json!({}))["sessions"][0]["name"], ok);
    // A name that looks like a tmux option.
    assert_exited(
        &c.exec_with("echo dash", json!({"session": "-t"})),
        0,
        "dash\n",
    );
    assert_eq!(
        c.ok("check_session", json!({"session": "-t"}))["exists"],
        true
    );
    assert_eq!(c.ok("status", json!({"session": "-t"}))["state"], "idle");
    assert_eq!(c.ok("close_session", json!({"session": "-t"}))["closed"], 1);
}

#[test]
fn unknown_ids_and_sessions() {
    let d = Daemon::start();
    let mut c = d.client();
    for method in ["wait", "output"] {
        let e = c.err_code(method, json!({"id": "c-000000000000"}), UNKNOWN_COMMAND);
        assert_eq!(e.data["id"], "c-000000000000", "{e:?}");
    }
    c.err_code(
        "interrupt",
        json!({"id": "c-000000000000"}),
        UNKNOWN_COMMAND,
    );
    for (method, params) in [
        ("send_input", json!({"text": "x", "session": "ghost"})),
        ("capture", json!({"session": "ghost"})),
        ("status", json!({"session": "ghost"})),
        ("interrupt", json!({"session": "ghost"})),
    ] {
        let e = c.err_code(method, params, SESSION_NOT_FOUND);
        assert_eq!(e.data["session"], "ghost", "{method}: {e:?}");
    }
    assert_eq!(
        c.ok("close_terminal", json!({"session": "ghost"}))["closed"],
        0
    );
    // Empty and blank commands are bad params, not commands.
    c.err_code("execute", json!({"command": ""}), INVALID_PARAMS);
    c.err_code("execute", json!({"command": "  \n"}), INVALID_PARAMS);
}

#[test]
fn open_terminal_errors() {
    let d = Daemon::start();
    let mut c = d.client();
    let e = c.err_code(
        "open_terminal",
        json!({"terminal": "does-not-exist"}),
        NO_TERMINAL,
    );
    assert_eq!(e.data["tried"], json!(["does-not-exist"]), "{e:?}");
    // A real terminal program with no display to open on fails to start.
    if have("foot") {
        let e = c.err_code(
            "open_terminal",
            json!({"terminal": "foot", "env": {}}),
            TERMINAL_FAILED,
        );
        assert_eq!(e.data["terminal"], "foot", "{e:?}");
        assert!(e.message.contains("DISPLAY"), "{e:?}");
    }
}

#[test]
fn parallel_sessions_run_independently() {
    let d = Daemon::start();
    let mut c = d.client();
    let slow = c.exec_with("sleep 5", json!({"wait": false, "session": "slow"}));
    assert_exited(
        &c.exec_with("echo quick", json!({"session": "quick"})),
        0,
        "quick\n",
    );
    let still = c.ok("wait", json!({"id": id(&slow), "timeout_ms": 0}));
    assert_eq!(state(&still), "running");
    c.ok("interrupt", json!({"id": id(&slow)}));
    // Two clients at once on two sessions.
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket);
                for i in 0..5 {
                    let r = c.exec_with(
                        &format!("echo {n}-{i}"),
                        json!({"session": format!("p{n}")}),
                    );
                    assert_exited(&r, 0, &format!("{n}-{i}\n"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn user_dotfiles_do_not_confuse_the_engine() {
    // A bashrc with its own prompt hook, a coloured prompt, and a tmux.conf that renumbers
    // windows and panes: the markers, exit codes and output must not change.
    let d = Daemon::builder()
        .file(
            "home/.bashrc",
            "PS1='\\[\\e[32m\\]\\u@\\h \\w \\$\\[\\e[0m\\] '\nPROMPT_COMMAND='__user_hook'\n__user_hook() { printf '\\033]0;title\\007'; }\nset -o noclobber\nalias ls='ls --color=always'\n",
        )
        .file(
            "home/.tmux.conf",
            "set -g base-index 1\nsetw -g pane-base-index 1\nset -g history-limit 50\n",
        )
        .start();
    let mut c = d.client();
    assert_exited(&c.exec("echo hi; (exit 3)"), 3, "hi\n");
    assert_exited(&c.exec("seq 1 200 | tail -n 2"), 0, "199\n200\n");
    for i in 0..10 {
        assert_exited(&c.exec(&format!("echo {i}")), 0, &format!("{i}\n"));
    }
    let r = c.exec("seq 1 5000");
    assert_eq!(r["output_bytes"], 23_893);
}

#[test]
fn interrupt_right_after_start_while_the_prompt_hook_runs() {
    // The user's prompt hook runs after Archy's end marker, so the next command is typed
    // while it runs and waits in the terminal's input queue. An interrupt at that moment
    // must still end that command (and leave the session usable).
    let d = Daemon::builder()
        .file("home/.bashrc", "PROMPT_COMMAND='sleep 0.3'\n")
        .start();
    let mut c = d.client();
    assert_exited(&c.exec("true"), 0, "");
    let r = c.exec_with("sleep 5", json!({"wait": false}));
    c.ok("interrupt", json!({"id": id(&r)}));
    let done = c.ok("wait", json!({"id": id(&r), "timeout_ms": 8_000}));
    assert_ne!(state(&done), "running", "the command never ended: {done}");
    let after = c.call(
        "execute",
        json!({"command": "echo usable", "timeout_ms": 8_000}),
    );
    let after = after.unwrap_or_else(|e| panic!("session wedged: {e:?}"));
    assert_exited(&after, 0, "usable\n");
}

#[test]
fn commands_do_not_inherit_systemd_variables() {
    let d = Daemon::builder()
        .env("JOURNAL_STREAM", "8:1234")
        .env("WATCHDOG_USEC", "0")
        .env("INVOCATION_ID", "0123456789abcdef")
        .start();
    let mut c = d.client();
    let r = c.exec(
        "env | grep -E '^(NOTIFY_SOCKET|LISTEN_[A-Z]+|WATCHDOG_[A-Z]+|JOURNAL_STREAM|INVOCATION_ID)=' ; echo end",
    );
    assert_exited(&r, 0, "end\n");
    // What the session does get.
    assert_exited(&c.exec("echo $ARCHY_SESSION"), 0, "archy_session\n");
}

#[test]
fn installed_shells() {
    // bash always; zsh and fish when installed.
    for shell in ["bash", "zsh", "fish"] {
        if shell != "bash" && !have(shell) {
            eprintln!("{shell} is not installed: skipped");
            continue;
        }
        let d = Daemon::builder()
            .config(&format!("[executor]\nshell = \"{shell}\"\n"))
            .start();
        let mut c = d.client();
        assert_exited(&c.exec("echo hi"), 0, "hi\n");
        assert_exited(&c.exec("false"), 1, "");
        assert_exited(&c.exec("sh -c 'exit 42'"), 42, "");
        let dir = d.path().join("w");
        std::fs::create_dir(&dir).unwrap();
        c.exec(&format!("cd '{}'", dir.display()));
        assert_exited(&c.exec("pwd"), 0, &format!("{}\n", dir.display()));
        assert_exited(&c.exec("echo semi;"), 0, "semi\n");
        let r = c.exec("seq 1 100000");
        assert_eq!(r["output_bytes"], 588_895, "{shell}");
        assert_exited(&c.exec("echo one\necho two"), 0, "one\ntwo\n");
        assert_exited(&c.exec("printf '%s\\n' -leading"), 0, "-leading\n");
        assert_exited(&c.exec("echo 'héllo ✓ 日本'"), 0, "héllo ✓ 日本\n");
        assert_exited(
            &c.exec(r#"echo "double \"q\"" 'single "x"'"#),
            0,
            "double \"q\" single \"x\"\n",
        );
        c.exec("export ARCHY_T=42");
        assert_exited(&c.exec("echo $ARCHY_T"), 0, "42\n");
        let r = c.exec_with(
            "echo $FOO; pwd",
            json!({"env": {"FOO": "a 'b' \"c\" $d"}, "cwd": d.path()}),
        );
        assert_exited(&r, 0, &format!("a 'b' \"c\" $d\n{}\n", d.path().display()));
        // A password prompt from a program, whatever the shell's own `read` looks like.
        let r = c.exec_with(
            "sh -c 'stty -echo; printf \"Password: \"; read x; stty echo; echo; echo got-$x'",
            json!({"timeout_ms": 10_000}),
        );
        assert_eq!(state(&r), "waiting_for_input", "{shell}: {r}");
        assert!(
            r["prompt"].as_str().unwrap_or("").contains("Password"),
            "{shell}: {r}"
        );
        c.ok("send_input", json!({"text": "pw1", "secret": true}));
        let done = c.wait(&id(&r));
        assert_eq!(state(&done), "exited", "{shell}: {done}");
        assert!(output(&done).ends_with("got-pw1\n"), "{shell}: {done}");
        let r = c.exec_with("sleep 30", json!({"wait": false}));
        c.ok("interrupt", json!({"id": id(&r)}));
        assert_eq!(state(&c.wait(&id(&r))), "interrupted", "{shell}");
        assert_exited(&c.exec("echo after"), 0, "after\n");
        let st = c.ok("status", json!({}));
        assert_eq!(st["foreground"], shell, "{st}");
        // Whoever watches the window sees the command itself, not the file it came from.
        assert_exited(&c.exec("echo shown; echo 'line'"), 0, "shown\nline\n");
        let seen = c.ok("capture", json!({"lines": 10}))["output"].to_string();
        assert!(
            seen.contains("$ echo shown; echo 'line'"),
            "{shell}: {seen}"
        );
    }
}

#[test]
fn unterminated_last_line_in_every_installed_shell() {
    let mut wrong = Vec::new();
    for shell in ["bash", "zsh", "fish"] {
        if shell != "bash" && !have(shell) {
            continue;
        }
        let d = Daemon::builder()
            .config(&format!("[executor]\nshell = \"{shell}\"\n"))
            .start();
        let mut c = d.client();
        for (cmd, want) in [("printf partial", "partial"), ("printf 'a\\nb'", "a\nb")] {
            let r = c.exec(cmd);
            if output(&r) != want {
                wrong.push(format!("{shell}: {cmd:?} gave {:?}", output(&r)));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn daemon_info_counts() {
    let d = Daemon::start();
    let mut c = d.client();
    let info = c.ok("daemon_info", json!({}));
    assert_eq!(info["pid"], d.pid());
    assert_eq!(info["socket_activated"], false);
    assert_eq!(info["socket"], d.socket.display().to_string());
    assert_eq!(info["tmux_socket"], d.tmux);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["commands_run"], 0);
    assert_eq!(info["sessions"], 0);
    assert_eq!(info["connections"], 1);
    let mut c2 = d.client();
    c2.ok("daemon_info", json!({}));
    c.exec("true");
    let info = c.ok("daemon_info", json!({}));
    assert_eq!(info["commands_run"], 1);
    assert_eq!(info["sessions"], 1);
    assert_eq!(info["connections"], 2);
    // The daemon did not start tmux before the first command: no server of ours until then.
    let d2 = Daemon::start();
    let st = std::process::Command::new("tmux")
        .args(["-L", &d2.tmux, "list-sessions"])
        .output()
        .unwrap();
    assert!(
        !st.status.success(),
        "a tmux server runs before any request"
    );
}
