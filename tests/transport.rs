//! The transport over real Unix sockets, against a small RpcModule: JSON-RPC 2.0 conformance
//! (the specification's own examples), bad input, limits, subscriptions, idle exit, shutdown,
//! peer uid checks and the listener.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use archy::transport::{self, ServeConfig, ServeEnd, Stats};
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::proc_macros::rpc;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

#[rpc(server)]
trait Test {
    #[method(name = "add", param_kind = map)]
    fn add(&self, a: u64, b: u64) -> RpcResult<u64>;

    /// Sleeps, then answers `ms`.
    #[method(name = "slow", param_kind = map)]
    async fn slow(&self, ms: u64) -> RpcResult<u64>;

    /// Counts calls; used as a notification.
    #[method(name = "bump", param_kind = map)]
    fn bump(&self) -> RpcResult<u64>;

    #[method(name = "bumps", param_kind = map)]
    fn bumps(&self) -> RpcResult<u64>;

    /// Sends 0, 1, 2, … every `every_ms` until unsubscribed.
    #[subscription(name = "ticks" => "tick", unsubscribe = "unticks", item = u64, param_kind = map)]
    async fn ticks(&self, every_ms: u64) -> SubscriptionResult;
}

#[derive(Default)]
struct Impl {
    bumps: AtomicU64,
    /// Signalled when a `slow` call starts.
    slow_started: Notify,
}

#[async_trait]
impl TestServer for Arc<Impl> {
    fn add(&self, a: u64, b: u64) -> RpcResult<u64> {
        Ok(a + b)
    }

    async fn slow(&self, ms: u64) -> RpcResult<u64> {
        self.slow_started.notify_one();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }

    fn bump(&self) -> RpcResult<u64> {
        Ok(self.bumps.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn bumps(&self) -> RpcResult<u64> {
        Ok(self.bumps.load(Ordering::SeqCst))
    }

    async fn ticks(&self, pending: PendingSubscriptionSink, every_ms: u64) -> SubscriptionResult {
        let sink = pending.accept().await?;
        for n in 0u64.. {
            sink.send(serde_json::value::to_raw_value(&n)?).await?;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(every_ms)) => {}
                () = sink.closed() => break,
            }
        }
        Ok(())
    }
}

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    state: Arc<Impl>,
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<ServeEnd>>,
    _guard: Option<transport::SocketGuard>,
}

impl Server {
    async fn start(cfg: ServeConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archy.sock");
        let acquired = transport::bind(&path).unwrap();
        let listener = tokio::net::UnixListener::from_std(acquired.listener).unwrap();
        let state = Arc::new(Impl::default());
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let methods = state.clone().into_rpc().into();
        let task = tokio::spawn(transport::serve(
            listener,
            methods,
            cfg,
            stats.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            _dir: dir,
            path,
            state,
            stats,
            stop: Some(stop),
            task,
            _guard: acquired.guard,
        }
    }

    async fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.path).await.unwrap())
    }

    async fn shutdown(mut self) -> ServeEnd {
        self.stop.take().unwrap().send(()).unwrap();
        timeout(self.task).await.unwrap().unwrap()
    }
}

struct Conn {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        let (rd, wr) = stream.into_split();
        Conn {
            rd: BufReader::new(rd),
            wr,
        }
    }

    async fn send(&mut self, text: &str) {
        self.wr.write_all(text.as_bytes()).await.unwrap();
        self.wr.write_all(b"\n").await.unwrap();
    }

    /// The next line, as JSON; `None` at end of stream.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = timeout(self.rd.read_line(&mut line)).await.unwrap();
        (n > 0).then(|| {
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"))
        })
    }

    async fn call(&mut self, text: &str) -> Value {
        self.send(text).await;
        self.recv().await.expect("a reply")
    }

    async fn expect_eof(&mut self) {
        assert_eq!(self.recv().await, None);
    }

    /// For a connection the server refuses: writing may fail (it may already be closed), and
    /// the end may read as EOF or a reset (it closes with our request unread).
    async fn send_to_refusing(&mut self, text: &str) {
        let _ = self.wr.write_all(format!("{text}\n").as_bytes()).await;
    }

    async fn expect_closed(&mut self) {
        let mut line = String::new();
        match timeout(self.rd.read_line(&mut line)).await {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?} {line:?}"),
        }
    }
}

