//! The JSON-RPC methods: one `impl ArchyServer`, delegating to a module per group
//! (commands, sessions, terminal, daemon).

mod commands;
mod daemon;
mod sessions;
mod terminal;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};

use crate::api::*;
use crate::policy::Policy;
use crate::tmux::Engine;

/// Facts about this daemon run, for `daemon_info` and the methods that need settings.
#[derive(Clone)]
pub struct DaemonFacts {
    pub socket: PathBuf,
    pub socket_activated: bool,
    /// Configured terminal program, if any.
    pub terminal: Option<String>,
    /// Current client connections (kept by the transport).
    pub connections: Arc<dyn Fn() -> u32 + Send + Sync>,
}

/// The executor service: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct Executor {
    pub engine: Engine,
    pub policy: Arc<Policy>,
    pub facts: Arc<DaemonFacts>,
    pub started: Instant,
}

/// The session a call names, else the default; recorded on the request's log span so every
/// request line says which session it touched.
fn session_or_default(s: Option<String>) -> String {
    let s = s.unwrap_or_else(|| DEFAULT_SESSION.to_string());
    tracing::Span::current().record("session", s.as_str());
    s
}

#[async_trait]
impl ArchyServer for Executor {
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
    ) -> RpcResult<CommandResult> {
        let req = commands::ExecuteParams {
            command,
            session: session_or_default(session),
            wait: wait.unwrap_or(true),
            timeout_ms: timeout_ms.unwrap_or(30_000),
            max_bytes: max_bytes.unwrap_or(65_536),
            queue: queue.unwrap_or(false),
            cwd,
            env: env.unwrap_or_default(),
        };
        Ok(commands::execute(self, req).await?)
    }

    async fn wait(
        &self,
        id: String,
        timeout_ms: Option<u64>,
        max_bytes: Option<u64>,
    ) -> RpcResult<CommandResult> {
        Ok(commands::wait(
            self,
            &id,
            timeout_ms.unwrap_or(30_000),
            max_bytes.unwrap_or(65_536),
        )
        .await?)
    }

    async fn output(
        &self,
        id: String,
        offset: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<OutputPage> {
        Ok(commands::output(self, &id, offset.unwrap_or(0), limit.unwrap_or(1 << 20)).await?)
    }

    async fn interrupt(
        &self,
        id: Option<String>,
        session: Option<String>,
        signal: Option<String>,
    ) -> RpcResult<Interrupted> {
        let signal = signal.unwrap_or_else(|| "INT".into());
        Ok(self
            .engine
            .interrupt(id.as_deref(), session.as_deref(), &signal)
            .await?)
    }

    async fn send_input(
        &self,
        text: String,
        session: Option<String>,
        enter: Option<bool>,
        secret: Option<bool>,
    ) -> RpcResult<InputSent> {
        let session = session_or_default(session);
        let bytes = self
            .engine
            .send_input(&session, &text, enter.unwrap_or(true))
            .await?;
        // The text itself is never logged; only whether it was secret.
        tracing::info!(session = %session, bytes, secret = secret.unwrap_or(false), "input sent");
        Ok(InputSent { bytes })
    }

    async fn capture(&self, session: Option<String>, lines: Option<u32>) -> RpcResult<Capture> {
        let lines = lines.unwrap_or(100).clamp(1, 100_000);
        Ok(self
            .engine
            .capture(&session_or_default(session), lines)
            .await?)
    }

    async fn check_session(&self, session: Option<String>) -> RpcResult<SessionExists> {
        Ok(sessions::check(self, &session_or_default(session)).await?)
    }

    async fn status(&self, session: Option<String>) -> RpcResult<Status> {
        Ok(self.engine.status(&session_or_default(session)).await?)
    }

    async fn list_sessions(&self) -> RpcResult<SessionList> {
        Ok(SessionList {
            sessions: self.engine.list_sessions().await?,
        })
    }

    async fn history(&self, session: Option<String>, limit: Option<u32>) -> RpcResult<History> {
        self.engine.settle().await?;
        Ok(History {
            commands: self
                .engine
                .history(session.as_deref(), limit.unwrap_or(50) as usize, 65_536),
        })
    }

    async fn open_terminal(
        &self,
        session: Option<String>,
        terminal: Option<String>,
        env: Option<EnvMap>,
    ) -> RpcResult<TerminalOpened> {
        Ok(terminal::open(
            self,
            &session_or_default(session),
            terminal.as_deref(),
            env.unwrap_or_default(),
        )
        .await?)
    }

    async fn close_terminal(&self, session: Option<String>) -> RpcResult<Closed> {
        Ok(terminal::close(self, &session_or_default(session)).await?)
    }

    async fn close_session(&self, session: Option<String>) -> RpcResult<Closed> {
        Ok(Closed {
            closed: self
                .engine
                .close_session(&session_or_default(session))
                .await?,
        })
    }

    async fn daemon_info(&self) -> RpcResult<DaemonInfo> {
        Ok(daemon::info(self))
    }

    async fn discover(&self) -> RpcResult<serde_json::Value> {
        Ok(openrpc::document(env!("CARGO_PKG_VERSION")))
    }

    async fn subscribe_output(
        &self,
        pending: PendingSubscriptionSink,
        id: String,
    ) -> SubscriptionResult {
        commands::subscribe_output(self, pending, id).await
    }
}
