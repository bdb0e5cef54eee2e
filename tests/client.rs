//! The typed client over a real socket served by `transport::serve`: the generated
//! `ArchyClient` methods, subscriptions, errors, and how connecting fails.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use archy::api::{ArchyClient, CommandResult, CommandState, DaemonInfo, OutputEvent};
use archy::client::{self, ClientError};
use archy::transport::{self, ServeConfig, ServeEnd, Stats};
use jsonrpsee::RpcModule;
use jsonrpsee::core::SubscriptionError;
use jsonrpsee::core::client::{ClientT, Error as RpcError};
use jsonrpsee::types::ErrorObjectOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A stand-in daemon implementing a few `Archy` methods by hand (the real handlers live
/// elsewhere): enough to drive the generated client through the transport.
fn module() -> RpcModule<()> {
    let mut m = RpcModule::new(());
    m.register_method::<Result<DaemonInfo, ErrorObjectOwned>, _>("daemon_info", |_, _, _| {
        Ok(DaemonInfo {
            version: "test".into(),
            pid: std::process::id(),
            uptime_ms: 1,
            socket_activated: false,
            socket: "s".into(),
            tmux_socket: "archy".into(),
            sessions: 0,
            commands_run: 0,
            connections: 1,
        })
    })
    .unwrap();
    m.register_method("execute", |params, _, _| {
        #[derive(serde::Deserialize)]
        struct P {
            command: String,
        }
        let p: P = params.parse()?;
        if p.command == "boom" {
            return Err(ErrorObjectOwned::owned(
                -32022,
                "refused by policy",
                Some(serde_json::json!({"rule": "boom"})),
            ));
        }
        let mut r = result(&p.command);
        match p.command.split_once(' ') {
            Some(("exit", code)) => r.exit_code = code.parse().ok(),
            _ if p.command == "sleep" => (r.state, r.exit_code) = (CommandState::Running, None),
            _ if p.command == "stopped" => {
                (r.state, r.exit_code) = (CommandState::Interrupted, None)
            }
            _ => {}
        }
        Ok(r)
    })
    .unwrap();
    m.register_subscription(
        "subscribe_output",
        "output_event",
        "unsubscribe_output",
        |params, pending, _, _| async move {
            #[derive(serde::Deserialize)]
            struct P {
                id: String,
            }
            let p: P = match params.parse() {
                Ok(p) => p,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let sink = pending.accept().await?;
            for chunk in ["one\n", "two\n"] {
                let event = OutputEvent {
                    id: p.id.clone(),
                    data: Some(chunk.into()),
                    result: None,
                };
                sink.send(serde_json::value::to_raw_value(&event)?).await?;
            }
            let event = OutputEvent {
                id: p.id.clone(),
                data: None,
                result: Some(result("seq 2")),
            };
            sink.send(serde_json::value::to_raw_value(&event)?).await?;
            Ok::<(), SubscriptionError>(())
        },
    )
    .unwrap();
    m
}

fn result(command: &str) -> CommandResult {
    CommandResult {
        id: "c1".into(),
        session: "archy_session".into(),
        command: command.into(),
        state: CommandState::Exited,
        exit_code: Some(0),
        output: "ok\n".into(),
        output_bytes: 3,
        truncated: false,
        prompt: None,
        started_at: "2025-01-01T00:00:00Z".into(),
        duration_ms: 1,
    }
}

struct Server {
    dir: tempfile::TempDir,
    path: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<ServeEnd>>,
    _guard: Option<transport::SocketGuard>,
}

async fn start() -> Server {
    start_with(ServeConfig::default()).await
}

async fn start_with(cfg: ServeConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archy.sock");
    let acquired = transport::bind(&path).unwrap();
    let listener = tokio::net::UnixListener::from_std(acquired.listener).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(transport::serve(
        listener,
        module().into(),
        cfg,
        Arc::new(Stats::default()),
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        dir,
        path,
        stop,
        task,
        _guard: acquired.guard,
    }
}

impl Server {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn typed_calls_and_errors() {
    let server = start().await;
    let client = client::connect(&server.path).await.unwrap();
    let info = client.daemon_info().await.unwrap();
    assert_eq!(info.pid, std::process::id());
    let r = client
        .execute("echo ok".into(), None, None, None, None, None, None, None)
        .await
        .unwrap();
    assert_eq!((r.command.as_str(), r.exit_code), ("echo ok", Some(0)));

    let err = client
        .execute("boom".into(), None, None, None, None, None, None, None)
        .await
        .unwrap_err();
    let RpcError::Call(err) = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.code(), -32022);
    assert_eq!(err.data().unwrap().get(), r#"{"rule":"boom"}"#);

    let err = client.status(None).await.unwrap_err();
    let RpcError::Call(err) = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.code(), -32601);

    // Raw calls and many in flight at once on one connection.
    let raw: serde_json::Value = client
        .request("daemon_info", jsonrpsee::rpc_params![])
        .await
        .unwrap();
    assert_eq!(raw["version"], "test");
    let calls = (0..50).map(|n| {
        client.execute(
            format!("echo {n}"),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )
    });
    let results = futures_util::future::join_all(calls).await;
    for (n, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().command, format!("echo {n}"));
    }
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_work_through_the_typed_client() {
    let server = start().await;
    let client = client::connect(&server.path).await.unwrap();
    let mut sub = client.subscribe_output("c7".into()).await.unwrap();
    let mut data = String::new();
    let last = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.id, "c7");
        match event.result {
            Some(result) => break result,
            None => data.push_str(&event.data.unwrap()),
        }
    };
    assert_eq!(data, "one\ntwo\n");
    assert_eq!(last.command, "seq 2");
    sub.unsubscribe().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn connecting_where_nothing_listens_says_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("archy.sock");
    let err = client::connect(&missing).await.unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(err.to_string().contains("not running"), "{err}");
    // A dead daemon's leftover file.
    drop(std::os::unix::net::UnixListener::bind(&missing).unwrap());
    let err = client::connect(&missing).await.unwrap_err();
    assert!(err.is_not_running(), "{err}");
}

#[tokio::test]
async fn another_users_socket_is_named_as_such() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED another_users_socket_is_named_as_such: needs root to chown");
        return;
    }
    let server = start().await;
    std::os::unix::fs::chown(&server.path, Some(65534), None).unwrap();
    std::fs::set_permissions(&server.path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = client::connect(&server.path).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ForeignSocket { owner: 65534, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    let _ = &server.dir;
    server.stop().await;
}

// ---- archyctl against the same stand-in daemon. ----

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn archyctl(socket: &std::path::Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_archyctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        // Never start a real executor from these tests.
        .env("ARCHY_EXECUTOR", "/nonexistent/archy-executor")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test]
async fn archyctl_exec_prints_output_and_exits_with_the_command() {
    let server = start().await;
    let run = archyctl(&server.path, &["exec", "--", "echo", "ok"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "ok\n"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archyctl(&server.path, &["exec", "--", "exit", "3"])
            .await
            .code,
        Some(3)
    );
    let run = archyctl(&server.path, &["exec", "--timeout", "1", "--", "sleep"]).await;
    assert_eq!(run.code, Some(124));
    assert!(
        run.stderr.contains("command c1 is running"),
        "{}",
        run.stderr
    );
    assert_eq!(
        archyctl(&server.path, &["exec", "--", "stopped"])
            .await
            .code,
        Some(130)
    );
    let run = archyctl(&server.path, &["--json", "exec", "--", "exit", "4"]).await;
    assert_eq!(run.code, Some(4));
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["exit_code"], 4);
    server.stop().await;
}

#[tokio::test]
async fn archyctl_reports_errors_with_their_code() {
    let server = start().await;
    let run = archyctl(&server.path, &["exec", "--", "boom"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .starts_with("archyctl: refused by policy (code -32022)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(r#"{"rule":"boom"}"#), "{}", run.stderr);
    let run = archyctl(&server.path, &["status"]).await;
    assert_eq!(
        (run.code, run.stderr.trim()),
        (Some(2), "archyctl: Method not found (code -32601)")
    );
    let run = archyctl(&server.path, &["call", "execute", "{not json"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("params are not JSON"), "{}", run.stderr);
    let run = archyctl(&server.path, &["call", "execute", r#"{"session": "x"}"#]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("missing field `command` (code -32602)"),
        "{}",
        run.stderr
    );
    // Usage errors are clap's.
    assert_eq!(archyctl(&server.path, &["exec"]).await.code, Some(2));
    server.stop().await;
}

#[tokio::test]
async fn archyctl_info_and_raw_calls() {
    let server = start().await;
    let run = archyctl(&server.path, &["info"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.starts_with("version: test\n"), "{}", run.stdout);
    let run = archyctl(&server.path, &["--json", "info"]).await;
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["version"], "test");
    let run = archyctl(
        &server.path,
        &["call", "execute", r#"{"command": "exit 5"}"#],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["exit_code"], 5);
    server.stop().await;
}

#[tokio::test]
async fn archyctl_without_a_daemon_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = archyctl(&dir.path().join("archy.sock"), &["info"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("install archy-executor or set ARCHY_EXECUTOR"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_client_over_the_connection_limit_learns_why() {
    let server = start_with(ServeConfig {
        max_connections: 1,
        ..ServeConfig::default()
    })
    .await;
    let first = client::connect(&server.path).await.unwrap();
    first.daemon_info().await.unwrap();
    let run = archyctl(&server.path, &["info"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("too many connections (limit 1)"),
        "{}",
        run.stderr
    );
    drop(first);
    server.stop().await;
}