async fn timeout<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

fn error_code(reply: &Value) -> i64 {
    reply["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {reply}"))
}

fn sorted_by_id(mut replies: Vec<Value>) -> Vec<Value> {
    replies.sort_by_key(|r| r["id"].to_string());
    replies
}

// ---- The examples of the JSON-RPC 2.0 specification, section 7, on our methods. ----

#[tokio::test]
async fn spec_calls_with_named_and_positional_params() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": [42, 23], "id": 1}"#)
        .await;
    assert_eq!(r, json!({"jsonrpc": "2.0", "result": 65, "id": 1}));
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": {"b": 42, "a": 23}, "id": 3}"#)
        .await;
    assert_eq!(r, json!({"jsonrpc": "2.0", "result": 65, "id": 3}));
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "bumps", "id": "str-id"}"#)
        .await;
    assert_eq!(r, json!({"jsonrpc": "2.0", "result": 0, "id": "str-id"}));
    server.shutdown().await;
}

#[tokio::test]
async fn spec_notifications_run_but_get_no_reply() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "bump", "params": {}}"#)
        .await;
    c.send(r#"{"jsonrpc": "2.0", "method": "bump"}"#).await;
    // Unknown methods and failures in notifications are silent too.
    c.send(r#"{"jsonrpc": "2.0", "method": "foobar"}"#).await;
    c.send(r#"{"jsonrpc": "2.0", "method": "add", "params": {"a": "x"}}"#)
        .await;
    // Replies follow completion, so wait for the two bumps before asking.
    while server.state.bumps.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "bumps", "id": 9}"#)
        .await;
    assert_eq!(r, json!({"jsonrpc": "2.0", "result": 2, "id": 9}));
    server.shutdown().await;
}

#[tokio::test]
async fn spec_errors() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    // Non-existent method.
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#)
        .await;
    assert_eq!(r["id"], "1");
    assert_eq!(error_code(&r), -32601);
    // Invalid JSON.
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#)
        .await;
    assert_eq!(
        r,
        json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})
    );
    // Invalid Request object.
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#)
        .await;
    assert_eq!((error_code(&r), &r["id"]), (-32600, &Value::Null));
    // Batch, invalid JSON.
    let r = c
        .call(r#"[{"jsonrpc": "2.0", "method": "add", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method""#)
        .await;
    assert_eq!((error_code(&r), &r["id"]), (-32700, &Value::Null));
    // Empty array: one error, not an array.
    let r = c.call("[]").await;
    assert_eq!((error_code(&r), &r["id"]), (-32600, &Value::Null));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty batch")
    );
    // Invalid batch, but not empty.
    let r = c.call("[1]").await;
    let items = r.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (error_code(&items[0]), &items[0]["id"]),
        (-32600, &Value::Null)
    );
    // Invalid batch.
    let r = c.call("[1,2,3]").await;
    let items = r.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| error_code(i) == -32600 && i["id"].is_null())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn spec_mixed_batch() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    let r = c
        .call(
            r#"[
        {"jsonrpc": "2.0", "method": "add", "params": [1,2], "id": "1"},
        {"jsonrpc": "2.0", "method": "bump", "params": [7]},
        {"jsonrpc": "2.0", "method": "add", "params": {"a": 42, "b": 23}, "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "bumps", "id": "9"}
    ]"#
            .replace('\n', " ")
            .as_str(),
        )
        .await;
    let got = sorted_by_id(r.as_array().unwrap().clone());
    assert_eq!(got.len(), 5);
    assert_eq!(got[0]["result"], 3);
    assert_eq!(got[1]["result"], 65);
    assert_eq!(error_code(&got[2]), -32601);
    assert_eq!(got[2]["id"], "5");
    assert!(got[3]["result"].is_u64(), "{}", got[3]);
    assert_eq!((error_code(&got[4]), &got[4]["id"]), (-32600, &Value::Null));
    server.shutdown().await;
}

