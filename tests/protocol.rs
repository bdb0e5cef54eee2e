//! JSON-RPC 2.0 conformance of the real daemon on its socket: the specification's own
//! examples (section 7, with this server's methods), every error code of the protocol, and
//! bad input of every kind.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Send `lines` raw, close our side, and return every line the daemon answered.
fn exchange(d: &Daemon, lines: &[&str]) -> Vec<Value> {
    let mut c = d.client();
    for l in lines {
        c.send_line(l);
    }
    c.shutdown_write();
    c.lines_to_end()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The single answer to one line.
fn answer(d: &Daemon, line: &str) -> Value {
    let got = exchange(d, &[line]);
    assert_eq!(got.len(), 1, "expected one reply to {line}: {got:?}");
    got.into_iter().next().unwrap()
}

#[track_caller]
fn assert_error(reply: &Value, id: Value, code: i64) {
    assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
    assert_eq!(reply["id"], id, "{reply}");
    assert!(reply.get("result").is_none(), "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{reply}"
    );
}

/// Sort a batch reply by id (the spec leaves the order free).
fn by_id(mut replies: Vec<Value>) -> Vec<Value> {
    replies.sort_by_key(|r| r["id"].to_string());
    replies
}

#[test]
fn spec_examples_single_calls() {
    let d = Daemon::start();
    // rpc call with named parameters (daemon_info has none; execute has several).
    let r = answer(
        &d,
        r#"{"jsonrpc": "2.0", "method": "execute", "params": {"command": "echo 19"}, "id": 3}"#,
    );
    assert_eq!(r["id"], 3);
    assert_exited(&r["result"], 0, "19\n");
    // A string id comes back as it was sent.
    let r = answer(
        &d,
        r#"{"jsonrpc": "2.0", "method": "daemon_info", "id": "abc"}"#,
    );
    assert_eq!(r["id"], "abc");
    assert_eq!(r["result"]["pid"], d.pid());
    // rpc call of non-existent method.
    let r = answer(&d, r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#);
    assert_error(&r, json!("1"), METHOD_NOT_FOUND);
    // rpc call with invalid JSON.
    let r = answer(
        &d,
        r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
    );
    assert_error(&r, Value::Null, PARSE_ERROR);
    // rpc call with invalid Request object.
    let r = answer(&d, r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#);
    assert_error(&r, Value::Null, INVALID_REQUEST);
}

#[test]
fn spec_examples_batches() {
    let d = Daemon::start();
    // rpc call Batch, invalid JSON.
    let r = answer(
        &d,
        r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method""#,
    );
    assert_error(&r, Value::Null, PARSE_ERROR);
    // rpc call with an empty Array: one error, not an array.
    let r = answer(&d, "[]");
    assert!(r.is_object(), "{r}");
    assert_error(&r, Value::Null, INVALID_REQUEST);
    // rpc call with an invalid Batch (but not empty).
    let r = answer(&d, "[1]");
    let items = r.as_array().expect("an array");
    assert_eq!(items.len(), 1);
    assert_error(&items[0], Value::Null, INVALID_REQUEST);
    // rpc call with invalid Batch.
    let r = answer(&d, "[1,2,3]");
    let items = r.as_array().expect("an array");
    assert_eq!(items.len(), 3);
    for i in items {
        assert_error(i, Value::Null, INVALID_REQUEST);
    }
    // rpc call Batch, mixed.
    let r = answer(
        &d,
        r#"[
        {"jsonrpc": "2.0", "method": "execute", "params": {"command": "echo 7"}, "id": "1"},
        {"jsonrpc": "2.0", "method": "daemon_info"},
        {"jsonrpc": "2.0", "method": "check_session", "params": {"session": "x"}, "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "daemon_info", "id": "9"}
    ]"#
        .replace('\n', " ")
        .as_str(),
    );
    let items = by_id(r.as_array().expect("an array").clone());
    assert_eq!(items.len(), 5, "{items:?}");
    assert_exited(&items[0]["result"], 0, "7\n");
    assert_eq!(items[0]["id"], "1");
    assert_eq!(items[1]["id"], "2");
    assert_eq!(items[1]["result"], json!({"exists": false}));
    assert_eq!(items[2]["id"], "5");
    assert_error(&items[2], json!("5"), METHOD_NOT_FOUND);
    assert_eq!(items[3]["id"], "9");
    assert_eq!(items[3]["result"]["pid"], d.pid());
    assert_error(&items[4], Value::Null, INVALID_REQUEST);
    // rpc call Batch (all notifications): nothing at all comes back.
    let got = exchange(
        &d,
        &[
            r#"[{"jsonrpc": "2.0", "method": "daemon_info"}, {"jsonrpc": "2.0", "method": "list_sessions"}]"#,
        ],
    );
    assert_eq!(got, Vec::<Value>::new());
}

#[test]
fn notifications_get_no_reply() {
    let d = Daemon::start();
    let marker = d.path().join("ran");
    let got = exchange(
        &d,
        &[
            r#"{"jsonrpc": "2.0", "method": "daemon_info"}"#,
            // Unknown method, bad params: still no reply to a notification.
            r#"{"jsonrpc": "2.0", "method": "nope"}"#,
            r#"{"jsonrpc": "2.0", "method": "execute", "params": {}}"#,
            r#"{"jsonrpc": "2.0", "method": "wait", "params": {"id": "c-unknown"}}"#,
            // A notification still runs.
            &json!({"jsonrpc": "2.0", "method": "execute", "params": {"command": format!("touch '{}'", marker.display())}})
                .to_string(),
            r#"{"jsonrpc": "2.0", "method": "daemon_info", "id": 1}"#,
        ],
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], 1);
    assert!(marker.exists(), "the notification's command did not run");
}

#[test]
fn invalid_requests() {
    let d = Daemon::start();
    for (line, id) in [
        (r#"{"method": "daemon_info", "id": 1}"#, json!(1)),
        (
            r#"{"jsonrpc": "1.0", "method": "daemon_info", "id": 2}"#,
            json!(2),
        ),
        (
            r#"{"jsonrpc": 2.0, "method": "daemon_info", "id": 3}"#,
            json!(3),
        ),
        (r#"{"jsonrpc": "2.0", "id": 4}"#, json!(4)),
        (r#"{"jsonrpc": "2.0", "method": null, "id": 5}"#, json!(5)),
        (
            r#"{"jsonrpc": "2.0", "method": "daemon_info", "params": "x", "id": 6}"#,
            json!(6),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "daemon_info", "params": 7, "id": 7}"#,
            json!(7),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "daemon_info", "id": {"a": 1}}"#,
            Value::Null,
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "daemon_info", "id": [1]}"#,
            Value::Null,
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "daemon_info", "id": true}"#,
            Value::Null,
        ),
        ("\"just a string\"", Value::Null),
        ("42", Value::Null),
        ("null", Value::Null),
    ] {
        let r = answer(&d, line);
        assert_error(&r, id, INVALID_REQUEST);
    }
}

#[test]
fn ids_of_every_kind_come_back_unchanged() {
    let d = Daemon::start();
    for id in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!(9_007_199_254_740_993_u64),
        json!(""),
        json!("ünï ✓"),
        Value::Null,
    ] {
        let line = json!({"jsonrpc": "2.0", "method": "check_session", "params": {"session": "s"}, "id": id});
        let r = answer(&d, &line.to_string());
        assert_eq!(r["id"], id, "{r}");
        assert_eq!(r["result"], json!({"exists": false}), "{r}");
    }
}

