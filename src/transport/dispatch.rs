//! One connection's JSON-RPC 2.0 dispatcher: owns -32700/-32600 and batches, and calls
//! jsonrpsee's own method callbacks with this connection's id and subscription budget.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::future::join_all;
use jsonrpsee::server::{
    BoundedSubscriptions, ConnectionId, Extensions, MethodCallback, MethodResponse, MethodSink,
    Methods, RandomIntegerIdProvider, SubscriptionState,
};
use jsonrpsee::types::error::{ErrorCode, reject_too_many_subscriptions};
use jsonrpsee::types::{ErrorObject, Id, Params};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tracing::Instrument;

use super::{Peer, Stats};

/// Per-connection state shared by that connection's request tasks.
pub(crate) struct Dispatcher {
    methods: Methods,
    conn_id: ConnectionId,
    subscriptions: BoundedSubscriptions,
    /// Feeds the connection's single writer; subscriptions write through clones of it.
    sink: MethodSink,
    peer: Peer,
    stats: Arc<Stats>,
    /// Held shared by subscription calls until jsonrpsee has registered the subscription, and
    /// exclusively by unsubscription calls: jsonrpsee queues a subscription's id for the
    /// writer *before* it registers it, so a client quick to unsubscribe could otherwise be
    /// told the id it was just given does not exist.
    accepting: tokio::sync::RwLock<()>,
}

impl Dispatcher {
    pub(crate) fn new(
        methods: Methods,
        conn_id: ConnectionId,
        max_subscriptions: u32,
        sink: MethodSink,
        peer: Peer,
        stats: Arc<Stats>,
    ) -> Self {
        let subscriptions = BoundedSubscriptions::new(max_subscriptions);
        Dispatcher {
            methods,
            conn_id,
            subscriptions,
            sink,
            peer,
            stats,
            accepting: tokio::sync::RwLock::new(()),
        }
    }

    /// Handles one line (a request, a notification or a batch) and queues its reply, if any.
    pub(crate) async fn handle_line(&self, line: &[u8]) {
        let text = line.trim_ascii();
        // Blank lines are keep-alives, not requests.
        if text.is_empty() {
            return;
        }
        let Ok(raw) = serde_json::from_slice::<&RawValue>(text) else {
            tracing::debug!(peer_pid = self.peer.pid, "parse error");
            return self
                .send(error(Id::Null, ErrorCode::ParseError.code(), "Parse error"))
                .await;
        };
        if !raw.get().starts_with('[') {
            if let Some(reply) = self.call(raw).await {
                self.send(reply).await;
            }
            return;
        }
        // A batch: validated element by element. The reply to a subscription call in a batch
        // is written on its own line by jsonrpsee's accept/reject, ahead of the array.
        let items: Vec<&RawValue> = serde_json::from_str(raw.get()).unwrap_or_default();
        if items.is_empty() {
            return self.send(invalid_request(Id::Null, "empty batch")).await;
        }
        let replies: Vec<_> = join_all(items.iter().map(|item| self.call(item))).await;
        let replies: Vec<_> = replies.into_iter().flatten().collect();
        if !replies.is_empty() {
            self.send(join_array(&replies)).await;
        }
    }

    /// Queues a line for the writer. Fails only once the connection is gone: nothing to do then.
    pub(crate) async fn send(&self, json: Box<RawValue>) {
        let _ = self.sink.send(json).await;
    }

    /// One request object: the reply to write, or `None` for notifications and for
    /// subscription replies jsonrpsee already wrote.
    async fn call(&self, raw: &RawValue) -> Option<Box<RawValue>> {
        let call = match Call::parse(raw) {
            Ok(call) => call,
            Err(reply) => {
                tracing::debug!(peer_pid = self.peer.pid, "invalid request");
                return Some(reply);
            }
        };
        self.stats.requests_total.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "rpc",
            method = %call.method,
            session = session_of(call.params).as_deref(),
            peer_pid = self.peer.pid,
        );
        let start = Instant::now();
        let notification = call.id.is_none();
        let (id, raw_id) = match call.id {
            None => (None, None),
            Some(ReqId::Plain(id)) => (Some(id), None),
            // jsonrpsee's `Id` holds no negative or fractional number: answer as `null`, then
            // put the caller's id back.
            Some(ReqId::Raw(raw)) => (Some(Id::Null), Some(raw)),
        };
        let outcome = self
            .invoke(id, &call.method, call.params, raw_id.is_some())
            .instrument(span.clone())
            .await;
        let duration_ms = start.elapsed().as_micros() as f64 / 1e3;
        let code = outcome.as_ref().and_then(|o| o.response.as_error_code());
        // The method in the text too: plain `journalctl -u archy` shows only the message.
        span.in_scope(|| {
            tracing::info!(
                duration_ms,
                code,
                "request {} {:.3} ms{}",
                call.method,
                duration_ms,
                code.map(|c| format!(" error {c}")).unwrap_or_default()
            )
        });