#[tokio::test]
async fn spec_all_notification_batch_gets_nothing() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"[{"jsonrpc": "2.0", "method": "bump", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "bump"}]"#)
        .await;
    while server.state.bumps.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // The next line is this reply: the batch wrote none.
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "bumps", "id": 1}"#)
        .await;
    assert_eq!(r["result"], 2);
    server.shutdown().await;
}

// ---- Validation beyond the spec's examples. ----

#[tokio::test]
async fn invalid_requests_name_the_problem() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    let cases = [
        (
            r#"{"method": "add", "id": 1}"#,
            "\"jsonrpc\" must be \"2.0\"",
            json!(1),
        ),
        (
            r#"{"jsonrpc": "1.0", "method": "add", "id": 1}"#,
            "\"jsonrpc\" must be \"2.0\"",
            json!(1),
        ),
        (
            r#"{"jsonrpc": "2.0", "id": 2}"#,
            "\"method\" must be a string",
            json!(2),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "add", "params": "x", "id": 3}"#,
            "\"params\" must be",
            json!(3),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "add", "id": {"a": 1}}"#,
            "\"id\" must be",
            Value::Null,
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "add", "id": true}"#,
            "\"id\" must be",
            Value::Null,
        ),
        (r#"["2.0", "add"]"#, "", Value::Null),
        (r#""just a string""#, "must be an object", Value::Null),
        ("42", "must be an object", Value::Null),
        (
            r#"{"jsonrpc": "2.0", "method": "add", "method": "add", "id": 4}"#,
            "duplicate field",
            Value::Null,
        ),
    ];
    for (request, message, id) in cases {
        let r = c.call(request).await;
        let r = if r.is_array() { r[0].clone() } else { r };
        assert_eq!(error_code(&r), -32600, "{request} -> {r}");
        assert_eq!(r["id"], id, "{request} -> {r}");
        let got = r["error"]["message"].as_str().unwrap();
        assert!(
            got.contains(message),
            "{request}: {got:?} lacks {message:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn odd_ids_are_echoed_exactly() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    for id in [
        "-7",
        "1.5",
        "null",
        "\"\\u00e9\\n\"",
        "18446744073709551615",
    ] {
        let r = c
            .call(&format!(
                r#"{{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": {id}}}"#
            ))
            .await;
        assert_eq!(r["id"], serde_json::from_str::<Value>(id).unwrap());
        assert_eq!(r["result"], 2, "{r}");
    }
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "nope", "id": -3}"#)
        .await;
    assert_eq!((error_code(&r), &r["id"]), (-32601, &json!(-3)));
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_params_message_names_the_field() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": {"b": 1}, "id": 1}"#)
        .await;
    assert_eq!(error_code(&r), -32602);
    assert_eq!(r["error"]["message"], "Invalid params: missing field `a`");
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": {"a": 1, "b": "two"}, "id": 2}"#)
        .await;
    assert_eq!(error_code(&r), -32602);
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Invalid params: invalid type: string \"two\""),
        "{message}"
    );
    assert!(message.ends_with("(field `b`)"), "{message}");
    // Subscription replies come from jsonrpsee's sink; they are described the same way.
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "ticks", "params": {}, "id": 3}"#)
        .await;
    assert_eq!(
        r["error"]["message"],
        "Invalid params: missing field `every_ms`"
    );
    server.shutdown().await;
}

// ---- Bad input of every kind. ----

#[tokio::test]
async fn garbage_bytes_get_a_parse_error_and_the_connection_lives_on() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.wr.write_all(b"\xff\xfe\x00garbage\x1b[31m\n")
        .await
        .unwrap();
    assert_eq!(error_code(&c.recv().await.unwrap()), -32700);
    c.wr.write_all(b"\n  \n").await.unwrap(); // blank lines are ignored
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1}"#)
        .await;
    assert_eq!(r["result"], 5);
    server.shutdown().await;
}

