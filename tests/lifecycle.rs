//! The daemon's life: readiness and stopping on a notify socket the test binds, SIGTERM,
//! socket activation through `systemd-socket-activate`, idle exit, the socket file (live,
//! stale, mode), other users, bad configuration, and restarts that find their commands.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

#[test]
fn ready_status_then_stopping_on_sigterm() {
    let mut d = Daemon::start();
    assert!(d.notify.has_seen("READY=1"));
    assert!(
        d.notify
            .seen()
            .iter()
            .any(|m| m.lines().any(|l| l.starts_with("STATUS=") && l.len() > 7)),
        "no STATUS= line: {:?}",
        d.notify.seen()
    );
    let mut c = d.client();
    c.exec("true");
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(STEP);
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(
        d.notify.wait_for("STOPPING=1", STEP, || false),
        "no STOPPING=1: {:?}",
        d.notify.seen()
    );
    // It bound the socket itself, so it removed it.
    assert!(!d.socket.exists(), "the socket file is left behind");
    // The tmux server and the session outlive the daemon.
    d.tmux(&["has-session", "-t", "=archy_session"]);
}

#[test]
fn sigterm_lets_an_in_flight_execute_finish() {
    let mut d = Daemon::start();
    let mut c = d.client();
    c.exec("true");
    // The execute and then a quick call, in one write: once the quick one is answered the
    // daemon has read the execute, and it is in flight.
    c.send_raw(
        concat!(
            r#"{"jsonrpc": "2.0", "id": "slow", "method": "execute", "params": {"command": "sleep 1; echo finished"}}"#,
            "\n",
            r#"{"jsonrpc": "2.0", "id": "quick", "method": "daemon_info"}"#,
            "\n"
        )
        .as_bytes(),
    );
    let quick = c.reply_to(&json!("quick"));
    assert!(quick["result"]["pid"].is_u64(), "{quick}");
    d.signal(Signal::SIGTERM);
    let slow = c.reply_to(&json!("slow"));
    assert_exited(&to_result(&slow).unwrap(), 0, "finished\n");
    assert_eq!(
        c.recv_line(),
        None,
        "the connection should close after the last reply"
    );
    let status = d.wait_exit(STEP);
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(d.notify.wait_for("STOPPING=1", STEP, || false));
}

/// `systemd-socket-activate -l <dir>/act.sock archy-executor ARGS…`, with the daemon's usual
/// environment passed through `-E`. Returns once it listens.
struct Activated {
    child: Child,
    log: Log,
    path: PathBuf,
}

impl Activated {
    fn start(d: &Daemon, args: &[&str]) -> Activated {
        let path = d.path().join("act.sock");
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l").arg(&path);
        let env = d.base_env();
        for (k, _) in &env {
            cmd.arg("-E").arg(k);
        }
        cmd.arg(BIN)
            .arg("--tmux-socket")
            .arg(&d.tmux)
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning systemd-socket-activate");
        let log = Log::default();
        log.collect(child.stdout.take().unwrap());
        log.collect(child.stderr.take().unwrap());
        assert!(
            log.wait_for("Listening on", STEP),
            "systemd-socket-activate did not listen: {}",
            log.text()
        );
        Activated { child, log, path }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- socket-activated daemon log ----\n{}", self.log.text());
        }
    }
}