        let outcome = outcome.filter(|o| !o.written && !notification)?;
        let json = describe_invalid_params(outcome.response.into_json(), call.params);
        Some(match raw_id {
            Some(raw) => with_id(&json, raw),
            None => json,
        })
    }

    /// Runs the method's callback; `None` when it was not run (a subscription sent as a
    /// notification: its reply would answer nobody).
    async fn invoke(
        &self,
        id: Option<Id<'_>>,
        method: &str,
        params: Option<&str>,
        odd_id: bool,
    ) -> Option<Outcome> {
        let notification = id.is_none();
        let id = id.unwrap_or(Id::Null);
        let params = Params::new(params);
        let mut ext = Extensions::new();
        ext.insert(self.conn_id);
        ext.insert(self.peer);

        let response = match self.methods.method_with_name(method) {
            None => MethodResponse::error(id, ErrorObject::from(ErrorCode::MethodNotFound)),
            Some((_, MethodCallback::Sync(cb))) => cb(id, params, usize::MAX, ext),
            Some((_, MethodCallback::Async(cb))) => {
                cb(
                    id.into_owned(),
                    params.into_owned(),
                    self.conn_id,
                    usize::MAX,
                    ext,
                )
                .await
            }
            Some((_, MethodCallback::Unsubscription(cb))) => {
                // jsonrpsee reads the subscription id by position only; accept it by name too
                // (`{"subscription": ID}`), as the OpenRPC document declares.
                let by_name = params
                    .as_str()
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                    .and_then(|v| v.get("subscription").cloned())
                    .map(|sub| serde_json::json!([sub]).to_string());
                let params = match &by_name {
                    Some(positional) => Params::new(Some(positional)),
                    None => params,
                };
                let _registered = self.accepting.write().await;
                cb(id, params, self.conn_id, usize::MAX, ext)
            }
            Some((_, MethodCallback::Subscription(_))) if notification => return None,
            Some((_, MethodCallback::Subscription(_))) if odd_id => MethodResponse::error(
                id,
                invalid_request_error(
                    "a subscription call needs a string or non-negative integer id",
                ),
            ),
            Some((_, MethodCallback::Subscription(cb))) => {
                let Some(permit) = self.subscriptions.acquire() else {
                    let err = reject_too_many_subscriptions(self.subscriptions.max());
                    return Some(Outcome {
                        response: MethodResponse::error(id, err),
                        written: false,
                    });
                };
                let state = SubscriptionState {
                    conn_id: self.conn_id,
                    id_provider: &RandomIntegerIdProvider,
                    subscription_permit: permit,
                };
                // The callback resolves when accept() hands jsonrpsee the reply, and accept()
                // registers the subscription right after that, with no await in between.
                let accepting = self.accepting.read().await;
                let response = cb(id, params, self.sink.clone(), state, ext).await;
                drop(accepting);
                // accept()/reject() already wrote their reply into the sink; any other
                // response (the pending sink was dropped) is still ours to write.
                let written = response.is_subscription();
                return Some(Outcome { response, written });
            }
        };
        Some(Outcome {
            response,
            written: false,
        })
    }
}

struct Outcome {
    response: MethodResponse,
    /// Already queued for the writer by jsonrpsee.
    written: bool,
}

/// A request object that passed validation.
struct Call<'a> {
    /// `None` for a notification.
    id: Option<ReqId<'a>>,
    method: Cow<'a, str>,
    params: Option<&'a str>,
}

enum ReqId<'a> {
    Plain(Id<'a>),
    /// A number jsonrpsee's `Id` cannot hold (negative, fractional, huge).
    Raw(&'a RawValue),
}

/// The members of a request object, raw, so each can be checked on its own.
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// Keeps `"id": null` apart from a missing `id` (plain `Option` folds them).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> Call<'a> {
    /// Validates a request object; the error is the -32600 reply.
    fn parse(raw: &'a RawValue) -> Result<Call<'a>, Box<RawValue>> {
        // Checked first: serde would also read a struct from an array.
        if !raw.get().starts_with('{') {
            return Err(invalid_request(Id::Null, "a request must be an object"));
        }
        let m: Members<'a> = serde_json::from_str(raw.get())
            .map_err(|e| invalid_request(Id::Null, &strip_position(&e.to_string())))?;
        let id = match m.id {
            None => None,
            Some(raw_id) => Some(match serde_json::from_str::<Id<'a>>(raw_id.get()) {
                Ok(id) => ReqId::Plain(id),
                Err(_)
                    if raw_id
                        .get()
                        .starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) =>
                {
                    ReqId::Raw(raw_id)
                }
                Err(_) => {
                    return Err(invalid_request(
                        Id::Null,
                        "\"id\" must be a string, a number or null",
                    ));
                }
            }),
        };
        // Errors below answer to the caller's id when it has a usable one.
        let reply_id = match &id {
            Some(ReqId::Plain(id)) => id.clone(),
            _ => Id::Null,
        };
        let fail = |why: &str| {
            let json = invalid_request(reply_id.clone(), why);
            match &id {
                Some(ReqId::Raw(raw)) => with_id(&json, raw),
                _ => json,
            }
        };
        if m.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return Err(fail("\"jsonrpc\" must be \"2.0\""));
        }
        let method = m
            .method
            .and_then(|raw| serde_json::from_str::<Cow<'a, str>>(raw.get()).ok())
            .ok_or_else(|| fail("\"method\" must be a string"))?;
        let params = match m.params.map(RawValue::get) {
            // Tolerated: some clients send an explicit null for "no params".
            None | Some("null") => None,
            Some(p) if p.starts_with(['{', '[']) => Some(p),
            Some(_) => return Err(fail("\"params\" must be an object or an array")),
        };
        Ok(Call { id, method, params })
    }
}