#[tokio::test]
async fn half_a_line_then_disconnect() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.wr.write_all(br#"{"jsonrpc": "2.0", "method": "bump", "id"#)
        .await
        .unwrap();
    drop(c);
    let mut c = server.connect().await;
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "bumps", "id": 1}"#)
        .await;
    assert_eq!(r["result"], 0, "the half line must not have run");
    drop(c);
    let end = server.shutdown().await;
    assert_eq!(end, ServeEnd::Shutdown);
}

#[tokio::test]
async fn oversized_line_gets_an_error_then_the_connection_closes() {
    let cfg = ServeConfig {
        max_line_bytes: 1000,
        ..ServeConfig::default()
    };
    let server = Server::start(cfg).await;
    let mut c = server.connect().await;
    // Exactly at the limit is fine.
    let fits = r#"{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}"#;
    c.send(&format!("{fits:<1000}")).await;
    assert_eq!(c.recv().await.unwrap()["result"], 3);
    c.send(&format!(
        r#"{{"jsonrpc": "2.0", "method": "add", "params": ["{}"], "id": 2}}"#,
        "x".repeat(2000)
    ))
    .await;
    let r = c.recv().await.unwrap();
    assert_eq!((error_code(&r), &r["id"]), (-32600, &Value::Null));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes"),
        "{r}"
    );
    c.expect_eof().await;
    // Others are served on.
    let r = server
        .connect()
        .await
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 1}"#)
        .await;
    assert_eq!(r["result"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn five_hundred_connections_against_a_limit_of_128() {
    let server = Arc::new(Server::start(ServeConfig::default()).await);
    // Connections accepted stay open until every client has its first answer, so exactly 128
    // are admitted and the rest refused.
    let barrier = Arc::new(tokio::sync::Barrier::new(500));
    let clients: Vec<_> = (0..500)
        .map(|n| {
            let (server, barrier) = (server.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut c = server.connect().await;
                c.send_to_refusing(&format!(
                    r#"{{"jsonrpc": "2.0", "method": "add", "params": [{n}, 1], "id": {n}}}"#
                ))
                .await;
                let r = c.recv().await.expect("a reply");
                barrier.wait().await;
                if r.get("error").is_some() {
                    assert_eq!((error_code(&r), &r["id"]), (-32028, &Value::Null));
                    let message = r["error"]["message"].as_str().unwrap();
                    assert!(
                        message.contains("too many connections (limit 128)"),
                        "{message}"
                    );
                    c.expect_closed().await;
                    return false;
                }
                assert_eq!(r["result"], n + 1);
                // Still served after the storm.
                let r = c
                    .call(&format!(
                        r#"{{"jsonrpc": "2.0", "method": "add", "params": [{n}, 2], "id": 1}}"#
                    ))
                    .await;
                assert_eq!(r["result"], n + 2);
                true
            })
        })
        .collect();
    let mut admitted = 0;
    for client in clients {
        admitted += usize::from(timeout(client).await.unwrap());
    }
    assert_eq!(admitted, 128);
    assert_eq!(server.stats.refused_total.load(Ordering::Relaxed), 372);
    let r = server
        .connect()
        .await
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 1}"#)
        .await;
    assert_eq!(r["result"], 2);
    let server = Arc::into_inner(server).unwrap();
    assert_eq!(server.shutdown().await, ServeEnd::Shutdown);
}

// ---- Concurrency, subscriptions, lifecycle. ----

#[tokio::test]
async fn a_slow_request_does_not_block_the_connection() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "slow", "params": {"ms": 500}, "id": "slow"}"#)
        .await;
    server.state.slow_started.notified().await;
    let r = c
        .call(r#"{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": "fast"}"#)
        .await;
    assert_eq!(r["id"], "fast");
    assert_eq!(c.recv().await.unwrap()["id"], "slow");
    server.shutdown().await;
}

