//! Parameter and result types of the executor's JSON-RPC API.
//!
//! These are the wire types: the Python client (`python/src/archy/types.py`) mirrors them, and
//! `rpc.discover` publishes their JSON Schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Session used when a call names none.
pub const DEFAULT_SESSION: &str = "archy_session";

/// Lifecycle state of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Still running (or `wait: false`, or the wait timed out).
    Running,
    /// Finished; `exit_code` is set.
    Exited,
    /// Blocked on the terminal: a password prompt, `read`, a pager. `prompt` holds the line shown.
    WaitingForInput,
    /// Ended by a signal sent through `interrupt`.
    Interrupted,
}

impl CommandState {
    /// Whether the command can still change.
    pub fn is_live(self) -> bool {
        matches!(self, CommandState::Running | CommandState::WaitingForInput)
    }
}

/// What `execute`, `wait` and `history` report about a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandResult {
    /// Daemon-wide unique id, e.g. `c17-3f9a2b`.
    pub id: String,
    pub session: String,
    pub command: String,
    pub state: CommandState,
    /// Set only once the command has exited.
    pub exit_code: Option<i32>,
    /// Cleaned output (ANSI stripped, CRLF folded, `\r` redraws applied), at most `max_bytes`.
    pub output: String,
    /// Size of the whole cleaned output so far; `output` may be shorter (see `truncated`).
    pub output_bytes: u64,
    /// True when `output` holds only the tail of the output; `output {id}` pages the whole.
    pub truncated: bool,
    /// The prompt line when `state` is `waiting_for_input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// RFC 3339 UTC timestamp.
    pub started_at: String,
    /// Milliseconds from start to exit (or until now while running).
    pub duration_ms: u64,
}

/// `capture` result: the pane as a person sees it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Capture {
    pub output: String,
    /// Number of lines in `output`.
    pub lines: u32,
}

/// `check_session` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionExists {
    pub exists: bool,
}

/// `open_terminal` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TerminalOpened {
    pub pid: u32,
    /// Terminal program used, e.g. `foot`.
    pub terminal: String,
}

/// `close_terminal` / `close_session` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Closed {
    /// How many windows (or sessions) were closed.
    pub closed: u32,
}

/// What a session is doing, as `status` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Idle,
    Running,
    WaitingForInput,
    FullScreen,
}

/// `status` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub session: String,
    pub state: SessionState,
    /// Name of the pane's foreground process (`bash` when idle).
    pub foreground: Option<String>,
    pub foreground_pid: Option<u32>,
    /// Id of the command Archy is running there, if any.
    pub command_id: Option<String>,
    /// The prompt line when waiting for input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// One entry of `list_sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    pub name: String,
    /// Windows attached to the session (terminal clients).
    pub attached: u32,
    /// Id of the running command, if any.
    pub command_id: Option<String>,
    /// Commands queued behind it.
    pub queued: u32,
}

/// `list_sessions` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `history` result, newest last.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct History {
    pub commands: Vec<CommandResult>,
}

/// `output` result: one page of a command's whole cleaned output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OutputPage {
    pub id: String,
    /// Byte offset of `data` in the whole output.
    pub offset: u64,
    pub data: String,
    /// Bytes of cleaned output so far.
    pub total_bytes: u64,
    /// True when the command has ended and `data` reaches the end.
    pub complete: bool,
}

/// `interrupt` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Interrupted {
    /// Id of the command that was signalled, if one was running.
    pub id: Option<String>,
    pub signal: String,
}

/// `send_input` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct InputSent {
    /// Bytes typed (the text itself is never echoed back or logged when `secret`).
    pub bytes: u64,
}

/// `daemon_info` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub uptime_ms: u64,
    /// True when systemd passed the listening socket in.
    pub socket_activated: bool,
    pub socket: String,
    /// tmux server socket name (`tmux -L NAME`).
    pub tmux_socket: String,
    pub sessions: u32,
    pub commands_run: u64,
    pub connections: u32,
}

/// One `output` notification of `subscribe_output`: a chunk of output as it is printed
/// (`data`), and, last, the final result (`result`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OutputEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CommandResult>,
}

/// Extra environment for a command or a terminal window.
pub type EnvMap = BTreeMap<String, String>;
