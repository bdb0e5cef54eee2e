//! `archyctl`: a small command-line client for archy-executor. Starts the daemon on demand.

use std::path::PathBuf;
use std::process::ExitCode;

use archy::api::{ArchyClient, CommandResult, CommandState, EnvMap};
use archy::client::{self, Client};
use clap::{Args, Parser, Subcommand};
use jsonrpsee::core::client::{ClientT, Error as RpcError};
use jsonrpsee::core::traits::ToRpcParams;
use serde::Serialize;
use serde_json::value::RawValue;

/// Exit code when a command is still running (or waiting for input) at the timeout, as
/// timeout(1) does.
const EXIT_TIMEOUT: u8 = 124;
/// Exit code when a command was interrupted, as a shell reports SIGINT.
const EXIT_INTERRUPTED: u8 = 130;
/// Exit code for errors from archyctl or the daemon (clap uses 2 for usage errors too).
const EXIT_ERROR: u8 = 2;

/// The caller's display and session variables, passed to `open` so the window appears on the
/// caller's screen: the daemon's own environment is the user manager's.
const DISPLAY_ENV: &[&str] = &[
    "WAYLAND_DISPLAY",
    "DISPLAY",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_TYPE",
    "DBUS_SESSION_BUS_ADDRESS",
    "SWAYSOCK",
];

