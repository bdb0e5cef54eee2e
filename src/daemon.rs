//! The daemon's life: settings from flags, environment and config file; serve until idle or
//! SIGTERM; tell systemd at each step.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::config::{self, ConfigFile};
use crate::policy::Policy;
use crate::rpc::{DaemonFacts, Executor};
use crate::systemd::{env::CHILD_ENV_BLOCKLIST, notify};
use crate::tmux::{Engine, EngineConfig};
use crate::transport::{self, Acquired, ServeConfig, ServeEnd, Stats};

/// Command-line flags of `archy-executor`. Flags beat environment, which beats the file.
#[derive(Debug, Parser)]
#[command(
    name = "archy-executor",
    version,
    about = "Archy's executor: JSON-RPC 2.0 on a Unix socket, running commands in tmux"
)]
pub struct Args {
    /// Socket path when not socket-activated [default: $XDG_RUNTIME_DIR/archy.sock]
    #[arg(long, env = "ARCHY_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Exit after this many seconds without clients (0 = never) [default: 300 when
    /// socket-activated, else never]
    #[arg(long, env = "ARCHY_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Name of Archy's tmux server (`tmux -L NAME`) [default: archy]
    #[arg(long, env = "ARCHY_TMUX_SOCKET")]
    pub tmux_socket: Option<String>,
    /// Configuration file [default: $XDG_CONFIG_HOME/archy/config.toml]
    #[arg(long, env = "ARCHY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Everything decided before the runtime starts.
pub struct Prepared {
    pub args: Args,
    pub file: ConfigFile,
    pub policy: Policy,
    pub socket: PathBuf,
}

/// Read flags and the config file. Errors are ready to print.
pub fn prepare(args: Args) -> Result<Prepared, String> {
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (config::default_path(), false),
    };
    let (file, policy) = config::load(&path, required).map_err(|e| e.to_string())?;
    let socket = args
        .socket
        .clone()
        .or_else(|| file.executor.socket.clone())
        .unwrap_or_else(transport::default_socket_path);
    Ok(Prepared {
        args,
        file,
        policy,
        socket,
    })
}

/// Serve until idle or told to stop. Returns why it ended.
pub async fn run(p: Prepared, acquired: Acquired) -> std::io::Result<ServeEnd> {
    let started = Instant::now();
    let ex = &p.file.executor;
    let idle_secs = p
        .args
        .idle_timeout
        .or(ex.idle_timeout)
        .unwrap_or(if acquired.activated { 300 } else { 0 });
    let tmux_socket = p
        .args
        .tmux_socket
        .clone()
        .or_else(|| ex.tmux_socket.clone())
        .unwrap_or_else(|| "archy".into());
    let engine = Engine::new(EngineConfig {
        state_dir: state_dir(&tmux_socket),
        tmux_socket: tmux_socket.clone(),
        shell: ex.shell.clone(),
        history_limit: ex.history.unwrap_or(1000),
        output_memory_cap: ex.output_memory_cap.unwrap_or(8 << 20),
        input_quiet: Duration::from_millis(300),
        use_scope: under_systemd(),
        scrub_env: CHILD_ENV_BLOCKLIST.to_vec(),
    });
    let stats = Arc::new(Stats::default());
    let conn_stats = stats.clone();
    let executor = Executor {
        engine,
        policy: Arc::new(p.policy),
        facts: Arc::new(DaemonFacts {
            socket: p.socket.clone(),
            socket_activated: acquired.activated,
            terminal: ex.terminal.clone(),
            connections: Arc::new(move || conn_stats.connections.load(Ordering::Relaxed) as u32),
        }),
        started,
    };
    use crate::api::ArchyServer;
    let methods: jsonrpsee::Methods = executor.into_rpc().into();
    let listener = tokio::net::UnixListener::from_std(acquired.listener)?;
    let cfg = ServeConfig {
        max_line_bytes: ex.max_line_bytes.unwrap_or(4 << 20),
        max_connections: ex.max_connections.unwrap_or(128),
        max_subscriptions: ex.max_subscriptions.unwrap_or(64),
        idle_timeout: (idle_secs > 0).then(|| Duration::from_secs(idle_secs)),
        ..ServeConfig::default()
    };
    tracing::info!(
        socket = %p.socket.display(),
        activated = acquired.activated,
        tmux_socket = %tmux_socket,
        idle_timeout = idle_secs,
        "archy-executor serving"
    );
    notify::status(&format!("serving {}", p.socket.display()));
    notify::ready();
    let _watchdog = notify::spawn_watchdog();
    let end = transport::serve(listener, methods, cfg, stats, shutdown_signal()).await?;
    notify::stopping();
    notify::status(match end {
        ServeEnd::Idle => "idle: exiting",
        ServeEnd::Shutdown => "stopping",
    });
    tracing::info!(reason = ?end, "archy-executor exiting");
    drop(acquired.guard);
    Ok(end)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Started by systemd with a reachable user manager: keep tmux and windows out of our cgroup.
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
        && std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| PathBuf::from(d).join("systemd/private").exists())
            .unwrap_or(false)
}

/// Private state: `$XDG_RUNTIME_DIR/archy/<tmux socket>` (0700).
pub fn state_dir(tmux_socket: &str) -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        // Empty or relative means unset (XDG base directory spec).
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| std::env::temp_dir().join(format!("archy-{}", nix::unistd::getuid())));
    let dir = base.join("archy").join(tmux_socket);
    let _ = std::fs::create_dir_all(&dir);
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(base.join("archy"), std::fs::Permissions::from_mode(0o700));
    dir
}