#[test]
fn invalid_params_name_the_field() {
    let d = Daemon::start();
    let mut c = d.client();
    let mut unnamed = Vec::new();
    for (method, params, field) in [
        ("execute", json!({}), "command"),
        ("execute", json!({"command": 5}), "command"),
        (
            "execute",
            json!({"command": "true", "timeout_ms": "soon"}),
            "timeout_ms",
        ),
        ("execute", json!({"command": "true", "wait": "yes"}), "wait"),
        ("execute", json!({"command": "true", "env": [1]}), "env"),
        (
            "execute",
            json!({"command": "true", "max_bytes": -1}),
            "max_bytes",
        ),
        ("wait", json!({}), "id"),
        ("wait", json!({"id": 7}), "id"),
        ("output", json!({"id": "x", "offset": "a"}), "offset"),
        ("send_input", json!({}), "text"),
        ("capture", json!({"lines": -1}), "lines"),
        ("history", json!({"limit": "many"}), "limit"),
        ("subscribe_output", json!({}), "id"),
    ] {
        let e = c.err_code(method, params.clone(), INVALID_PARAMS);
        if !e.message.contains(&format!("`{field}`")) {
            unnamed.push(format!("{method} {params}: {:?}", e.message));
        }
    }
    assert!(
        unnamed.is_empty(),
        "-32602 messages that do not name the field:\n{}",
        unnamed.join("\n")
    );
}

