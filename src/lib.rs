//! Archy's executor: a JSON-RPC 2.0 service on a socket-activated Unix socket that runs
//! commands in tmux sessions the user can watch.

pub mod api;
pub mod client;
pub mod systemd;
pub mod transport;
