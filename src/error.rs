//! The daemon's error type, and the one place it becomes a JSON-RPC error object.

use jsonrpsee::types::ErrorObjectOwned;
use serde_json::json;

use crate::api::ErrorCode;

/// Everything a method can fail with. Each variant keeps what a client needs to act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("session {session:?} not found; create it with execute or open_terminal")]
    SessionNotFound { session: String },
    #[error("tmux failed: {stderr}")]
    Tmux { stderr: String },
    #[error("refused by policy rule {rule:?}: {reason}")]
    Refused {
        rule: String,
        pattern: String,
        reason: String,
    },
    #[error("unknown command id {id:?} (never run here, or dropped from history)")]
    UnknownCommand { id: String },
    #[error(
        "session {session:?} is busy running {running_id}; wait for it, interrupt it, or pass queue: true"
    )]
    Busy { session: String, running_id: String },
    #[error("no terminal program found (tried {}); install foot or set [executor] terminal", tried.join(", "))]
    NoTerminal { tried: Vec<String> },
    #[error("terminal {terminal:?} failed to start: {reason}")]
    TerminalFailed { terminal: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid params: {0}")]
    InvalidParams(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The wire code of this error.
    pub fn code(&self) -> i32 {
        match self {
            Error::SessionNotFound { .. } => ErrorCode::SessionNotFound.code(),
            Error::Tmux { .. } => ErrorCode::TmuxFailed.code(),
            Error::Refused { .. } => ErrorCode::RefusedByPolicy.code(),
            Error::UnknownCommand { .. } => ErrorCode::UnknownCommand.code(),
            Error::Busy { .. } => ErrorCode::SessionBusy.code(),
            Error::NoTerminal { .. } => ErrorCode::NoTerminal.code(),
            Error::TerminalFailed { .. } => ErrorCode::TerminalFailed.code(),
            Error::Io { .. } => ErrorCode::Io.code(),
            Error::InvalidParams(_) => jsonrpsee::types::error::INVALID_PARAMS_CODE,
        }
    }
}

impl From<Error> for ErrorObjectOwned {
    fn from(e: Error) -> Self {
        let data = match &e {
            Error::SessionNotFound { session } => json!({ "session": session }),
            Error::Tmux { stderr } => json!({ "stderr": stderr }),
            Error::Refused {
                rule,
                pattern,
                reason,
            } => json!({ "rule": rule, "pattern": pattern, "reason": reason }),
            Error::UnknownCommand { id } => json!({ "id": id }),
            Error::Busy {
                running_id,
                session,
            } => {
                json!({ "running_id": running_id, "session": session })
            }
            Error::NoTerminal { tried } => json!({ "tried": tried }),
            Error::TerminalFailed { terminal, reason } => {
                json!({ "terminal": terminal, "reason": reason })
            }
            Error::Io { context, source } => json!({ "reason": format!("{context}: {source}") }),
            Error::InvalidParams(_) => serde_json::Value::Null,
        };
        let data = (!data.is_null()).then_some(data);
        ErrorObjectOwned::owned(e.code(), e.to_string(), data)
    }
}
