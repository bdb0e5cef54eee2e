//! Archy's executor: a JSON-RPC 2.0 service on a socket-activated Unix socket that runs
//! commands in tmux sessions the user can watch.
//!
//! Layout: `api` (the wire contract), `transport` (socket, framing, dispatch), `rpc` (method
//! handlers), `tmux` (the engine), `policy`, `config`, `terminal`, `systemd` (notify, journal,
//! child environment), `daemon` (start-up and lifecycle) and `client` (typed client with lazy
//! start, used by `archyctl`).

pub mod api;
pub mod client;
pub mod config;
pub mod daemon;
pub mod error;
pub mod policy;
pub mod rpc;
pub mod systemd;
pub mod terminal;
pub mod tmux;
pub mod transport;
