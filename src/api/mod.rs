//! The executor's JSON-RPC API, defined once: the `#[rpc]` trait (server and typed client),
//! the wire types, the application error codes and the OpenRPC document.

// `execute` has many optional by-name params; the macro copies them into generated code.
#![allow(clippy::too_many_arguments)]

pub mod errors;
pub mod openrpc;
pub mod types;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;

pub use errors::ErrorCode;
pub use types::*;

/// Every method of the executor. Params are by name; `session` defaults to `archy_session`.
#[rpc(server, client)]
pub trait Archy {
    /// Run a command in a session and (by default) wait for it.
    #[method(name = "execute", param_kind = map)]
    async fn execute(
        &self,
        command: String,
        session: Option<String>,
        wait: Option<bool>,
        timeout_ms: Option<u64>,
        max_bytes: Option<u64>,
        queue: Option<bool>,
        cwd: Option<String>,
        env: Option<EnvMap>,
    ) -> RpcResult<CommandResult>;

    /// Wait for a command to leave the running state, up to `timeout_ms`.
    #[method(name = "wait", param_kind = map)]
    async fn wait(
        &self,
        id: String,
        timeout_ms: Option<u64>,
        max_bytes: Option<u64>,
    ) -> RpcResult<CommandResult>;

    /// Page through a command's whole cleaned output.
    #[method(name = "output", param_kind = map)]
    async fn output(
        &self,
        id: String,
        offset: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<OutputPage>;

    /// Send a signal to the command running in a session (by command id or session).
    #[method(name = "interrupt", param_kind = map)]
    async fn interrupt(
        &self,
        id: Option<String>,
        session: Option<String>,
        signal: Option<String>,
    ) -> RpcResult<Interrupted>;

    /// Type text into a session, e.g. an answer to a prompt.
    #[method(name = "send_input", param_kind = map)]
    async fn send_input(
        &self,
        text: String,
        session: Option<String>,
        enter: Option<bool>,
        secret: Option<bool>,
    ) -> RpcResult<InputSent>;

    /// The pane as a person sees it, history included.
    #[method(name = "capture", param_kind = map)]
    async fn capture(&self, session: Option<String>, lines: Option<u32>) -> RpcResult<Capture>;

    /// Whether a session exists.
    #[method(name = "check_session", param_kind = map)]
    async fn check_session(&self, session: Option<String>) -> RpcResult<SessionExists>;

    /// What a session is doing.
    #[method(name = "status", param_kind = map)]
    async fn status(&self, session: Option<String>) -> RpcResult<Status>;

    /// Sessions of Archy's tmux server.
    #[method(name = "list_sessions", param_kind = map)]
    async fn list_sessions(&self) -> RpcResult<SessionList>;

    /// Recent commands of a session (or all sessions), newest last.
    #[method(name = "history", param_kind = map)]
    async fn history(&self, session: Option<String>, limit: Option<u32>) -> RpcResult<History>;

    /// Open a terminal window attached to a session.
    #[method(name = "open_terminal", param_kind = map)]
    async fn open_terminal(
        &self,
        session: Option<String>,
        terminal: Option<String>,
        env: Option<EnvMap>,
    ) -> RpcResult<TerminalOpened>;

    /// Close the terminal windows attached to a session.
    #[method(name = "close_terminal", param_kind = map)]
    async fn close_terminal(&self, session: Option<String>) -> RpcResult<Closed>;

    /// Kill a session and whatever runs in it.
    #[method(name = "close_session", param_kind = map)]
    async fn close_session(&self, session: Option<String>) -> RpcResult<Closed>;

    /// Version, pid, uptime and counters of the daemon.
    #[method(name = "daemon_info", param_kind = map)]
    async fn daemon_info(&self) -> RpcResult<DaemonInfo>;

    /// The OpenRPC document describing every method.
    #[method(name = "rpc.discover", param_kind = map)]
    async fn discover(&self) -> RpcResult<serde_json::Value>;

    /// Stream a command's output as `output_event` notifications (not `output`: that name is
    /// the paging method's); the last one carries the result.
    #[subscription(name = "subscribe_output" => "output_event", unsubscribe = "unsubscribe_output", item = OutputEvent, param_kind = map)]
    async fn subscribe_output(&self, id: String) -> SubscriptionResult;
}
