//! JSON-RPC 2.0 on a Unix stream socket: one JSON value per line each way.
//!
//! jsonrpsee's server speaks HTTP/WebSocket only, so this module serves its [`Methods`]
//! itself: a per-connection dispatcher calls jsonrpsee's method callbacks with that
//! connection's id and subscription budget, and owns everything the callbacks do not: parse
//! errors, request validation, notifications and batches.
//!
//! Wire rules beyond the JSON-RPC 2.0 specification:
//! - Blank lines are ignored. A line longer than [`ServeConfig::max_line_bytes`] gets a -32600
//!   error and the connection is closed.
//! - Replies follow completion, not request order: requests on one connection run
//!   concurrently.
//! - The reply to a subscription call inside a batch comes on its own line, ahead of the
//!   batch's array; a subscription call sent as a notification is ignored.
//! - Ids may be any string, number or null; `params: null` reads as no params.
//! - A -32602 error's message carries serde's reason, naming the field.

mod connection;
mod dispatch;
pub(crate) mod lines;
pub mod listener;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use jsonrpsee::server::Methods;
use jsonrpsee::types::Id;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ErrorCode;

pub use listener::{Acquired, SocketGuard, acquire, bind, default_socket_path};

/// Limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Longest accepted line (one request or batch), in bytes.
    pub max_line_bytes: usize,
    /// Clients connected at once; more get a -32028 error line and are closed.
    pub max_connections: usize,
    /// Active subscriptions per connection; more get -32006.
    pub max_subscriptions: u32,
    /// Return [`ServeEnd::Idle`] once no client has been connected for this long.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown waits for in-flight requests before dropping them.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_line_bytes: 4 << 20,
            max_connections: 128,
            max_subscriptions: 64,
            idle_timeout: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Counters the daemon reads (e.g. for `daemon_info`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected now.
    pub connections: AtomicUsize,
    /// Clients accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused: another uid, or over the limit.
    pub refused_total: AtomicU64,
    /// Valid request objects handled (each element of a batch counts).
    pub requests_total: AtomicU64,
}

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// The shutdown future resolved.
    Shutdown,
    /// No client was connected for [`ServeConfig::idle_timeout`].
    Idle,
}

/// The client on the other end of a connection. Handlers find it in their `Extensions`
/// (next to jsonrpsee's `ConnectionId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
}

/// Serves `methods` on `listener` until `shutdown` resolves or the idle timeout passes.
///
/// On shutdown it stops accepting, lets in-flight requests finish and their replies be
/// written (up to [`ServeConfig::shutdown_grace`]), then returns.
pub async fn serve(
    listener: UnixListener,
    methods: Methods,
    cfg: ServeConfig,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<ServeEnd> {
    let euid = nix::unistd::geteuid().as_raw();
    let stop = CancellationToken::new();
    let mut conns = JoinSet::new();
    // Armed only while nobody is connected: no wake-ups while idle except this deadline.
    let idle = tokio::time::sleep_until(idle_deadline(cfg.idle_timeout));
    tokio::pin!(idle, shutdown);

    let end = loop {
        tokio::select! {
            () = &mut shutdown => break ServeEnd::Shutdown,
            () = &mut idle, if cfg.idle_timeout.is_some() && conns.is_empty() => break ServeEnd::Idle,
            Some(_) = conns.join_next(), if !conns.is_empty() => {
                stats.connections.fetch_sub(1, Ordering::Relaxed);
                if conns.is_empty() {
                    idle.as_mut().reset(idle_deadline(cfg.idle_timeout));
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                };
                let Some(peer) = admit(&stream, euid) else {
                    stats.refused_total.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if conns.len() >= cfg.max_connections {
                    stats.refused_total.fetch_add(1, Ordering::Relaxed);
                    refuse_busy(&stream, cfg.max_connections);
                    continue;
                }
                if conns.is_empty() {
                    idle.as_mut().reset(idle_deadline(None));
                }
                stats.connections.fetch_add(1, Ordering::Relaxed);
                stats.connections_total.fetch_add(1, Ordering::Relaxed);
                let conn = connection::run(stream, methods.clone(), cfg.clone(), peer, stats.clone(), stop.child_token());
                conns.spawn(conn);
            }
        }
    };
    drop(listener);
    stop.cancel();
    let drained = tokio::time::timeout(cfg.shutdown_grace, async {
        while conns.join_next().await.is_some() {
            stats.connections.fetch_sub(1, Ordering::Relaxed);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "shutdown grace ran out; dropping in-flight requests"
        );
        stats.connections.fetch_sub(conns.len(), Ordering::Relaxed);
        conns.abort_all();
    }
    Ok(end)
}

fn idle_deadline(timeout: Option<Duration>) -> Instant {
    // "Never" is a deadline far enough away that tokio never wakes for it.
    Instant::now() + timeout.unwrap_or(Duration::from_secs(100 * 365 * 86_400))
}

/// The peer if it runs as our own user; anyone else is closed without a word.
fn admit(stream: &UnixStream, euid: u32) -> Option<Peer> {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == euid => Some(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
        }),
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "refused a connection from another user"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a connection: peer credentials unavailable");
            None
        }
    }
}

/// Tells a client over the connection limit why it is closed.
fn refuse_busy(stream: &UnixStream, limit: usize) {
    let message = format!("too many connections (limit {limit}); close idle clients and retry");
    let mut line = dispatch::error(Id::Null, ErrorCode::TooManyConnections.code(), &message)
        .get()
        .to_owned();
    line.push('\n');
    // A fresh socket's send buffer always has room for one short line, so this never blocks
    // the accept loop.
    let _ = stream.try_write(line.as_bytes());
    tracing::warn!(limit, "refused a connection: too many connections");
}

async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accept failed");
    // Out of file descriptors: the pending connection stays queued and accept fails again at
    // once. Back off instead of spinning until some connection closes.
    if matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
