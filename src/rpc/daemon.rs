//! `daemon_info`.

use super::Executor;
use crate::api::DaemonInfo;

pub fn info(ex: &Executor) -> DaemonInfo {
    DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_ms: ex.started.elapsed().as_millis() as u64,
        socket_activated: ex.facts.socket_activated,
        socket: ex.facts.socket.display().to_string(),
        tmux_socket: ex.engine.config().tmux_socket.clone(),
        sessions: ex.engine.session_count() as u32,
        commands_run: ex.engine.commands_run(),
        connections: (ex.facts.connections)(),
    }
}
