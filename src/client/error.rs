//! What can go wrong reaching the daemon, each with the fix in its message.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Failure to reach (or start) the daemon. RPC errors come separately, as jsonrpsee's
/// `ClientError`, from the calls themselves.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket (missing file or a dead daemon's leftover).
    #[error("archy-executor is not running at {}", path.display())]
    NotRunning {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} belongs to uid {owner}, but you are uid {me}; use your own socket (unset ARCHY_SOCKET, or point it into your $XDG_RUNTIME_DIR)",
        path.display()
    )]
    ForeignSocket { path: PathBuf, owner: u32, me: u32 },
    #[error("permission denied connecting to {}: check the socket's and its directory's owner and mode", path.display())]
    PermissionDenied {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archy-executor not found (looked in {}): install archy-executor or set ARCHY_EXECUTOR", looked.join(", "))]
    ExecutorNotFound { looked: Vec<String> },
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "archy-executor exited before it was ready ({status}){}",
        log_hint(log)
    )]
    ExecutorExited {
        status: ExitStatus,
        log: Option<PathBuf>,
    },
    #[error("archy-executor did not report ready within {secs} s{}", log_hint(log))]
    StartTimeout { secs: u64, log: Option<PathBuf> },
    #[error("`systemctl --user start archy.socket` failed: {stderr}")]
    Systemd { stderr: String },
}

impl ClientError {
    pub(crate) fn connect(path: &std::path::Path, source: io::Error) -> Self {
        let path = path.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning { path, source }
            }
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path, source },
            _ => ClientError::Connect { path, source },
        }
    }

    /// Whether starting the daemon could help.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }
}

fn log_hint(log: &Option<PathBuf>) -> String {
    match log {
        Some(log) => format!("; its log: {}", log.display()),
        None => String::new(),
    }
}
