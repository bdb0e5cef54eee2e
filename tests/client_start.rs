//! Lazy start: `connect_or_start` spawning an executor and waiting for its `READY=1`. A small
//! Python stand-in plays the executor (the real one is tested with the daemon). Changes the
//! environment, so this file holds a single test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use archy::api::ArchyClient;
use archy::client::{self, ClientError};

/// Binds `$ARCHY_SOCKET`, reports to `$NOTIFY_SOCKET`, and answers every request with a
/// `DaemonInfo` that smuggles out what it saw: its session id (in `sessions`) and any
/// systemd variable it inherited (in `tmux_socket`). It exits after 30 s without a client.
const FAKE_EXECUTOR: &str = r#"#!/usr/bin/python3
import json, os, socket, sys
path = os.environ["ARCHY_SOCKET"]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen()
srv.settimeout(30)  # exits by itself once the test is done with it
leaked = [k for k in ("JOURNAL_STREAM", "LISTEN_FDS", "INVOCATION_ID") if k in os.environ]
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.sendto(b"STATUS=starting\n", os.environ["NOTIFY_SOCKET"])
notify.sendto(b"STATUS=serving\nREADY=1\n", os.environ["NOTIFY_SOCKET"])
print("fake executor ready", file=sys.stderr, flush=True)
while True:
    try:
        conn, _ = srv.accept()
    except TimeoutError:
        break
    conn.settimeout(None)
    stream = conn.makefile("rwb")
    for line in stream:
        req = json.loads(line)
        info = {"version": "fake", "pid": os.getpid(), "uptime_ms": 0, "socket_activated": False,
                "socket": path, "tmux_socket": " ".join(leaked), "sessions": os.getsid(0),
                "commands_run": 0, "connections": 1}
        stream.write((json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": info}) + "\n").encode())
        stream.flush()
    stream.close()
    conn.close()
"#;

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn connect_or_start_spawns_the_executor_and_waits_for_ready() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!(
            "SKIPPED connect_or_start_spawns_the_executor_and_waits_for_ready: needs /usr/bin/python3"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let socket = runtime.join("archy.sock");
    // SAFETY: the only test in this file; no other thread reads the environment.
    unsafe {
        std::env::set_var("XDG_RUNTIME_DIR", &runtime);
        std::env::set_var("JOURNAL_STREAM", "1:2");
        std::env::set_var("PATH", &bin);
        std::env::set_var("ARCHY_EXECUTOR", dir.path().join("missing"));
    }

    // ARCHY_EXECUTOR names a missing file.
    let err = client::connect_or_start(&socket).await.unwrap_err();
    assert!(matches!(err, ClientError::ExecutorNotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("install archy-executor or set ARCHY_EXECUTOR"),
        "{err}"
    );

    // Nothing on PATH either.
    unsafe { std::env::remove_var("ARCHY_EXECUTOR") };
    let err = client::connect_or_start(&socket).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&bin.join("archy-executor").display().to_string()),
        "{err}"
    );

    // An executor that dies before READY=1: its status and log are reported.
    let failing = script(
        dir.path(),
        "failing",
        "#!/bin/sh\necho 'cannot start: broken config' >&2\nexit 3\n",
    );
    unsafe { std::env::set_var("ARCHY_EXECUTOR", &failing) };
    let err = client::connect_or_start(&socket).await.unwrap_err();
    let ClientError::ExecutorExited {
        status,
        log: Some(log),
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(log, &runtime.join("archy/executor.log"));
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("broken config")
    );
    assert!(err.to_string().contains("executor.log"), "{err}");

    // On PATH (only looked up: a process named archy-executor is fair game for cleanups
    // of other test suites on a shared machine).
    unsafe { std::env::remove_var("ARCHY_EXECUTOR") };
    let on_path = script(&bin, "archy-executor", "#!/bin/sh\nexit 0\n");
    assert_eq!(client::find_executor().unwrap(), on_path);

    // A working executor.
    let fake = script(dir.path(), "fake-executor", FAKE_EXECUTOR);
    unsafe { std::env::set_var("ARCHY_EXECUTOR", &fake) };
    let client = client::connect_or_start(&socket).await.unwrap();
    let info = client.daemon_info().await.unwrap();
    assert_eq!(info.version, "fake");
    assert_eq!(
        info.sessions, info.pid,
        "the executor has a session of its own"
    );
    assert_eq!(
        info.tmux_socket, "",
        "systemd variables leaked to the executor"
    );
    // Running now: a second client connects without starting another.
    drop(client);
    let again = client::connect_or_start(&socket).await.unwrap();
    assert_eq!(again.daemon_info().await.unwrap().pid, info.pid);
    // The notify socket is gone; the log holds the executor's stderr.
    let left: Vec<_> = std::fs::read_dir(runtime.join("archy"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["executor.log"]);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(info.pid as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
}
