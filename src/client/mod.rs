//! A typed Rust client for the executor: jsonrpsee's async client over the daemon's
//! newline-delimited Unix socket, so the generated [`ArchyClient`](crate::api::ArchyClient)
//! methods (subscriptions included) work on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use archy::api::ArchyClient;
//! let client = archy::client::connect_or_start(&archy::transport::default_socket_path()).await?;
//! let info = client.daemon_info().await?;
//! println!("archy-executor {} (pid {})", info.version, info.pid);
//! # Ok(()) }
//! ```

mod error;
mod start;
mod transport;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use jsonrpsee::core::client::ClientBuilder;
use tokio::net::UnixStream;

pub use error::ClientError;
pub use start::{executor_log_path, find_executor};
pub use transport::{Receiver, Sender};

/// jsonrpsee's async client; the generated `ArchyClient` trait is implemented for it.
pub type Client = jsonrpsee::async_client::Client;

/// Server-side timeouts (`timeout_ms`) bound every call; this only catches a hung daemon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Connects to a running daemon.
pub async fn connect(path: &Path) -> Result<Client, ClientError> {
    check_owner(path)?;
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| ClientError::connect(path, e))?;
    Ok(from_stream(stream))
}

/// Connects, starting the daemon first when nothing listens at `path`: through systemd when
/// the user manager has `archy.socket`, else by spawning `archy-executor` and waiting for its
/// `READY=1`.
pub async fn connect_or_start(path: &Path) -> Result<Client, ClientError> {
    match connect(path).await {
        Err(e) if e.is_not_running() => {}
        other => return other,
    }
    start::start(path).await?;
    connect(path).await
}

/// Wraps a connected stream.
pub fn from_stream(stream: UnixStream) -> Client {
    let (rd, wr) = stream.into_split();
    ClientBuilder::default()
        .request_timeout(REQUEST_TIMEOUT)
        .build_with_tokio(Sender::new(wr), Receiver::new(rd))
}

/// A socket owned by another user would only be refused by its daemon without a word: say
/// why up front.
fn check_owner(path: &Path) -> Result<(), ClientError> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me {
                return Err(ClientError::ForeignSocket {
                    path: path.to_owned(),
                    owner: meta.uid(),
                    me,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::connect(path, e)),
    }
}