/// `params.session`, for the request's log fields.
fn session_of(params: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    struct Session<'a> {
        #[serde(borrow)]
        session: Option<Cow<'a, str>>,
    }
    let params = params.filter(|p| p.starts_with('{'))?;
    serde_json::from_str::<Session>(params)
        .ok()?
        .session
        .map(Cow::into_owned)
}

/// A complete error response line.
pub(crate) fn error(id: Id<'_>, code: i32, message: &str) -> Box<RawValue> {
    MethodResponse::error(id, ErrorObject::borrowed(code, message, None)).into_json()
}

fn invalid_request_error(why: &str) -> ErrorObject<'static> {
    ErrorObject::owned(
        ErrorCode::InvalidRequest.code(),
        format!("Invalid request: {why}"),
        None::<()>,
    )
}

/// A -32600 reply whose message says what is wrong.
pub(crate) fn invalid_request(id: Id<'_>, why: &str) -> Box<RawValue> {
    MethodResponse::error(id, invalid_request_error(why)).into_json()
}

fn join_array(items: &[Box<RawValue>]) -> Box<RawValue> {
    let mut out = String::with_capacity(items.iter().map(|i| i.get().len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(item.get());
    }
    out.push(']');
    RawValue::from_string(out).expect("an array of JSON values is JSON")
}

/// Replaces a response's `id`.
fn with_id(json: &RawValue, id: &RawValue) -> Box<RawValue> {
    let replaced = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json.get())
        .and_then(|mut response| {
            // Fails for numbers beyond f64 (`1e400`): the reply keeps `"id": null` then.
            response.insert("id".into(), serde_json::from_str(id.get())?);
            serde_json::value::to_raw_value(&response)
        });
    replaced.unwrap_or_else(|_| json.to_owned())
}

/// jsonrpsee's -32602 reads just "Invalid params", with serde's reason in `data`. Put the
/// reason into the message, naming the field when serde only gave a position.
pub(crate) fn describe_invalid_params(json: Box<RawValue>, params: Option<&str>) -> Box<RawValue> {
    if !is_generic_invalid_params(json.get()) {
        return json;
    }
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json.get()) else {
        return json;
    };
    let Some(error) = value.get_mut("error").and_then(|e| e.as_object_mut()) else {
        return json;
    };
    let Some(detail) = error.get("data").and_then(|d| d.as_str()) else {
        return json;
    };
    let mut message = format!("Invalid params: {}", strip_position(detail));
    // serde names the field itself in "missing field `x`" and "unknown field `x`"; a type
    // error ("invalid type: integer `5`, expected a string") names only the value.
    let names_field = detail.contains("missing field") || detail.contains("unknown field");
    if let Some(field) = params
        .filter(|_| !names_field)
        .and_then(|p| field_at(p, detail))
    {
        message.push_str(&format!(" (field `{field}`)"));
    }
    error.insert("message".into(), message.into());
    serde_json::value::to_raw_value(&value).unwrap_or(json)
}

/// Whether `json` is a response carrying jsonrpsee's bare "Invalid params" error. Looks only
/// at the head (`{"jsonrpc":"2.0","id":ID,"error":{...`), so large results cost nothing.
fn is_generic_invalid_params(json: &str) -> bool {
    let Some(rest) = json.strip_prefix(r#"{"jsonrpc":"2.0","id":"#) else {
        return false;
    };
    let mut ids = serde_json::Deserializer::from_str(rest).into_iter::<IgnoredAny>();
    if !matches!(ids.next(), Some(Ok(_))) {
        return false;
    }
    rest[ids.byte_offset()..].starts_with(r#","error":{"code":-32602,"message":"Invalid params","#)
}

/// Drops serde_json's " at line L column C" suffix.
fn strip_position(detail: &str) -> String {
    match detail.rfind(" at line ") {
        Some(i) if detail[i..].contains(" column ") => detail[..i].to_owned(),
        _ => detail.to_owned(),
    }
}

/// The top-level params member whose value holds the position serde reported.
fn field_at(params: &str, detail: &str) -> Option<String> {
    let at = detail.rfind(" at line ")?;
    let (line, column) = detail[at + 9..].split_once(" column ")?;
    let (line, column): (usize, usize) = (line.parse().ok()?, column.parse().ok()?);
    let line_start: usize = params
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    let pos = line_start + column;
    let members: BTreeMap<String, &RawValue> = serde_json::from_str(params).ok()?;
    members.into_iter().find_map(|(name, value)| {
        // The values borrow from `params`: their addresses give their spans.
        let start = value.get().as_ptr() as usize - params.as_ptr() as usize;
        (start..=start + value.get().len())
            .contains(&pos)
            .then_some(name)
    })
}
