//! `open_terminal` and `close_terminal`.

use super::Executor;
use crate::api::{Closed, EnvMap, TerminalOpened};
use crate::error::{Error, Result};
use crate::terminal;
use crate::tmux::engine::{new_id, scope_prefix};

pub async fn open(
    ex: &Executor,
    session: &str,
    asked: Option<&str>,
    env: EnvMap,
) -> Result<TerminalOpened> {
    let (name, program) = terminal::choose(asked, ex.facts.terminal.as_deref())?;
    ex.engine.ensure_session(session).await?;
    let cfg = ex.engine.config().clone();
    let prefix = if cfg.use_scope {
        scope_prefix("archy-terminal")
    } else {
        Vec::new()
    };
    let log = cfg
        .state_dir
        .join("terminals")
        .join(format!("{}.log", new_id("t")));
    let session = session.to_string();
    let name2 = name.clone();
    let pid = tokio::task::spawn_blocking(move || {
        terminal::open(terminal::Launch {
            terminal: &name2,
            program: &program,
            tmux_socket: &cfg.tmux_socket,
            session: &session,
            env: &env,
            prefix: &prefix,
            scrub: &cfg.scrub_env,
            log: &log,
        })
    })
    .await
    .map_err(|e| Error::TerminalFailed {
        terminal: name.clone(),
        reason: e.to_string(),
    })??;
    tracing::info!(terminal = %name, pid, "terminal opened");
    Ok(TerminalOpened {
        pid,
        terminal: name,
    })
}

pub async fn close(ex: &Executor, session: &str) -> Result<Closed> {
    let clients = match ex.engine.clients(session).await {
        Ok(c) => c,
        Err(Error::SessionNotFound { .. }) => return Ok(Closed { closed: 0 }),
        Err(e) => return Err(e),
    };
    let mut closed = 0;
    for (_, tty) in clients {
        if ex.engine.detach(&tty).await.is_ok() {
            closed += 1;
        }
    }
    Ok(Closed { closed })
}
