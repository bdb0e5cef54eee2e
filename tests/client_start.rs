//! Lazy start: `connect_or_start` spawning the real `archy-executor` and waiting for its
//! `READY=1`; a real start-up failure (a bad config file) reported with its exit status and
//! log. Changes the environment, so this file holds a single test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use archy::api::ArchyClient;
use archy::client::{self, ClientError};

const EXECUTOR: &str = env!("CARGO_BIN_EXE_archy-executor");

/// Field `n` (0-based) after the `(comm)` of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(n).unwrap().to_string()
}

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

    // An executor that dies before READY=1 (here: a config file with an unknown key): its
    // exit status and log are reported.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[executor]\nno_such_key = 1\n").unwrap();
    unsafe {
        std::env::set_var("ARCHY_EXECUTOR", EXECUTOR);
        std::env::set_var("ARCHY_CONFIG", &cfg);
    }
    let err = client::connect_or_start(&socket).await.unwrap_err();
    let ClientError::ExecutorExited {
        status,
        log: Some(log),
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(status.code(), Some(78));
    assert_eq!(log, &runtime.join("archy/executor.log"));
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("no_such_key"),
    );
    assert!(err.to_string().contains("executor.log"), "{err}");
    unsafe { std::env::remove_var("ARCHY_CONFIG") };

    // On PATH (only looked up: a process named archy-executor is fair game for cleanups
    // of other test suites on a shared machine).
    unsafe { std::env::remove_var("ARCHY_EXECUTOR") };
    let on_path = script(&bin, "archy-executor", "#!/bin/sh\nexit 0\n");
    assert_eq!(client::find_executor().unwrap(), on_path);

    // The real executor, on a private tmux server.
    let tmux = format!("archy-test-start-{}", std::process::id());
    unsafe {
        std::env::set_var("ARCHY_EXECUTOR", EXECUTOR);
        std::env::set_var("ARCHY_TMUX_SOCKET", &tmux);
    }
    let client = client::connect_or_start(&socket).await.unwrap();
    let info = client.daemon_info().await.unwrap();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(!info.socket_activated);
    assert_eq!(info.tmux_socket, tmux);
    assert_eq!(
        stat_field(info.pid, 3),
        info.pid.to_string(),
        "the executor has a session of its own"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", info.pid)).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for var in ["JOURNAL_STREAM=", "LISTEN_FDS=", "INVOCATION_ID="] {
        assert!(
            !environ.split('\0').any(|kv| kv.starts_with(var)),
            "{var} leaked to the executor"
        );
    }
    // Running now: a second client connects without starting another.
    drop(client);
    let again = client::connect_or_start(&socket).await.unwrap();
    assert_eq!(again.daemon_info().await.unwrap().pid, info.pid);
    // The notify socket is gone; the log holds the executor's stderr.
    let mut left: Vec<_> = std::fs::read_dir(runtime.join("archy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [tmux.clone(), "executor.log".to_string()]);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(info.pid as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let _ = std::process::Command::new("tmux")
        .args(["-L", &tmux, "kill-server"])
        .status();
}