#[test]
fn socket_activation() {
    if !have("systemd-socket-activate") {
        eprintln!("systemd-socket-activate is not installed: skipped");
        return;
    }
    let d = Daemon::builder().prepare();
    let mut act = Activated::start(&d, &[]);
    // The first connection starts the daemon; it waits in the backlog meanwhile.
    let mut c = Client::connect(&act.path);
    let info = c.ok("daemon_info", json!({}));
    assert_eq!(info["socket_activated"], true, "{info}");
    assert_eq!(info["pid"], act.child.id(), "{info}");
    assert!(
        d.notify.wait_for("READY=1", STEP, || false),
        "{:?}",
        d.notify.seen()
    );
    // The handed-over socket is served like any other, and children see none of systemd's
    // variables.
    let r = c.exec("env | grep -E '^(LISTEN_[A-Z]+|NOTIFY_SOCKET)=' ; echo end");
    assert_exited(&r, 0, "end\n");

    nix::sys::signal::kill(act.pid(), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut act.child, STEP).expect("the daemon did not exit");
    assert_eq!(status.code(), Some(0), "{}", act.log.text());
    assert!(d.notify.wait_for("STOPPING=1", STEP, || false));
    // systemd owns that socket file: it stays.
    assert!(
        act.path.exists(),
        "the daemon removed a socket it did not bind"
    );
}

#[test]
fn idle_exit_when_socket_activated() {
    if !have("systemd-socket-activate") {
        eprintln!("systemd-socket-activate is not installed: skipped");
        return;
    }
    let d = Daemon::builder().prepare();
    let mut act = Activated::start(&d, &["--idle-timeout", "1"]);
    let mut c = Client::connect(&act.path);
    assert_eq!(c.ok("daemon_info", json!({}))["socket_activated"], true);
    // Not while a client is connected.
    assert!(
        !d.notify
            .wait_for("STOPPING=1", Duration::from_millis(1_500), || false),
        "stopped with a client connected"
    );
    assert!(act.child.try_wait().unwrap().is_none());
    drop(c);
    let gone = Instant::now();
    let status = wait_exit(&mut act.child, Duration::from_secs(10)).expect("no idle exit");
    assert_eq!(status.code(), Some(0), "{}", act.log.text());
    assert!(
        gone.elapsed() >= Duration::from_millis(900),
        "exited {:?} after the last client left",
        gone.elapsed()
    );
    assert!(
        d.notify.wait_for("STOPPING=1", STEP, || false),
        "{:?}",
        d.notify.seen()
    );
    assert!(
        act.path.exists(),
        "the daemon removed a socket it did not bind"
    );
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_to_start() {
    let d = Daemon::start();
    let (status, err) = Daemon::builder().socket(&d.socket).start_failing();
    assert!(!status.success(), "{err}");
    assert!(err.contains("another archy-executor is serving"), "{err}");
    assert!(err.contains(d.socket.to_str().unwrap()), "{err}");
    assert!(err.contains(&format!("pid {}", d.pid())), "{err}");
    // The first one was not disturbed.
    let mut c = d.client();
    assert_eq!(c.ok("daemon_info", json!({}))["pid"], d.pid());
    assert!(d.socket.exists());
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let d = Daemon::start();
    let stale = d.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let d2 = Daemon::builder().socket(&stale).start();
    let mut c = Client::connect(&stale);
    assert_eq!(c.ok("daemon_info", json!({}))["pid"], d2.pid());

    // A file that is not a socket is never removed.
    let file = d.path().join("precious");
    std::fs::write(&file, "keep me").unwrap();
    let (status, err) = Daemon::builder().socket(&file).start_failing();
    assert!(!status.success());
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn socket_mode_is_0600_and_a_missing_directory_is_made_private() {
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    let nested = d.path().join("made/by/daemon/s.sock");
    let d2 = Daemon::builder().socket(&nested).start();
    let mode = std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(nested.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "directory mode {dir_mode:o}");
    drop(d2);
}

/// A Python client: connect, ask `daemon_info`, print what came back until the end.
const PY_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "daemon_info"}\n')
except OSError as e:
    print("send failed:", e)
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
        if data.endswith(b"\n"):
            break
except ConnectionResetError:
    pass
print("REPLY:" + repr(data))
"#;

fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn another_uid_is_refused() {
    if !is_root() || !have("setpriv") {
        eprintln!("needs root and setpriv: skipped");
        return;
    }
    let Some(py) = python() else {
        eprintln!("needs python3: skipped");
        return;
    };
    let d = Daemon::start();
    // For this test only: let uid 65534 reach the socket at all.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    // The same client as our own uid is answered: the probe works.
    let own = Command::new(py)
        .arg("-c")
        .arg(PY_CLIENT)
        .arg(&d.socket)
        .output()
        .unwrap();
    let own = String::from_utf8_lossy(&own.stdout);
    assert!(own.contains("REPLY:b'{"), "{own}");

    let other = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            py,
            "-c",
            PY_CLIENT,
        ])
        .arg(&d.socket)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&other.stdout);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(other.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("REPLY:b''"),
        "another uid got an answer: {stdout}{stderr}"
    );
    assert!(
        d.wait_log("refused a connection from another user"),
        "{}",
        d.log()
    );
    // Still serving its own user.
    let mut c = d.client();
    assert_eq!(c.ok("daemon_info", json!({}))["connections"], 1);
}