#[test]
fn garbage_bytes() {
    let d = Daemon::start();
    let mut c = d.client();
    for junk in [
        &b"\x00\x01\x02\xff\xfe garbage"[..],
        b"\xc3\x28 invalid utf-8",
        b"{\"jsonrpc\": \"2.0\", \"method\": \"daemon_info\", \"id\": 1} trailing",
        b"{{{{",
        b"\x1b[31m",
        b"}",
    ] {
        let mut line = junk.to_vec();
        line.push(b'\n');
        c.send_raw(&line);
        let r = c.recv();
        assert_error(&r, Value::Null, PARSE_ERROR);
    }
    // Blank lines are ignored, and the same connection still works.
    c.send_raw(b"\n   \n\r\n");
    assert_eq!(c.ok("check_session", json!({}))["exists"], false);
    // A request with invalid UTF-8 inside a string.
    c.send_raw(b"{\"jsonrpc\": \"2.0\", \"method\": \"execute\", \"params\": {\"command\": \"echo \xff\"}, \"id\": 9}\n");
    let r = c.recv();
    assert_error(&r, Value::Null, PARSE_ERROR);
    assert_eq!(c.ok("check_session", json!({}))["exists"], false);
}

#[test]
fn half_a_line_then_disconnect() {
    let d = Daemon::start();
    // Half a request, then the client goes away entirely.
    {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(
            br#"{"jsonrpc": "2.0", "method": "execute", "params": {"command": "touch half"#,
        )
        .unwrap();
    }
    // Half a request, then only our writing side closes: no reply, the connection ends.
    let mut c = d.client();
    c.send_raw(br#"{"jsonrpc": "2.0", "method": "daemon_info", "id": 1"#);
    c.shutdown_write();
    assert_eq!(c.lines_to_end(), Vec::<String>::new());
    // A request and a half: the whole one is answered.
    let mut c = d.client();
    c.send_raw(b"{\"jsonrpc\": \"2.0\", \"method\": \"daemon_info\", \"id\": 2}\n{\"jsonrpc\": \"2.0\", \"meth");
    c.shutdown_write();
    let got = c.lines_to_end();
    assert_eq!(got.len(), 1, "{got:?}");
    // The daemon is fine, and the half command never ran.
    let mut c = d.client();
    assert_eq!(c.ok("daemon_info", json!({}))["pid"], d.pid());
    assert_eq!(c.ok("history", json!({}))["commands"], json!([]));
}

#[test]
fn a_line_split_across_writes_is_one_request() {
    let d = Daemon::start();
    let mut c = d.client();
    let line =
        br#"{"jsonrpc": "2.0", "method": "check_session", "params": {"session": "s"}, "id": 77}"#;
    for chunk in line.chunks(7) {
        c.send_raw(chunk);
    }
    c.send_raw(b"\n");
    let r = c.recv();
    assert_eq!(r["id"], 77);
    assert_eq!(r["result"]["exists"], false);
}

#[test]
fn oversized_line_gets_an_error_then_the_connection_closes() {
    let d = Daemon::start();
    const LIMIT: usize = 4 << 20;
    // Exactly at the limit (padding after the object, before the newline) is served.
    let mut c = d.client();
    let mut line = br#"{"jsonrpc": "2.0", "method": "daemon_info", "id": 1}"#.to_vec();
    line.resize(LIMIT, b' ');
    line.push(b'\n');
    c.send_raw(&line);
    let r = c.recv();
    assert_eq!(r["id"], 1, "{r}");
    assert!(r["result"]["pid"].is_u64(), "{r}");

    // One byte more: -32600, then the daemon closes the connection.
    let stream = UnixStream::connect(&d.socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut big =
        br#"{"jsonrpc": "2.0", "method": "execute", "params": {"command": "echo "#.to_vec();
    big.resize(LIMIT + 1, b'a');
    big.extend_from_slice(b"\"}, \"id\": 2}\n");
    // The daemon may close before reading everything: write from another thread.
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(&big);
    });
    let mut c = Client::from_stream(stream);
    let r = c.recv();
    assert_error(&r, Value::Null, INVALID_REQUEST);
    assert!(
        r["error"]["message"].as_str().unwrap().contains("4194304"),
        "{r}"
    );
    assert_eq!(
        c.lines_to_end(),
        Vec::<String>::new(),
        "more after the error"
    );
    w.join().unwrap();
    // Nothing of it ran, and others are still served.
    let mut c = d.client();
    assert_eq!(c.ok("daemon_info", json!({}))["commands_run"], 0);
}