#[derive(Parser)]
#[command(
    version,
    about = "Run commands in Archy's tmux sessions through archy-executor"
)]
struct Cli {
    /// Daemon socket [default: $ARCHY_SOCKET, else $XDG_RUNTIME_DIR/archy.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print results as JSON
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Session {
    /// Session name [default: archy_session]
    #[arg(short, long)]
    session: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command; print its output and exit with its exit code
    Exec {
        #[command(flatten)]
        session: Session,
        /// Seconds to wait before returning (the command keeps running) [default: 30]
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Return at once with the command's id
        #[arg(long)]
        no_wait: bool,
        /// The command line; words are joined with spaces
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Print the pane as a person sees it
    Capture {
        #[command(flatten)]
        session: Session,
        /// Lines of history to include
        #[arg(long)]
        lines: Option<u32>,
    },
    /// List sessions
    Sessions,
    /// Show what a session is doing
    Status {
        #[command(flatten)]
        session: Session,
    },
    /// Open a terminal window attached to a session
    Open {
        #[command(flatten)]
        session: Session,
        /// Terminal program, e.g. foot
        #[arg(long)]
        terminal: Option<String>,
    },
    /// Close a session's terminal windows
    Close {
        #[command(flatten)]
        session: Session,
        /// Kill the session too
        #[arg(long)]
        session_too: bool,
    },
    /// Show recent commands
    History {
        #[command(flatten)]
        session: Session,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show the daemon's version and counters
    Info,
    /// Call any method with raw JSON params and print the result
    Call {
        method: String,
        /// Params as a JSON object or array
        params: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli
        .socket
        .clone()
        .unwrap_or_else(archy::transport::default_socket_path);
    let client = match client::connect_or_start(&path).await {
        Ok(client) => client,
        Err(e) => return fail(&e.to_string()),
    };
    match run(&client, cli.command, cli.json).await {
        Ok(code) => code,
        Err(e) => fail_rpc(e),
    }
}

async fn run(client: &Client, command: Command, json: bool) -> Result<ExitCode, RpcError> {
    let out = Output { json };
    match command {
        Command::Exec {
            session,
            timeout,
            no_wait,
            command,
        } => {
            let timeout_ms = timeout.map(|secs| (secs * 1000.0).max(0.0) as u64);
            let call = client.execute(
                command.join(" "),
                session.session.clone(),
                Some(!no_wait),
                timeout_ms,
                None,
                None,
                None,
                None,
            );
            let result = tokio::select! {
                result = call => result?,
                _ = tokio::signal::ctrl_c() => {
                    // Ctrl-C stops the command, not just our wait for it.
                    let _ = client.interrupt(None, session.session, None).await;
                    eprintln!("archyctl: interrupted");
                    return Ok(ExitCode::from(EXIT_INTERRUPTED));
                }
            };
            Ok(out.exec(&result, no_wait))
        }
        Command::Capture { session, lines } => {
            let capture = client.capture(session.session, lines).await?;
            out.print(&capture, || print!("{}", capture.output));
            Ok(ExitCode::SUCCESS)
        }
        Command::Sessions => {
            let list = client.list_sessions().await?;
            out.print(&list, || {
                for s in &list.sessions {
                    let running = s.command_id.as_deref().unwrap_or("-");
                    println!(
                        "{}\tattached={}\trunning={running}\tqueued={}",
                        s.name, s.attached, s.queued
                    );
                }
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { session } => {
            let status = client.status(session.session).await?;
            out.print(&status, || {
                let state = serde_json::to_value(status.state).unwrap_or_default();
                let state = state.as_str().unwrap_or("?");
                let fg = status.foreground.as_deref().unwrap_or("?");
                let pid = status
                    .foreground_pid
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default();
                println!("{}: {state}, foreground {fg}{pid}", status.session);
                if let Some(id) = &status.command_id {
                    println!("command: {id}");
                }
                if let Some(prompt) = &status.prompt {
                    println!("prompt: {prompt}");
                }
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Open { session, terminal } => {
            let env: EnvMap = DISPLAY_ENV
                .iter()
                .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
                .collect();
            let opened = client
                .open_terminal(session.session, terminal, Some(env))
                .await?;
            out.print(&opened, || {
                println!("opened {} (pid {})", opened.terminal, opened.pid)
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Close {
            session,
            session_too,
        } => {
            let windows = client.close_terminal(session.session.clone()).await?;
            let sessions = match session_too {
                true => Some(client.close_session(session.session).await?),
                false => None,
            };
            let value = serde_json::json!({"windows": windows.closed, "sessions": sessions.as_ref().map(|s| s.closed)});
            out.print(&value, || {
                println!("closed {} window(s)", windows.closed);
                if let Some(s) = &sessions {
                    println!("closed {} session(s)", s.closed);
                }
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::History { session, limit } => {
            let history = client.history(session.session, limit).await?;
            out.print(&history, || {
                for c in &history.commands {
                    let code = c.exit_code.map_or("-".into(), |c| c.to_string());
                    println!(
                        "{}\t{}\t{code}\t{}ms\t{}",
                        c.id,
                        state_name(c.state),
                        c.duration_ms,
                        c.command
                    );
                }
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Info => {
            let info = client.daemon_info().await?;
            out.print(&info, || {
                println!(
                    "version: {}\npid: {}\nuptime: {} s",
                    info.version,
                    info.pid,
                    info.uptime_ms / 1000
                );
                println!(
                    "socket: {} (activated: {})",
                    info.socket, info.socket_activated
                );
                println!("tmux socket: {}", info.tmux_socket);
                println!(
                    "sessions: {}\ncommands run: {}",
                    info.sessions, info.commands_run
                );
                println!("connections: {}", info.connections);
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Call { method, params } => {
            let params = match params.map(RawValue::from_string).transpose() {
                Ok(params) => RawParams(params),
                Err(e) => return Ok(fail(&format!("params are not JSON: {e}"))),
            };
            let result: serde_json::Value = client.request(&method, params).await?;
            println!("{}", pretty(&result));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a result as JSON (`--json`) or as text.
struct Output {
    json: bool,
}

impl Output {
    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce()) {
        if self.json {
            println!("{}", pretty(value));
        } else {
            text();
        }
    }

    /// Prints a command's output; the exit code follows the command's.
    fn exec(&self, result: &CommandResult, no_wait: bool) -> ExitCode {
        if self.json {
            println!("{}", pretty(result));
        } else if no_wait {
            println!("{}", result.id);
        } else {
            print!("{}", result.output);
            if result.truncated {
                eprintln!(
                    "archyctl: output truncated ({} of {} bytes shown); the rest: archyctl call output '{{\"id\":\"{}\"}}'",
                    result.output.len(),
                    result.output_bytes,
                    result.id
                );
            }
        }
        match result.state {
            CommandState::Exited => {
                ExitCode::from(result.exit_code.unwrap_or(0).clamp(0, 255) as u8)
            }
            CommandState::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
            _ if no_wait => ExitCode::SUCCESS,
            state @ (CommandState::Running | CommandState::WaitingForInput) => {
                if !self.json {
                    let prompt = result
                        .prompt
                        .as_deref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default();
                    eprintln!(
                        "archyctl: command {} is {}{prompt} (see: archyctl call wait '{{\"id\":\"{}\"}}')",
                        result.id,
                        state_name(state).replace('_', " "),
                        result.id
                    );
                }
                ExitCode::from(EXIT_TIMEOUT)
            }
        }
    }
}

fn state_name(state: CommandState) -> &'static str {
    match state {
        CommandState::Running => "running",
        CommandState::Exited => "exited",
        CommandState::WaitingForInput => "waiting_for_input",
        CommandState::Interrupted => "interrupted",
    }
}

fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"unprintable: {e}\""))
}

/// `call`'s params, passed through as given.
struct RawParams(Option<Box<RawValue>>);

impl ToRpcParams for RawParams {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        Ok(self.0)
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("archyctl: {message}");
    ExitCode::from(EXIT_ERROR)
}

fn fail_rpc(e: RpcError) -> ExitCode {
    match e {
        RpcError::Call(err) => {
            eprintln!("archyctl: {} (code {})", err.message(), err.code());
            if let Some(data) = err.data() {
                eprintln!("archyctl: details: {}", data.get());
            }
            ExitCode::from(EXIT_ERROR)
        }
        RpcError::RestartNeeded(reason) => {
            fail(&format!("lost the connection to archy-executor: {reason}"))
        }
        other => fail(&other.to_string()),
    }
}
