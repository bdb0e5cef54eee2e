//! Application error codes (JSON-RPC range -32000..-32099). Documented in README.md.

/// An application error code and what it means. `data` carries the details named here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    /// jsonrpsee's own: the connection holds its maximum of subscriptions.
    TooManySubscriptions = -32006,
    /// No such tmux session. `data: {session}`.
    SessionNotFound = -32020,
    /// tmux failed or is not installed. `data: {stderr}`.
    TmuxFailed = -32021,
    /// A policy rule refused the command. `data: {rule, pattern}`.
    RefusedByPolicy = -32022,
    /// No command has that id (never existed, or dropped from history). `data: {id}`.
    UnknownCommand = -32023,
    /// The session is running another command. `data: {running_id}`.
    SessionBusy = -32024,
    /// No terminal program found. `data: {tried}`.
    NoTerminal = -32025,
    /// The terminal program could not be started. `data: {terminal, reason}`.
    TerminalFailed = -32026,
    /// A file or system call failed inside the daemon. `data: {reason}`.
    Io = -32027,
    /// The daemon holds its maximum of connections; sent before closing.
    TooManyConnections = -32028,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::TooManySubscriptions,
        ErrorCode::SessionNotFound,
        ErrorCode::TmuxFailed,
        ErrorCode::RefusedByPolicy,
        ErrorCode::UnknownCommand,
        ErrorCode::SessionBusy,
        ErrorCode::NoTerminal,
        ErrorCode::TerminalFailed,
        ErrorCode::Io,
        ErrorCode::TooManyConnections,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// Stable snake_case name, used by clients and in the OpenRPC document.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::TmuxFailed => "tmux_failed",
            ErrorCode::RefusedByPolicy => "refused_by_policy",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::SessionBusy => "session_busy",
            ErrorCode::NoTerminal => "no_terminal",
            ErrorCode::TerminalFailed => "terminal_failed",
            ErrorCode::Io => "io",
            ErrorCode::TooManyConnections => "too_many_connections",
        }
    }

    pub fn from_code(code: i32) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}