#[test]
fn requests_on_one_connection_run_concurrently() {
    let d = Daemon::start();
    let mut c = d.client();
    c.exec("true");
    c.send(&json!({"jsonrpc": "2.0", "id": "slow", "method": "execute", "params": {"command": "sleep 1; echo slow"}}));
    c.send(&json!({"jsonrpc": "2.0", "id": "fast", "method": "daemon_info"}));
    // Replies follow completion: the quick one overtakes the slow one.
    let first = c.recv();
    assert_eq!(first["id"], "fast", "{first}");
    let second = c.recv();
    assert_eq!(second["id"], "slow", "{second}");
    assert_exited(&second["result"], 0, "slow\n");
}

#[test]
fn five_hundred_concurrent_connections() {
    let d = Daemon::start();
    const MAX: usize = 128;
    let mut streams: Vec<UnixStream> = (0..500)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    // Every connection asks; each one gets either its answer or the refusal.
    let req = b"{\"jsonrpc\": \"2.0\", \"method\": \"check_session\", \"id\": 1}\n";
    for s in &mut streams {
        // A refused connection may be closed already.
        let _ = s.write_all(req);
    }
    let mut answered = 0;
    let mut refused = 0;
    let mut admitted = None;
    for (n, s) in streams.iter_mut().enumerate() {
        s.set_read_timeout(Some(STEP)).unwrap();
        let mut c = Client::from_stream(s.try_clone().unwrap());
        let line = c.recv_line().expect("each connection gets a line");
        let r: Value = serde_json::from_str(&line).unwrap();
        match r["error"]["code"].as_i64() {
            Some(TOO_MANY_CONNECTIONS) => {
                assert_eq!(r["id"], Value::Null);
                refused += 1;
                // Then the daemon closes it.
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
            }
            _ => {
                assert_eq!(r["id"], 1, "{r}");
                assert_eq!(r["result"]["exists"], false, "{r}");
                answered += 1;
                admitted.get_or_insert(n);
            }
        }
    }
    assert_eq!(answered, MAX, "answered {answered}, refused {refused}");
    assert_eq!(refused, 500 - MAX);
    // The admitted ones keep working.
    let mut c = Client::from_stream(streams[admitted.unwrap()].try_clone().unwrap());
    assert_eq!(c.ok("check_session", json!({}))["exists"], false);
    drop(c);
    drop(streams);
    // And once it has seen them go, the daemon serves new clients. (It learns of each close
    // on its own time: retry a refusal for a bounded while.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        // A refused connection may be closed before this is written.
        let _ = s.write_all(req);
        let mut c = Client::from_stream(s);
        let r = c.recv();
        if r["error"]["code"] == TOO_MANY_CONNECTIONS && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(r["result"]["exists"], false, "still refused: {r}");
        break c;
    };
    assert_exited(&c.exec("echo still"), 0, "still\n");
}

#[test]
fn many_clients_at_once() {
    let d = Daemon::start();
    let threads: Vec<_> = (0..16)
        .map(|n| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket);
                for i in 0..50 {
                    let r = c.ok("check_session", json!({"session": format!("s{n}-{i}")}));
                    assert_eq!(r["exists"], false);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn params_may_be_null_or_absent() {
    let d = Daemon::start();
    let mut c = d.client();
    for line in [
        r#"{"jsonrpc": "2.0", "method": "list_sessions", "id": 1}"#,
        r#"{"jsonrpc": "2.0", "method": "list_sessions", "params": null, "id": 1}"#,
        r#"{"jsonrpc": "2.0", "method": "list_sessions", "params": {}, "id": 1}"#,
    ] {
        c.send_line(line);
        let r = c.recv();
        assert_eq!(r["result"]["sessions"], json!([]), "{line}: {r}");
    }
}

#[test]
fn slow_reader_does_not_stall_the_daemon() {
    let d = Daemon::start();
    // One client sends lots of requests and reads nothing for a while…
    let mut lazy = d.client();
    let req = "{\"jsonrpc\": \"2.0\", \"method\": \"rpc.discover\", \"id\": 1}\n".repeat(300);
    let mut w = UnixStream::connect(&d.socket).unwrap();
    // Not joined: it may block until the daemon goes away at the end of the test.
    std::thread::spawn(move || {
        let _ = w.write_all(req.as_bytes());
        std::thread::park();
    });
    // …while another is served normally.
    let mut c = d.client();
    c.set_timeout(Duration::from_secs(10));
    assert_exited(&c.exec("echo served"), 0, "served\n");
    assert_eq!(lazy.ok("check_session", json!({}))["exists"], true);
}