#[test]
fn bad_config_stops_start_up_with_ex_config() {
    let (status, err) = Daemon::builder()
        .config("[executor]\nidle_timeout = 5\nbogus = 1\n")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(
        err.contains("cfg/archy/config.toml"),
        "names the file: {err}"
    );
    assert!(err.contains("line 3"), "names the line: {err}");
    assert!(err.contains("bogus"), "names the key: {err}");

    let (status, err) = Daemon::builder()
        .config("[executor]\nidle_timeout = \"soon\"\n")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(
        err.contains("config.toml") && err.contains("line 2"),
        "{err}"
    );

    let (status, err) = Daemon::builder()
        .config("[nonsense]\nx = 1\n")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("nonsense"), "{err}");

    let (status, err) = Daemon::builder()
        .config("[executor]\nshell = \"tcsh\"\n")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("tcsh"), "{err}");

    // An explicit --config that does not exist.
    let (status, err) = Daemon::builder()
        .arg("--config")
        .arg("/nonexistent/archy.toml")
        .start_failing();
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(err.contains("/nonexistent/archy.toml"), "{err}");
}

#[test]
fn config_file_settings_apply() {
    let d = Daemon::builder()
        .config("[executor]\nmax_connections = 2\nhistory = 3\n\n[brain]\nmodel = \"anything\"\n")
        .start();
    let mut a = d.client();
    let mut b = d.client();
    a.ok("daemon_info", json!({}));
    b.ok("daemon_info", json!({}));
    // A third is told why, then closed.
    let mut third = d.client();
    let e = to_result(&third.recv()).unwrap_err();
    assert_eq!(e.code, TOO_MANY_CONNECTIONS, "{e:?}");
    assert_eq!(third.recv_line(), None);
    drop(third);
    let ids: Vec<String> = (0..6).map(|i| id(&a.exec(&format!("echo {i}")))).collect();
    // The oldest are forgotten (the newest few are all kept).
    let h = a.ok("history", json!({}));
    let cmds: Vec<&str> = h["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert!(cmds.ends_with(&["echo 3", "echo 4", "echo 5"]), "{cmds:?}");
    assert!(
        !cmds.contains(&"echo 0") && !cmds.contains(&"echo 1"),
        "{cmds:?}"
    );
    a.err_code("wait", json!({"id": ids[0]}), UNKNOWN_COMMAND);
    a.err_code("output", json!({"id": ids[1]}), UNKNOWN_COMMAND);
}

/// Wait until a command has really ended in the pane while no daemon watches: its output is
/// shown and the shell's prompt came back. (A bounded poll on tmux, outside the daemon.)
fn wait_for_prompt_after(d: &Daemon, session: &str, text: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let pane = d.tmux(&["capture-pane", "-p", "-t", &format!("={session}:")]);
        let lines: Vec<&str> = pane.lines().filter(|l| !l.trim().is_empty()).collect();
        if let Some(at) = lines.iter().rposition(|l| *l == text) {
            let after = &lines[at + 1..];
            if after
                .last()
                .is_some_and(|l| l.trim_end().ends_with(['#', '$']))
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no prompt after {text:?}:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restarted_daemon_finds_its_commands() {
    let mut d = Daemon::start();
    let mut c = d.client();
    let dir = d.path().join("kept");
    std::fs::create_dir(&dir).unwrap();
    c.exec(&format!("cd '{}'", dir.display()));
    let earlier = c.exec("echo earlier");
    // More output than a record holds: kept in a file of its own.
    let big = c.exec("seq 1 30000");
    // Still running when the daemon dies.
    let running = c.exec_with("sleep 2; echo done", json!({"wait": false}));
    // Ends while no daemon runs.
    let ended = c.exec_with(
        "sleep 0.2; echo gone",
        json!({"wait": false, "session": "s2"}),
    );
    drop(c);
    d.kill9();
    wait_for_prompt_after(&d, "s2", "gone");

    d.restart();
    let mut c = d.client();
    let r = c.wait(&id(&ended));
    assert_exited(&r, 0, "gone\n");
    let r = c.wait(&id(&running));
    assert_exited(&r, 0, "done\n");
    let p = c.ok("output", json!({"id": id(&running)}));
    assert_eq!(p["data"], "done\n");
    assert_eq!(p["complete"], true);
    // Earlier results, the sessions and their shells' state survived.
    assert_exited(&c.wait(&id(&earlier)), 0, "earlier\n");
    let all: String = (1..=30000).map(|i| format!("{i}\n")).collect();
    let p = c.ok("output", json!({"id": id(&big), "limit": all.len() + 10}));
    assert_eq!(p["data"].as_str().unwrap().len(), all.len());
    assert!(
        p["data"] == all.as_str(),
        "the big output came back changed"
    );
    let h = c.ok("history", json!({"session": "archy_session"}));
    assert!(h.to_string().contains(&id(&earlier)), "{h}");
    let names: Vec<Value> = c.ok("list_sessions", json!({}))["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("archy_session"), json!("s2")]);
    assert_exited(&c.exec("pwd"), 0, &format!("{}\n", dir.display()));
    assert_exited(&c.exec_with("echo s2", json!({"session": "s2"})), 0, "s2\n");
}

#[test]
fn a_restarted_daemon_follows_a_command_still_running() {
    let mut d = Daemon::start();
    let mut c = d.client();
    c.exec("true");
    let r = c.exec_with("echo before; sleep 1; echo after", json!({"wait": false}));
    // Crash once the command has printed its first line.
    wait_until_printed(&mut c, &id(&r), "before\n");
    drop(c);
    d.kill9();
    // Touch the tmux server from outside before the new daemon attaches: an attach right
    // after the crash can crash tmux 3.3a itself (see
    // `an_immediate_restart_after_a_crash_keeps_the_tmux_server`); this test is about
    // following the command.
    d.tmux(&["list-sessions"]);
    d.restart();
    let mut c = d.client();
    let st = c.ok("status", json!({}));
    assert_eq!(st["command_id"], r["id"], "{st}");
    let done = c.wait(&id(&r));
    assert_exited(&done, 0, "before\nafter\n");
    // The session is free again.
    assert_exited(&c.exec("echo next"), 0, "next\n");
}

#[test]
fn an_immediate_restart_after_a_crash_keeps_the_tmux_server() {
    // As under systemd with Restart=on-failure, or a client activating the socket again at
    // once: the new daemon attaches to the tmux server moments after the old one died.
    let mut d = Daemon::start();
    let mut c = d.client();
    c.exec("echo hi");
    drop(c);
    for round in 0..6 {
        let mut c = d.client();
        let r = c.exec_with("echo started; sleep 1; echo done", json!({"wait": false}));
        wait_until_printed(&mut c, &id(&r), "started\n");
        drop(c);
        d.kill9();
        d.restart();
        let mut c = d.client();
        let got = c.call("wait", json!({"id": id(&r), "timeout_ms": 10_000}));
        let got = got.unwrap_or_else(|e| {
            panic!(
                "round {round}: the restarted daemon lost tmux: {e:?}\n{}",
                d.log()
            )
        });
        assert_exited(&got, 0, "started\ndone\n");
    }
}

/// Return once command `id` has printed `text` (its whole output so far): subscribe, then
/// look at what it printed already; anything printed after that comes as a notification.
fn wait_until_printed(c: &mut Client, id: &str, text: &str) {
    c.ok("subscribe_output", json!({"id": id}));
    let mut printed = c.ok("output", json!({"id": id}))["data"]
        .as_str()
        .unwrap()
        .to_string();
    while printed.len() < text.len() {
        let n = c.notification("output_event");
        printed.push_str(n["params"]["result"]["data"].as_str().unwrap_or(""));
    }
    assert_eq!(printed, text);
}

#[test]
fn a_command_typed_just_before_a_crash_is_not_lost() {
    // The daemon dies after typing a command but before the shell printed its begin marker
    // (the shell is still reading its rc file). The command runs anyway: the restarted
    // daemon must not report it interrupted while it runs, nor type into it.
    let mut d = Daemon::builder()
        .file("home/.bashrc", "sleep 0.5\n")
        .start();
    let mut c = d.client();
    let r = c.exec_with("sleep 0.5; echo done", json!({"wait": false}));
    drop(c);
    d.kill9();
    // See `a_restarted_daemon_follows_a_command_still_running` for this touch.
    d.tmux(&["list-sessions"]);
    d.restart();
    let mut c = d.client();
    let got = c.wait(&id(&r));
    assert_exited(&got, 0, "done\n");
    assert_exited(&c.exec("echo next"), 0, "next\n");
}

#[test]
fn restart_adopts_sessions_under_a_user_tmux_conf() {
    // Users renumber windows and panes; a restarted daemon must still find its sessions.
    let mut d = Daemon::builder()
        .file(
            "home/.tmux.conf",
            "set -g base-index 1\nsetw -g pane-base-index 1\n",
        )
        .start();
    let mut c = d.client();
    assert_exited(&c.exec("cd / && echo in"), 0, "in\n");
    drop(c);
    d.kill9();
    d.restart();
    let mut c = d.client();
    let r = c.call("execute", json!({"command": "pwd"}));
    let r = r.unwrap_or_else(|e| panic!("session not adopted: {e:?}"));
    assert_exited(&r, 0, "/\n");
}

#[test]
fn log_to_a_pipe_has_no_colour_codes() {
    // stderr is a pipe here, as under a supervisor or with `2>file`: plain text only.
    let d = Daemon::start();
    let mut c = d.client();
    c.ok("daemon_info", json!({}));
    assert!(d.wait_log("request"), "{}", d.log());
    let raw = d.raw_log();
    assert!(
        !raw.contains('\u{1b}'),
        "escape codes in a log that is not a terminal:\n{raw:?}"
    );
}

#[test]
fn an_undrained_notify_socket_does_not_stall_commands() {
    // A parent that set NOTIFY_SOCKET, read READY=1 and then stopped reading (its socket
    // still open): the daemon's later STATUS= messages must not block its requests.
    let stuck_dir = tempfile::tempdir().unwrap();
    let stuck_path = stuck_dir.path().join("stuck.sock");
    let stuck = std::os::unix::net::UnixDatagram::bind(&stuck_path).unwrap();
    stuck.set_read_timeout(Some(STEP)).unwrap();
    let d = Daemon::builder()
        .env("NOTIFY_SOCKET", stuck_path.to_str().unwrap())
        .spawn();
    let mut buf = [0u8; 4096];
    loop {
        let n = stuck.recv(&mut buf).expect("no READY=1");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break;
        }
    }
    let mut c = d.client();
    c.set_timeout(Duration::from_secs(10));
    for i in 0..40 {
        assert_exited(&c.exec(&format!("echo {i}")), 0, &format!("{i}\n"));
    }
}
