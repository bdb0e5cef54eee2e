//! Starting the daemon on demand: through systemd's `archy.socket` when the user manager has
//! it, else by spawning `archy-executor` and waiting for its `READY=1`.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::process::Command;

use super::ClientError;
use crate::systemd::env::scrub;

/// How long a spawned daemon may take to report `READY=1`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// `systemctl --user` answers at once, or the user manager is unusable.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn start(path: &Path) -> Result<(), ClientError> {
    // archy.socket listens on %t/archy.sock: it cannot help a client of another path.
    if is_unit_socket_path(path) && systemd_has_archy_socket().await {
        return start_socket_unit().await;
    }
    spawn_and_wait(path).await
}

fn is_unit_socket_path(path: &Path) -> bool {
    std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|runtime| path == Path::new(&runtime).join("archy.sock"))
}

async fn systemctl(args: &[&str]) -> Option<std::process::Output> {
    let mut cmd = Command::new("systemctl");
    cmd.arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(SYSTEMCTL_TIMEOUT, cmd.output())
        .await
        .ok()?
        .ok()
}

async fn systemd_has_archy_socket() -> bool {
    systemctl(&["cat", "archy.socket"])
        .await
        .is_some_and(|out| out.status.success())
}

async fn start_socket_unit() -> Result<(), ClientError> {
    match systemctl(&["start", "archy.socket"]).await {
        Some(out) if out.status.success() => Ok(()),
        Some(out) => Err(ClientError::Systemd {
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
        None => Err(ClientError::Systemd {
            stderr: "systemctl did not answer".into(),
        }),
    }
}

/// `ARCHY_EXECUTOR`, else `archy-executor` next to the running program, else on `PATH`.
pub fn find_executor() -> Result<PathBuf, ClientError> {
    let mut looked = Vec::new();
    if let Some(program) = std::env::var_os("ARCHY_EXECUTOR").filter(|v| !v.is_empty()) {
        let program = PathBuf::from(program);
        if program.is_file() {
            return Ok(program);
        }
        looked.push(format!("ARCHY_EXECUTOR={}", program.display()));
        return Err(ClientError::ExecutorNotFound { looked });
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("archy-executor")));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("archy-executor"))
                .collect()
        })
        .unwrap_or_default();
    for candidate in beside.into_iter().chain(on_path) {
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    if looked.is_empty() {
        looked.push("PATH (unset)".into());
    }
    Err(ClientError::ExecutorNotFound { looked })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `$XDG_RUNTIME_DIR/archy/executor.log`, where a spawned daemon's stderr goes.
pub fn executor_log_path() -> Option<PathBuf> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(runtime).join("archy").join("executor.log"))
}

/// A private directory for our notify socket: the log's directory, else a fresh temp one.
fn private_dir() -> std::io::Result<PathBuf> {
    let dir = match executor_log_path() {
        Some(log) => log
            .parent()
            .map(Path::to_owned)
            .expect("the log path has a parent"),
        None => std::env::temp_dir().join(format!("archy-{}", nix::unistd::geteuid())),
    };
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    Ok(dir)
}

/// Removes the notify socket file on every path out of [`spawn_and_wait`].
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

async fn spawn_and_wait(path: &Path) -> Result<(), ClientError> {
    let program = find_executor()?;
    let spawn_err = |source| ClientError::Spawn {
        program: program.clone(),
        source,
    };
    let dir = private_dir().map_err(spawn_err)?;
    let notify_path = dir.join(format!("notify-{}.sock", std::process::id()));
    let _ = fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).map_err(spawn_err)?;
    let _unlink = Unlink(notify_path.clone());

    let log = executor_log_path();
    let stderr = log
        .as_ref()
        .and_then(|log| OpenOptions::new().create(true).append(true).open(log).ok())
        .map_or_else(Stdio::null, Stdio::from);
    let mut cmd = std::process::Command::new(&program);
    scrub(&mut cmd)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("ARCHY_SOCKET", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: setsid() is async-signal-safe and touches no memory of ours. A session of its
    // own keeps the daemon alive when our terminal hangs up.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = Command::from(cmd).spawn().map_err(spawn_err)?;
    tracing::debug!(program = %program.display(), pid = child.id(), "started archy-executor");

    let ready = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = notify.recv(&mut buf).await?;
            if buf[..n]
                .split(|&b| b == b'\n')
                .any(|line| line == b"READY=1")
            {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    tokio::select! {
        ready = ready => ready.map_err(spawn_err),
        status = child.wait() => match status {
            // Another client may have started a daemon at the same moment: this one then
            // refused to bind, and the other one serves.
            Ok(_) if tokio::net::UnixStream::connect(path).await.is_ok() => Ok(()),
            Ok(status) => Err(ClientError::ExecutorExited { status, log }),
            Err(e) => Err(spawn_err(e)),
        },
        () = tokio::time::sleep(READY_TIMEOUT) => Err(ClientError::StartTimeout { secs: READY_TIMEOUT.as_secs(), log }),
    }
}
