//! The OpenRPC document served by `rpc.discover`.
//!
//! Schemas come from the wire types themselves (schemars); the parameter lists mirror the
//! `#[rpc]` trait, and `tests/api.rs` checks every documented method against the live server.

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use super::errors::ErrorCode;
use super::types::*;

struct Param {
    name: &'static str,
    required: bool,
    schema: fn(&mut SchemaGenerator) -> schemars::Schema,
    description: &'static str,
}

fn p<T: JsonSchema>(name: &'static str, required: bool, description: &'static str) -> Param {
    Param {
        name,
        required,
        schema: |g| g.subschema_for::<T>(),
        description,
    }
}

struct Method {
    name: &'static str,
    summary: &'static str,
    params: Vec<Param>,
    result: fn(&mut SchemaGenerator) -> schemars::Schema,
}

fn m<R: JsonSchema>(name: &'static str, summary: &'static str, params: Vec<Param>) -> Method {
    Method {
        name,
        summary,
        params,
        result: |g| g.subschema_for::<R>(),
    }
}

const SESSION: &str = "tmux session name; default archy_session";

fn methods() -> Vec<Method> {
    vec![
        m::<CommandResult>(
            "execute",
            "Run a command in a session and, unless wait is false, wait for it.",
            vec![
                p::<String>("command", true, "shell command line, run as typed"),
                p::<String>("session", false, SESSION),
                p::<bool>("wait", false, "wait for the end (default true)"),
                p::<u64>(
                    "timeout_ms",
                    false,
                    "how long to wait (default 30000); the command keeps running after it",
                ),
                p::<u64>(
                    "max_bytes",
                    false,
                    "most output bytes returned (default 65536); the tail is kept",
                ),
                p::<bool>(
                    "queue",
                    false,
                    "wait for a busy session instead of refusing",
                ),
                p::<String>("cwd", false, "directory to run in (persists, like cd)"),
                p::<EnvMap>("env", false, "variables exported before the command"),
            ],
        ),
        m::<CommandResult>(
            "wait",
            "Wait for a command to end (or to wait for input), up to timeout_ms.",
            vec![
                p::<String>("id", true, "command id"),
                p::<u64>("timeout_ms", false, "default 30000"),
                p::<u64>("max_bytes", false, "default 65536"),
            ],
        ),
        m::<OutputPage>(
            "output",
            "A page of a command's whole cleaned output.",
            vec![
                p::<String>("id", true, "command id"),
                p::<u64>("offset", false, "byte offset (default 0)"),
                p::<u64>("limit", false, "bytes (default 1048576)"),
            ],
        ),
        m::<Interrupted>(
            "interrupt",
            "Send a signal (INT, TERM, KILL, QUIT, HUP) to the command of a session.",
            vec![
                p::<String>("id", false, "command id (or give session)"),
                p::<String>("session", false, SESSION),
                p::<String>("signal", false, "default INT"),
            ],
        ),
        m::<InputSent>(
            "send_input",
            "Type text into a session; secret text is never logged.",
            vec![
                p::<String>("text", true, "text to type"),
                p::<String>("session", false, SESSION),
                p::<bool>("enter", false, "press Enter after it (default true)"),
                p::<bool>("secret", false, "a password: never logged (default false)"),
            ],
        ),
        m::<Capture>(
            "capture",
            "The pane as a person sees it, history included.",
            vec![
                p::<String>("session", false, SESSION),
                p::<u32>("lines", false, "last N lines (default 100)"),
            ],
        ),
        m::<SessionExists>(
            "check_session",
            "Whether a session exists.",
            vec![p::<String>("session", false, SESSION)],
        ),
        m::<Status>(
            "status",
            "What a session is doing.",
            vec![p::<String>("session", false, SESSION)],
        ),
        m::<SessionList>("list_sessions", "Sessions of Archy's tmux server.", vec![]),
        m::<History>(
            "history",
            "Recent commands, newest last.",
            vec![
                p::<String>("session", false, "only this session (default all)"),
                p::<u32>("limit", false, "default 50"),
            ],
        ),
        m::<TerminalOpened>(
            "open_terminal",
            "Open a terminal window attached to a session (created if needed).",
            vec![
                p::<String>("session", false, SESSION),
                p::<String>(
                    "terminal",
                    false,
                    "program, e.g. foot; default configured or first found",
                ),
                p::<EnvMap>(
                    "env",
                    false,
                    "caller's WAYLAND_DISPLAY, DISPLAY, XDG_RUNTIME_DIR, ...",
                ),
            ],
        ),
        m::<Closed>(
            "close_terminal",
            "Close the terminal windows attached to a session.",
            vec![p::<String>("session", false, SESSION)],
        ),
        m::<Closed>(
            "close_session",
            "Kill a session and what runs in it.",
            vec![p::<String>("session", false, SESSION)],
        ),
        m::<DaemonInfo>("daemon_info", "Version, pid, uptime and counters.", vec![]),
        m::<Value>("rpc.discover", "This document.", vec![]),
        m::<OutputEvent>(
            "subscribe_output",
            "Subscription: `output_event` notifications with {id, data} as the command prints, the last with {id, result}. Cancel with unsubscribe_output.",
            vec![p::<String>("id", true, "command id")],
        ),
        m::<bool>(
            "unsubscribe_output",
            "Cancel a subscribe_output subscription.",
            vec![p::<String>("subscription", true, "subscription id")],
        ),
    ]
}

/// Names of every documented method, in document order.
pub fn method_names() -> Vec<&'static str> {
    methods().into_iter().map(|m| m.name).collect()
}

/// Build the OpenRPC 1.2 document.
pub fn document(version: &str) -> Value {
    let mut gen_ = SchemaGenerator::default();
    let methods: Vec<Value> = methods()
        .into_iter()
        .map(|m| {
            let params: Vec<Value> = m
                .params
                .iter()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "required": p.required,
                        "description": p.description,
                        "schema": (p.schema)(&mut gen_),
                    })
                })
                .collect();
            json!({
                "name": m.name,
                "summary": m.summary,
                "paramStructure": "by-name",
                "params": params,
                "result": {"name": "result", "schema": (m.result)(&mut gen_)},
            })
        })
        .collect();
    let errors: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!({"code": c.code(), "message": c.name()}))
        .collect();
    json!({
        "openrpc": "1.2.6",
        "info": {"title": "Archy executor", "version": version},
        "methods": methods,
        "components": {
            "schemas": gen_.take_definitions(true),
            "errors": errors,
        },
    })
}