#[tokio::test]
async fn subscriptions_belong_to_their_connection() {
    let cfg = ServeConfig {
        max_subscriptions: 2,
        ..ServeConfig::default()
    };
    let server = Server::start(cfg).await;
    let mut a = server.connect().await;
    let r = a
        .call(r#"{"jsonrpc": "2.0", "method": "ticks", "params": {"every_ms": 5}, "id": 1}"#)
        .await;
    let sub = r["result"].clone();
    assert!(!sub.is_null(), "{r}");
    for expected in 0..3 {
        let n = a.recv().await.unwrap();
        assert_eq!(n["method"], "tick");
        assert_eq!(
            n["params"],
            json!({"subscription": sub, "result": expected})
        );
    }
    // Another connection cannot cancel it.
    let mut b = server.connect().await;
    let unsub =
        json!({"jsonrpc": "2.0", "method": "unticks", "params": [sub], "id": 2}).to_string();
    assert_eq!(b.call(&unsub).await["result"], false);
    // Its owner can; notifications already queued may still arrive before the reply.
    a.send(&unsub).await;
    loop {
        let r = a.recv().await.unwrap();
        if r.get("id").is_some() {
            assert_eq!(r["result"], true);
            break;
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let cfg = ServeConfig {
        max_subscriptions: 2,
        ..ServeConfig::default()
    };
    let server = Server::start(cfg).await;
    let mut a = server.connect().await;
    let mut codes = Vec::new();
    for id in 1..=3 {
        a.send(&format!(r#"{{"jsonrpc": "2.0", "method": "ticks", "params": {{"every_ms": 100000}}, "id": {id}}}"#))
            .await;
        // Skip the first tick notification of each accepted subscription.
        let r = loop {
            let r = a.recv().await.unwrap();
            if r.get("id").is_some() {
                break r;
            }
        };
        codes.push(r["error"]["code"].as_i64());
    }
    assert_eq!(codes, [None, None, Some(-32006)]);
    // Another connection has its own budget.
    let mut b = server.connect().await;
    let r = b
        .call(r#"{"jsonrpc": "2.0", "method": "ticks", "params": {"every_ms": 100000}, "id": 1}"#)
        .await;
    assert!(r["result"].is_number() || r["result"].is_string(), "{r}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_subscription_in_a_batch_is_answered_on_its_own_line() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"[{"jsonrpc": "2.0", "method": "ticks", "params": {"every_ms": 100000}, "id": "s"}, {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "a"}]"#).await;
    let mut lines = Vec::new();
    while lines.len() < 3 {
        lines.push(c.recv().await.unwrap());
    }
    let reply = lines
        .iter()
        .find(|l| l["id"] == "s")
        .expect("subscription reply");
    assert!(!reply["result"].is_null());
    let batch = lines.iter().find(|l| l.is_array()).expect("batch reply");
    assert_eq!(batch, &json!([{"jsonrpc": "2.0", "result": 3, "id": "a"}]));
    server.shutdown().await;
}

#[tokio::test]
async fn idle_timeout_counts_from_the_last_disconnect() {
    let cfg = ServeConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..ServeConfig::default()
    };
    let server = Server::start(cfg).await;
    let c = server.connect().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !server.task.is_finished(),
        "went idle with a client connected"
    );
    let closed = std::time::Instant::now();
    drop(c);
    let end = timeout(server.task).await.unwrap().unwrap();
    assert_eq!(end, ServeEnd::Idle);
    assert!(
        closed.elapsed() >= Duration::from_millis(250),
        "{:?}",
        closed.elapsed()
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "slow", "params": {"ms": 300}, "id": 1}"#)
        .await;
    server.state.slow_started.notified().await;
    let path = server.path.clone();
    let (state, stats) = (server.state.clone(), server.stats.clone());
    let end = server.shutdown().await;
    assert_eq!(end, ServeEnd::Shutdown);
    assert_eq!(c.recv().await.unwrap()["result"], 300);
    c.expect_eof().await;
    // No longer accepting.
    assert!(UnixStream::connect(&path).await.is_err());
    assert_eq!(stats.connections.load(Ordering::Relaxed), 0);
    drop(state);
}

#[tokio::test]
async fn a_client_that_hangs_up_drops_its_requests() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "slow", "params": {"ms": 60000}, "id": 1}"#)
        .await;
    server.state.slow_started.notified().await;
    drop(c);
    // The connection ends at once instead of waiting a minute for `slow`.
    timeout(async {
        while server.stats.connections.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_half_closed_client_still_gets_its_replies() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.send(r#"{"jsonrpc": "2.0", "method": "slow", "params": {"ms": 100}, "id": 1}"#)
        .await;
    c.wr.shutdown().await.unwrap();
    assert_eq!(c.recv().await.unwrap()["result"], 100);
    c.expect_eof().await;
    server.shutdown().await;
}

#[tokio::test]
async fn stats_count_connections_and_requests() {
    let server = Server::start(ServeConfig::default()).await;
    let mut c = server.connect().await;
    c.call(r#"[{"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 1}, {"jsonrpc": "2.0", "method": "bumps", "id": 2}]"#).await;
    assert_eq!(server.stats.connections.load(Ordering::Relaxed), 1);
    assert_eq!(server.stats.connections_total.load(Ordering::Relaxed), 1);
    assert_eq!(server.stats.requests_total.load(Ordering::Relaxed), 2);
    server.shutdown().await;
}

// ---- Who may connect. ----

#[tokio::test]
async fn another_uid_is_refused_without_a_reply() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED another_uid_is_refused_without_a_reply: needs root to connect as another uid"
        );
        return;
    }
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        eprintln!("SKIPPED another_uid_is_refused_without_a_reply: needs /usr/bin/python3");
        return;
    }
    let server = Server::start(ServeConfig::default()).await;
    // Only for this test: let uid 65534 reach the socket, so the daemon's own check is what
    // refuses it.
    std::fs::set_permissions(
        server.path.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&server.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
try:
    s.sendall(b'{"jsonrpc": "2.0", "method": "bumps", "id": 1}\n')
    print(repr(s.recv(4096)))
except (BrokenPipeError, ConnectionResetError):
    print("closed")
"#;
    let out = tokio::process::Command::new(python)
        .args(["-c", script])
        .arg(&server.path)
        .uid(65534)
        .gid(65534)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        ["b''", "closed"].contains(&stdout.trim()),
        "refused peer got {stdout:?}"
    );
    assert_eq!(server.stats.refused_total.load(Ordering::Relaxed), 1);
    // Our own uid is still served.
    let r = server
        .connect()
        .await
        .call(r#"{"jsonrpc": "2.0", "method": "bumps", "id": 1}"#)
        .await;
    assert_eq!(r["result"], 0);
    server.shutdown().await;
}

// ---- The listener. ----

#[test]
fn bind_creates_a_private_socket_and_removes_it_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/archy/archy.sock");
    let acquired = transport::bind(&path).unwrap();
    assert!(!acquired.activated);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    drop(acquired);
    assert!(!path.exists());
}

#[test]
fn bind_replaces_a_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archy.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let acquired = transport::bind(&path).unwrap();
    std::os::unix::net::UnixStream::connect(&path).unwrap();
    drop(acquired);
}

#[test]
fn bind_refuses_while_a_live_daemon_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archy.sock");
    let first = transport::bind(&path).unwrap();
    let err = transport::bind(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let message = err.to_string();
    assert!(
        message.contains("another archy-executor is serving"),
        "{message}"
    );
    assert!(
        message.contains(&format!("(pid {})", std::process::id())),
        "{message}"
    );
    // The refused attempt left the live socket alone.
    std::os::unix::net::UnixStream::connect(&path).unwrap();
    drop(first);
}

#[test]
fn bind_refuses_to_replace_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archy.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = transport::bind(&path).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn the_guard_leaves_a_successors_socket_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archy.sock");
    let old = transport::bind(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let new = transport::bind(&path).unwrap();
    drop(old);
    assert!(path.exists(), "the old guard removed the new socket");
    drop(new);
    assert!(!path.exists());
}
