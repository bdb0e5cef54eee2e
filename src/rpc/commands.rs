//! `execute`, `wait`, `output` and `subscribe_output`.

use std::time::Duration;

use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::types::ErrorObjectOwned;
use tokio::sync::broadcast::error::RecvError;

use super::Executor;
use crate::api::{CommandResult, EnvMap, OutputEvent, OutputPage};
use crate::error::{Error, Result};
use crate::tmux::ExecRequest;

/// `execute` params with defaults applied.
pub struct ExecuteParams {
    pub command: String,
    pub session: String,
    pub wait: bool,
    pub timeout_ms: u64,
    pub max_bytes: u64,
    pub queue: bool,
    pub cwd: Option<String>,
    pub env: EnvMap,
}

pub async fn execute(ex: &Executor, p: ExecuteParams) -> Result<CommandResult> {
    if p.command.trim().is_empty() {
        return Err(Error::InvalidParams("command is empty".into()));
    }
    if let Some(k) = p.env.keys().find(|k| !valid_env_name(k)) {
        return Err(Error::InvalidParams(format!(
            "env: {k:?} is not a valid variable name"
        )));
    }
    if let Err(r) = ex.policy.check(&p.command) {
        tracing::warn!(target: "archy::audit", session = %p.session, command = %p.command, rule = %r.rule, "command refused by policy rule {}: {:?}", r.rule, p.command);
        return Err(Error::Refused {
            rule: r.rule,
            pattern: r.pattern,
            reason: r.reason,
        });
    }
    let cmd = ex
        .engine
        .execute(ExecRequest {
            command: p.command.clone(),
            session: p.session.clone(),
            queue: p.queue,
            cwd: p.cwd,
            env: p.env,
        })
        .await?;
    tracing::info!(
        target: "archy::audit",
        id = %cmd.id,
        session = %p.session,
        command = %p.command,
        "command {} started in {}: {:?}",
        cmd.id,
        p.session,
        p.command
    );
    if p.wait {
        ex.engine
            .wait(&cmd, Duration::from_millis(p.timeout_ms))
            .await;
    }
    Ok(cmd.result(p.max_bytes))
}

pub async fn wait(
    ex: &Executor,
    id: &str,
    timeout_ms: u64,
    max_bytes: u64,
) -> Result<CommandResult> {
    let cmd = ex.engine.get_settled(id).await?;
    ex.engine
        .wait(&cmd, Duration::from_millis(timeout_ms))
        .await;
    Ok(cmd.result(max_bytes))
}

pub async fn output(ex: &Executor, id: &str, offset: u64, limit: u64) -> Result<OutputPage> {
    let cmd = ex.engine.get_settled(id).await?;
    let live = cmd.inner.lock().unwrap();
    let data = live.out.read(offset, limit);
    let total = live.out.len();
    let complete = !live.state.is_live() && offset + data.len() as u64 >= total;
    Ok(OutputPage {
        id: id.to_string(),
        offset,
        data,
        total_bytes: total,
        complete,
    })
}

pub async fn subscribe_output(
    ex: &Executor,
    pending: PendingSubscriptionSink,
    id: String,
) -> SubscriptionResult {
    let cmd = match ex.engine.get_settled(&id).await {
        Ok(c) => c,
        Err(e) => {
            pending.reject(ErrorObjectOwned::from(e)).await;
            return Ok(());
        }
    };
    // Subscribe before looking at the state, so no chunk falls between the two.
    let mut chunks = cmd.subscribe_chunks();
    let mut changed = cmd.changed.subscribe();
    let sink = pending.accept().await?;
    let send = |ev: OutputEvent| {
        let sink = &sink;
        async move {
            let raw = serde_json::value::to_raw_value(&ev)?;
            sink.send(raw).await.map_err(|e| e.to_string())?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }
    };
    loop {
        if !cmd.state().is_live() {
            while let Ok(data) = chunks.try_recv() {
                send(OutputEvent {
                    id: id.clone(),
                    data: Some(data),
                    result: None,
                })
                .await?;
            }
            let result = cmd.result(65_536);
            send(OutputEvent {
                id: id.clone(),
                data: None,
                result: Some(result),
            })
            .await?;
            return Ok(());
        }
        tokio::select! {
            r = chunks.recv() => match r {
                Ok(data) => send(OutputEvent { id: id.clone(), data: Some(data), result: None }).await?,
                // A slow reader missed chunks; `output {id}` still has every byte.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
            r = changed.changed() => if r.is_err() { continue },
            _ = sink.closed() => return Ok(()),
        }
    }
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
