//! `archy-executor`: parse flags, set up logging, take the socket, run the daemon.

use std::process::ExitCode;

use archy::daemon::{self, Args};
use archy::{systemd, transport};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let _log = systemd::logging::init();
    let prepared = match daemon::prepare(args) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            eprintln!("archy-executor: configuration error: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    // listenfd edits the environment: before any thread exists.
    let acquired = match transport::acquire(&prepared.socket) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", prepared.socket.display());
            eprintln!(
                "archy-executor: cannot listen on {}: {e}",
                prepared.socket.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("archy-executor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(prepared, acquired)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("archy-executor failed: {e}");
            eprintln!("archy-executor: {e}");
            ExitCode::FAILURE
        }
    }
}
