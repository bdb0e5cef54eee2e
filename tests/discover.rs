//! `rpc.discover`: the OpenRPC document lists exactly the server's methods, and every method
//! it lists can be called with its required params (no -32601, no -32602).

mod common;

use std::collections::BTreeSet;

use archy::api::*;
use common::*;
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use serde_json::{Value, json};

/// Stands in for the executor only to list the methods the `#[rpc]` trait registers; it
/// never serves a call.
struct Names;

#[async_trait]
impl ArchyServer for Names {
    async fn execute(
        &self,
        _: String,
        _: Option<String>,
        _: Option<bool>,
        _: Option<u64>,
        _: Option<u64>,
        _: Option<bool>,
        _: Option<String>,
        _: Option<EnvMap>,
    ) -> RpcResult<CommandResult> {
        unreachable!()
    }
    async fn wait(&self, _: String, _: Option<u64>, _: Option<u64>) -> RpcResult<CommandResult> {
        unreachable!()
    }
    async fn output(&self, _: String, _: Option<u64>, _: Option<u64>) -> RpcResult<OutputPage> {
        unreachable!()
    }
    async fn interrupt(
        &self,
        _: Option<String>,
        _: Option<String>,
        _: Option<String>,
    ) -> RpcResult<Interrupted> {
        unreachable!()
    }
    async fn send_input(
        &self,
        _: String,
        _: Option<String>,
        _: Option<bool>,
        _: Option<bool>,
    ) -> RpcResult<InputSent> {
        unreachable!()
    }
    async fn capture(&self, _: Option<String>, _: Option<u32>) -> RpcResult<Capture> {
        unreachable!()
    }
    async fn check_session(&self, _: Option<String>) -> RpcResult<SessionExists> {
        unreachable!()
    }
    async fn status(&self, _: Option<String>) -> RpcResult<Status> {
        unreachable!()
    }
    async fn list_sessions(&self) -> RpcResult<SessionList> {
        unreachable!()
    }
    async fn history(&self, _: Option<String>, _: Option<u32>) -> RpcResult<History> {
        unreachable!()
    }
    async fn open_terminal(
        &self,
        _: Option<String>,
        _: Option<String>,
        _: Option<EnvMap>,
    ) -> RpcResult<TerminalOpened> {
        unreachable!()
    }
    async fn close_terminal(&self, _: Option<String>) -> RpcResult<Closed> {
        unreachable!()
    }
    async fn close_session(&self, _: Option<String>) -> RpcResult<Closed> {
        unreachable!()
    }
    async fn daemon_info(&self) -> RpcResult<DaemonInfo> {
        unreachable!()
    }
    async fn discover(&self) -> RpcResult<Value> {
        unreachable!()
    }
    async fn subscribe_output(&self, _: PendingSubscriptionSink, _: String) -> SubscriptionResult {
        unreachable!()
    }
}

fn documented(doc: &Value) -> BTreeSet<String> {
    doc["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .map(|m| m["name"].as_str().expect("method name").to_string())
        .collect()
}

#[test]
fn the_document_lists_exactly_the_servers_methods() {
    let d = Daemon::start();
    let mut c = d.client();
    let doc = c.ok("rpc.discover", json!({}));
    assert!(
        doc["openrpc"].as_str().is_some_and(|v| v.starts_with("1.")),
        "{}",
        doc["openrpc"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let served: BTreeSet<String> = Names.into_rpc().method_names().map(String::from).collect();
    assert_eq!(documented(&doc), served);
    // The methods the issue names are all there.
    for m in [
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
        "rpc.discover",
        "subscribe_output",
        "unsubscribe_output",
    ] {
        assert!(served.contains(m), "{m} is not served");
    }

    // Every method has by-name params with schemas, and a result schema.
    for m in doc["methods"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        assert!(m["params"].is_array(), "{name}");
        for p in m["params"].as_array().unwrap() {
            assert!(p["name"].is_string(), "{name}: {p}");
            assert!(p["required"].is_boolean(), "{name}: {p}");
            assert!(p.get("schema").is_some(), "{name}: {p}");
        }
        assert!(m["result"].get("schema").is_some(), "{name}");
    }
    // Every application error code is documented.
    let codes: BTreeSet<i64> = doc["components"]["errors"]
        .as_array()
        .expect("components.errors")
        .iter()
        .map(|e| e["code"].as_i64().unwrap())
        .collect();
    let want: BTreeSet<i64> = [
        TOO_MANY_SUBSCRIPTIONS,
        SESSION_NOT_FOUND,
        TMUX_FAILED,
        REFUSED_BY_POLICY,
        UNKNOWN_COMMAND,
        SESSION_BUSY,
        NO_TERMINAL,
        TERMINAL_FAILED,
        IO_ERROR,
        TOO_MANY_CONNECTIONS,
    ]
    .into();
    assert_eq!(codes, want);
}

/// A harmless value for a required param, by name (then by schema type).
fn sample(method: &str, param: &Value, known_id: &str, sub: &Value) -> Value {
    let name = param["name"].as_str().unwrap();
    match (method, name) {
        (_, "command") => json!("true"),
        (_, "id") => json!(known_id),
        (_, "text") => json!(""),
        (_, "subscription") => sub.clone(),
        (_, "session") => json!("archy_session"),
        _ => match param["schema"]["type"].as_str() {
            Some("string") => json!("x"),
            Some("integer") => json!(1),
            Some("boolean") => json!(false),
            Some("object") => json!({}),
            other => panic!("{method}.{name}: no sample for schema type {other:?}"),
        },
    }
}

#[test]
fn every_documented_method_is_callable_with_its_required_params() {
    let d = Daemon::start();
    let mut c = d.client();
    let done = c.exec("echo ready");
    let known_id = id(&done);
    let sub = c.ok("subscribe_output", json!({"id": known_id}));
    let doc = c.ok("rpc.discover", json!({}));
    let mut bad = Vec::new();
    for m in doc["methods"].as_array().unwrap() {
        let method = m["name"].as_str().unwrap();
        let mut params = serde_json::Map::new();
        for p in m["params"].as_array().unwrap() {
            if p["required"] == true {
                params.insert(
                    p["name"].as_str().unwrap().into(),
                    sample(method, p, &known_id, &sub),
                );
            }
        }
        let params = Value::Object(params);
        match c.call(method, params.clone()) {
            Err(e) if e.code == METHOD_NOT_FOUND || e.code == INVALID_PARAMS => {
                bad.push(format!("{method} {params}: {e:?}"));
            }
            _ => {}
        }
    }
    assert!(
        bad.is_empty(),
        "documented but not callable:\n{}",
        bad.join("\n")
    );
    // And a name the document does not list is not served.
    c.err_code("no_such_method", json!({}), METHOD_NOT_FOUND);
    c.err_code("rpc.nothing", json!({}), METHOD_NOT_FOUND);
}
