//! Fuzzing Archy's JSON-RPC transport: the line framing and the per-connection dispatcher,
//! served by the real `archy::transport::serve` on a Unix socket in this process.
//!
//! [`Harness::check`] writes one input to a fresh connection, half-closes it, reads every
//! reply until the server closes, and checks the invariants:
//! - every line the server writes is JSON: a response object (`jsonrpc: "2.0"`, an `id`
//!   member, exactly one of `result`/`error`), a subscription notification, or a non-empty
//!   array of response objects;
//! - error codes are integers, messages strings;
//! - the server answers within a deadline (no hang), no task panicked, and a fresh
//!   connection is still served afterwards.
//!
//! The methods are a small module with the same kinds of callbacks the daemon uses (sync,
//! async with typed by-name params, subscription, unsubscription), so fuzzing never starts
//! tmux or runs a command.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use archy::transport::{self, ServeConfig, Stats};
use jsonrpsee::RpcModule;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;

/// The line cap the fuzz server uses (small, so over-long lines are cheap to produce).
pub const MAX_LINE: usize = 64 * 1024;

static PANICKED: AtomicBool = AtomicBool::new(false);
pub static INPUTS: AtomicU64 = AtomicU64::new(0);

pub struct Harness {
    rt: Runtime,
    path: PathBuf,
    _dir: PathBuf,
}

fn module() -> RpcModule<()> {
    let mut m = RpcModule::new(());
    m.register_method("echo", |params, _, _| {
        params.parse::<Value>().unwrap_or(Value::Null)
    })
    .unwrap();
    m.register_async_method("typed", |params, _, _| async move {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct P {
            a: u32,
            b: Option<String>,
        }
        let p: P = params.parse()?;
        Ok::<_, jsonrpsee::types::ErrorObjectOwned>(p.a)
    })
    .unwrap();
    m.register_method("fail", |_, _, _| {
        Err::<(), _>(jsonrpsee::types::ErrorObject::owned(
            -32020,
            "no such session",
            Some("x"),
        ))
    })
    .unwrap();
    m.register_subscription(
        "sub",
        "sub_event",
        "unsub",
        |_params, pending, _, _| async move {
            let sink = pending.accept().await?;
            for n in 0..3u32 {
                let msg = serde_json::value::to_raw_value(&n)?;
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            Ok(())
        },
    )
    .unwrap();
    m
}

impl Harness {
    /// One server for the whole process (libFuzzer calls the target many times).
    pub fn get() -> &'static Harness {
        static H: OnceLock<Harness> = OnceLock::new();
        H.get_or_init(Harness::start)
    }

    fn start() -> Harness {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICKED.store(true, Ordering::SeqCst);
                prev(info);
            }));
        });
        let dir = std::env::temp_dir().join(format!("archy-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fuzz.sock");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let acquired = transport::bind(&path).expect("bind fuzz socket");
        let listener = {
            let _g = rt.enter();
            tokio::net::UnixListener::from_std(acquired.listener).unwrap()
        };
        let cfg = ServeConfig {
            max_line_bytes: MAX_LINE,
            max_connections: 64,
            ..ServeConfig::default()
        };
        let methods: jsonrpsee::Methods = module().into();
        let guard = acquired.guard;
        rt.spawn(async move {
            let _guard = guard;
            let _ = transport::serve(
                listener,
                methods,
                cfg,
                Arc::new(Stats::default()),
                std::future::pending(),
            )
            .await;
        });
        Harness {
            rt,
            path,
            _dir: dir,
        }
    }

    /// Sends `input` on a fresh connection; returns the server's reply lines (parsed), or
    /// panics on a broken invariant.
    pub fn check(&self, input: &[u8]) -> Vec<Value> {
        INPUTS.fetch_add(1, Ordering::Relaxed);
        let out = self.rt.block_on(async {
            let mut s = UnixStream::connect(&self.path)
                .await
                .expect("server stopped accepting");
            // The server may close early (over-long line): a failed write is fine then.
            let (mut rd, mut wr) = s.split();
            let write = async {
                let _ = wr.write_all(input).await;
                let _ = wr.shutdown().await;
            };
            let mut out = Vec::new();
            let read = rd.read_to_end(&mut out);
            let (_, r) =
                tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) })
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "no end of replies within 20 s for input {:?}",
                            preview(input)
                        )
                    });
            let _ = r;
            out
        });
        assert!(
            !PANICKED.load(Ordering::SeqCst),
            "a server task panicked on {:?}",
            preview(input)
        );
        let mut values = Vec::new();
        for line in out.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "reply is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(line)
                )
            });
            check_message(&v);
            values.push(v);
        }
        assert!(
            out.is_empty() || out.ends_with(b"\n"),
            "reply not newline-terminated"
        );
        values
    }

    /// A fresh connection gets a correct answer.
    pub fn still_serving(&self) {
        let v = self
            .check(b"{\"jsonrpc\":\"2.0\",\"id\":\"alive\",\"method\":\"echo\",\"params\":[1]}\n");
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0]["id"], "alive");
        assert_eq!(v[0]["result"], serde_json::json!([1]));
    }
}

fn preview(input: &[u8]) -> String {
    let s = String::from_utf8_lossy(input);
    s.chars().take(300).collect()
}

/// A single server message: response, notification, or batch of responses.
pub fn check_message(v: &Value) {
    match v {
        Value::Array(items) => {
            assert!(!items.is_empty(), "empty batch reply");
            for item in items {
                check_response(item);
            }
        }
        Value::Object(o) if o.contains_key("method") => {
            assert_eq!(o.get("jsonrpc"), Some(&Value::from("2.0")), "{v}");
            assert!(!o.contains_key("id"), "notification with id: {v}");
            assert_eq!(o["method"], "sub_event", "{v}");
            assert!(
                o["params"]["subscription"].is_number() || o["params"]["subscription"].is_string(),
                "{v}"
            );
        }
        _ => check_response(v),
    }
}

fn check_response(v: &Value) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("response is not an object: {v}"));
    assert_eq!(o.get("jsonrpc"), Some(&Value::from("2.0")), "{v}");
    assert!(o.contains_key("id"), "response without id: {v}");
    let id = &o["id"];
    assert!(
        id.is_null() || id.is_string() || id.is_number(),
        "bad id: {v}"
    );
    match (o.get("result"), o.get("error")) {
        (Some(_), None) => {}
        (None, Some(e)) => {
            assert!(e["code"].is_i64(), "error code not an integer: {v}");
            assert!(e["message"].is_string(), "error message not a string: {v}");
        }
        _ => panic!("needs exactly one of result/error: {v}"),
    }
    assert!(
        o.keys()
            .all(|k| matches!(k.as_str(), "jsonrpc" | "id" | "result" | "error")),
        "extra members: {v}"
    );
}
