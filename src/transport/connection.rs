//! One client connection: a reader that spawns a task per line, and a single writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonrpsee::server::{ConnectionId, MethodSink, Methods};
use jsonrpsee::types::Id;
use serde_json::value::RawValue;
use tokio::io::{AsyncWriteExt, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::dispatch::{self, Dispatcher};
use super::lines::{Frame, LineReader};
use super::{Peer, ServeConfig, Stats};

/// Messages waiting for the writer. When full, handlers and subscriptions wait: a client that
/// does not read slows only itself.
const WRITE_QUEUE: usize = 1024;
/// The writer coalesces queued messages into writes of about this size.
const WRITE_CHUNK: usize = 64 * 1024;

/// Unique across the process: jsonrpsee keys subscriptions by it.
static NEXT_CONNECTION: AtomicUsize = AtomicUsize::new(1);

/// Serves one connection until the client leaves, sends an oversized line, or `stop` fires.
/// In-flight requests finish and their replies are written before the socket closes.
pub(crate) async fn run(
    stream: UnixStream,
    methods: Methods,
    cfg: ServeConfig,
    peer: Peer,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let conn_id = ConnectionId(NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed));
    // Request spans below carry peer_pid; this one only tells connections apart.
    let span = tracing::debug_span!("conn", conn = conn_id.0);
    async move {
        tracing::debug!(peer_pid = peer.pid, "connected");
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let sink = MethodSink::new(tx);
        let dispatcher = Arc::new(Dispatcher::new(methods, conn_id, cfg.max_subscriptions, sink, peer, stats));
        // The writer failing means the client is gone: nothing left to answer.
        let gone = CancellationToken::new();
        // Tells the writer to flush what is queued and close.
        let closing = CancellationToken::new();

        let reading = async {
            let mut reader = LineReader::new(BufReader::new(rd), cfg.max_line_bytes);
            let mut requests = JoinSet::new();
            loop {
                tokio::select! {
                    biased;
                    () = gone.cancelled() => break,
                    () = stop.cancelled() => break,
                    Some(_) = requests.join_next(), if !requests.is_empty() => {}
                    frame = reader.next_line() => match frame {
                        Ok(Frame::Line(line)) => {
                            let dispatcher = dispatcher.clone();
                            requests.spawn(async move { dispatcher.handle_line(&line).await }.in_current_span());
                        }
                        Ok(Frame::TooLong) => {
                            let why = format!("line longer than {} bytes; closing the connection", cfg.max_line_bytes);
                            tracing::warn!(limit = cfg.max_line_bytes, "line too long");
                            dispatcher.send(dispatch::invalid_request(Id::Null, &why)).await;
                            break;
                        }
                        Ok(Frame::Eof) => {
                            // Half-closed (e.g. `nc -N`): the client still reads its replies.
                            // Fully closed: nobody will read; requests get HANGUP_GRACE to start.
                            if peer_hung_up(reader.get_ref().get_ref()).await {
                                gone.cancel();
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "read failed");
                            break;
                        }
                    }
                }
            }
            // Nobody reads the replies of a client that hung up, but a request that was
            // received is still carried out (an `execute` must run even if its client left at
            // once): every request gets HANGUP_GRACE to start, then what only waits is dropped.
            let mut grace = None;
            loop {
                tokio::select! {
                    next = requests.join_next() => if next.is_none() { break },
                    () = gone.cancelled(), if grace.is_none() => {
                        grace = Some(Box::pin(tokio::time::sleep(HANGUP_GRACE)));
                    }
                    () = async { grace.as_mut().unwrap().await }, if grace.is_some() => {
                        requests.abort_all();
                        // Reap the aborted tasks.
                        while requests.join_next().await.is_some() {}
                        break;
                    }
                }
            }
            closing.cancel();
        };
        let writing = write_loop(wr, rx, &closing, &gone);
        tokio::join!(reading, writing);
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// How long requests of a client that hung up may still run before they are dropped.
const HANGUP_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether the peer closed both directions (EPOLLHUP), not just its writing side.
async fn peer_hung_up(stream: &tokio::net::unix::OwnedReadHalf) -> bool {
    match stream.ready(Interest::WRITABLE).await {
        Ok(ready) => ready.is_write_closed(),
        Err(_) => true,
    }
}

/// The connection's only writer: replies and notifications never interleave mid-line.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Box<RawValue>>,
    closing: &CancellationToken,
    gone: &CancellationToken,
) {
    let mut buf = Vec::with_capacity(WRITE_CHUNK);
    loop {
        // `closing` first: a chatty subscription must not keep the connection open.
        let first = tokio::select! {
            biased;
            () = closing.cancelled() => None,
            () = gone.cancelled() => return,
            msg = rx.recv() => msg,
        };
        let last = first.is_none();
        buf.clear();
        if let Some(msg) = first {
            push_line(&mut buf, msg);
        }
        while last || buf.len() < WRITE_CHUNK {
            match rx.try_recv() {
                Ok(msg) => push_line(&mut buf, msg),
                Err(_) => break,
            }
        }
        if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
            gone.cancel();
            return;
        }
        if last {
            // Dropping `rx` now tells the connection's subscriptions to end.
            let _ = wr.shutdown().await;
            return;
        }
    }
}

fn push_line(buf: &mut Vec<u8>, msg: Box<RawValue>) {
    // Subscription replies come straight from jsonrpsee; this is where their -32602 gets
    // its detail (the others already have it).
    let msg = dispatch::describe_invalid_params(msg, None);
    buf.extend_from_slice(msg.get().as_bytes());
    buf.push(b'\n');
}
