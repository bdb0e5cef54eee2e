//! Harness for the integration tests: the real `archy-executor` binary on a real Unix socket,
//! each daemon with its own temporary directory (socket, `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME`,
//! `HOME`) and its own tmux server (`tmux -L archy-test-RANDOM`), and a small line-JSON client.
//!
//! Readiness is the daemon's own `READY=1` on a notify socket the harness binds; nothing here
//! sleeps to wait for state. Dropping a [`Daemon`] kills it and its tmux server.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_archy-executor");

/// JSON-RPC 2.0 codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// Archy's application codes, as the README documents them.
pub const TOO_MANY_SUBSCRIPTIONS: i64 = -32006;
pub const SESSION_NOT_FOUND: i64 = -32020;
pub const TMUX_FAILED: i64 = -32021;
pub const REFUSED_BY_POLICY: i64 = -32022;
pub const UNKNOWN_COMMAND: i64 = -32023;
pub const SESSION_BUSY: i64 = -32024;
pub const NO_TERMINAL: i64 = -32025;
pub const TERMINAL_FAILED: i64 = -32026;
pub const IO_ERROR: i64 = -32027;
pub const TOO_MANY_CONNECTIONS: i64 = -32028;

/// How long any single blocking step may take before the test fails instead of hanging.
/// Longer than any timeout the tests ask the daemon for, so a late answer still arrives.
pub const STEP: Duration = Duration::from_secs(40);
/// `timeout_ms` of `exec` and `wait`: a command still running then comes back as `running`
/// (and the test's assertion shows it) well before the client gives up.
pub const COMMAND_TIMEOUT_MS: u64 = 20_000;
/// How long a daemon may take to report `READY=1`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// 16 random hex digits from the kernel.
pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("reading /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a program is on `PATH`.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            d.join(program)
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Everything a process wrote to stderr (and stdout), collected by a thread, so a chatty
/// process never blocks on a full pipe and tests can wait for a line to appear.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<LogState>, Condvar)>);

#[derive(Default)]
struct LogState {
    text: String,
    /// Streams still being copied.
    open: usize,
}

impl Log {
    /// Start copying `r` into the log.
    pub fn collect(&self, r: impl Read + Send + 'static) {
        self.0.0.lock().unwrap().open += 1;
        let log = self.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line).unwrap_or(0);
                let (state, cv) = &*log.0;
                let mut st = state.lock().unwrap();
                st.text.push_str(&String::from_utf8_lossy(&line));
                if n == 0 {
                    st.open -= 1;
                }
                cv.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.0.lock().unwrap().text.clone()
    }

    /// Wait until the log contains `needle`; false after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| st.text.contains(needle))
    }

    /// Wait until the log, without colour codes, contains `needle`; false after `timeout`.
    pub fn wait_for_plain(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| strip_ansi(&st.text).contains(needle))
    }

    /// Wait until every stream reached its end (the process and its children closed them).
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| st.open == 0)
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&LogState) -> bool) -> bool {
        let (state, cv) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut st = state.lock().unwrap();
        while !done(&st) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
        true
    }
}

/// Wait for a child to exit, up to `timeout` (a bounded poll: a child's exit has no event a
/// test can block on with a deadline).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A notify socket (`NOTIFY_SOCKET`) bound by the test: what the daemon tells systemd.
///
/// A thread drains it all the time, as systemd does: a datagram socket nobody reads fills
/// after a few messages, and then the daemon's next notification blocks.
pub struct Notify {
    pub path: PathBuf,
    seen: Arc<(Mutex<Vec<String>>, Condvar)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Notify {
    pub fn bind(path: PathBuf) -> Notify {
        let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let seen: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                            seen.0.lock().unwrap().push(msg);
                            seen.1.notify_all();
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) => panic!("notify socket: {e}"),
                    }
                }
            });
        }
        Notify { path, seen, stop }
    }

    /// Every message received so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.0.lock().unwrap().clone()
    }

    /// Forget the messages received so far.
    pub fn clear(&self) {
        self.seen.0.lock().unwrap().clear();
    }

    /// Wait for a message with the line `line` (e.g. `READY=1`), received already or within
    /// `timeout`. Gives up early (false) when `gave_up` says so, checked every 100 ms.
    pub fn wait_for(
        &self,
        line: &str,
        timeout: Duration,
        mut gave_up: impl FnMut() -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let has = |msgs: &[String]| msgs.iter().any(|m| m.lines().any(|l| l == line));
        let mut msgs = self.seen.0.lock().unwrap();
        loop {
            if has(&msgs) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let slice = left.min(Duration::from_millis(100));
            msgs = self.seen.1.wait_timeout(msgs, slice).unwrap().0;
            if !has(&msgs) && gave_up() {
                // What the process sent before it ended is read by now, or within moments.
                drop(msgs);
                std::thread::sleep(Duration::from_millis(50));
                return has(&self.seen());
            }
        }
    }

    pub fn has_seen(&self, line: &str) -> bool {
        self.seen().iter().any(|m| m.lines().any(|l| l == line))
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How to start a daemon.
#[derive(Clone, Default)]
pub struct Builder {
    socket: Option<PathBuf>,
    config: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
}

impl Builder {
    /// Serve this socket path instead of `<dir>/s.sock`.
    pub fn socket(mut self, path: &Path) -> Self {
        self.socket = Some(path.to_owned());
        self
    }

    /// Contents of `$XDG_CONFIG_HOME/archy/config.toml`.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// An extra command-line argument.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// A file to create before start, relative to the test directory (e.g. `home/.bashrc`).
    pub fn file(mut self, rel: &str, contents: &str) -> Self {
        self.files.push((rel.to_string(), contents.to_string()));
        self
    }

    /// The directory, notify socket and settings, without starting a daemon (for tests that
    /// start it their own way).
    pub fn prepare(self) -> Daemon {
        Daemon::prepare(self)
    }

    /// Start the daemon and wait for its `READY=1`.
    pub fn start(self) -> Daemon {
        let mut d = Daemon::prepare(self);
        d.spawn_ready();
        d
    }

    /// Start the daemon without waiting for `READY=1` (for tests that watch another notify
    /// socket).
    pub fn spawn(self) -> Daemon {
        let mut d = Daemon::prepare(self);
        let proc = d.spawn();
        d.proc = Some(proc);
        d
    }

    /// Start a daemon expected to refuse to start; returns its exit status and stderr.
    pub fn start_failing(self) -> (ExitStatus, String) {
        let mut d = Daemon::prepare(self);
        let (mut child, log) = d.spawn();
        let status = wait_exit(&mut child, STEP).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "the daemon should have refused to start; log:\n{}",
                log.text()
            )
        });
        // The pipes close with the process: then the log holds everything it wrote.
        log.wait_closed(STEP);
        (status, log.text())
    }
}

/// A running daemon with its own directory and tmux server.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    /// The daemon's socket: `<dir>/s.sock`.
    pub socket: PathBuf,
    /// Its tmux server: `tmux -L <tmux>`.
    pub tmux: String,
    pub notify: Notify,
    opts: Builder,
    proc: Option<(Child, Log)>,
    /// The log of the last daemon that exited.
    last_log: String,
}

impl Daemon {
    /// A daemon with default settings, ready to serve.
    pub fn start() -> Daemon {
        Daemon::builder().start()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    fn prepare(opts: Builder) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("archy-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("cfg/archy")).unwrap();
        if let Some(toml) = &opts.config {
            std::fs::write(dir.path().join("cfg/archy/config.toml"), toml).unwrap();
        }
        for (rel, contents) in &opts.files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        let notify = Notify::bind(dir.path().join("notify.sock"));
        Daemon {
            socket: opts
                .socket
                .clone()
                .unwrap_or_else(|| dir.path().join("s.sock")),
            tmux: format!("archy-test-{}", random_hex()),
            notify,
            dir,
            opts,
            proc: None,
            last_log: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment every daemon of the tests gets: nothing of the caller's world but
    /// `PATH` (so a user's `ARCHY_*`, `TMUX`, `DISPLAY` or `JOURNAL_STREAM` cannot leak in).
    pub fn base_env(&self) -> Vec<(String, String)> {
        let d = self.dir.path();
        let mut env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), d.join("home").display().to_string()),
            ("SHELL".into(), "/bin/bash".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("XDG_RUNTIME_DIR".into(), d.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                d.join("cfg").display().to_string(),
            ),
            (
                "NOTIFY_SOCKET".into(),
                self.notify.path.display().to_string(),
            ),
        ];
        env.extend(self.opts.env.iter().cloned());
        env
    }

    /// The daemon's command line without the program itself.
    pub fn base_args(&self) -> Vec<String> {
        let mut args = vec![
            "--socket".to_string(),
            self.socket.display().to_string(),
            "--tmux-socket".to_string(),
            self.tmux.clone(),
        ];
        args.extend(self.opts.args.iter().cloned());
        args
    }

    fn spawn(&mut self) -> (Child, Log) {
        let mut cmd = Command::new(BIN);
        cmd.args(self.base_args())
            .env_clear()
            .envs(self.base_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C meant for `cargo test` is not the daemon's.
            .process_group(0);
        let mut child = cmd.spawn().expect("spawning archy-executor");
        let log = Log::default();
        log.collect(child.stdout.take().unwrap());
        log.collect(child.stderr.take().unwrap());
        (child, log)
    }

    fn spawn_ready(&mut self) {
        let (mut child, log) = self.spawn();
        let ready = self.notify.wait_for("READY=1", READY_TIMEOUT, || {
            child.try_wait().ok().flatten().is_some()
        });
        if !ready {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!(
                "archy-executor never sent READY=1 ({status}); log:\n{}",
                log.text()
            );
        }
        self.proc = Some((child, log));
    }

    /// Start a new daemon with the same directory, socket and tmux server (after `kill9` or
    /// an exit).
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "restart: the daemon is still running");
        self.notify.clear();
        self.spawn_ready();
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("daemon not running").0.id()
    }

    /// What the daemon logged so far (stderr and stdout), without terminal colour codes.
    pub fn log(&self) -> String {
        strip_ansi(&self.raw_log())
    }

    /// What the daemon logged, byte for byte.
    pub fn raw_log(&self) -> String {
        match &self.proc {
            Some((_, log)) => log.text(),
            None => self.last_log.clone(),
        }
    }

    /// Wait until the daemon logged `needle` (colour codes aside); false after [`STEP`].
    pub fn wait_log(&self, needle: &str) -> bool {
        self.log_handle().wait_for_plain(needle, STEP)
    }

    /// SIGTERM, then wait for the exit; afterwards `log()` holds everything it logged.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(STEP)
    }

    pub fn log_handle(&self) -> Log {
        self.proc.as_ref().expect("daemon not running").1.clone()
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// SIGKILL, as in a crash. The tmux server and its commands live on.
    pub fn kill9(&mut self) {
        let (mut child, log) = self.proc.take().expect("daemon not running");
        child.kill().unwrap();
        child.wait().unwrap();
        self.last_log = log.text();
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Wait for the daemon to exit on its own (after a signal, an idle timeout…).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let (child, log) = self.proc.as_mut().expect("daemon not running");
        let status = wait_exit(child, timeout).unwrap_or_else(|| {
            panic!(
                "the daemon did not exit within {timeout:?}; log:\n{}",
                log.text()
            )
        });
        let (_, log) = self.proc.take().unwrap();
        // Stdout and stderr may be held open a moment longer by nothing; read them to the end.
        log.wait_closed(Duration::from_secs(5));
        self.last_log = log.text();
        status
    }

    /// `tmux -L <ours> ARGS…`, output as text; panics when tmux fails.
    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.tmux)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some((mut child, log)) = self.proc.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "---- archy-executor log ({}) ----\n{}",
                    self.tmux,
                    log.text()
                );
            }
        }
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.tmux)
            .arg("kill-server")
            .env_remove("TMUX")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `text` without CSI sequences (`ESC [ … final`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for f in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&f) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A JSON-RPC error object.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Value,
}

/// A line-JSON client on a std `UnixStream`, with a read timeout so a missing reply fails
/// the test instead of hanging it.
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    /// Messages read while looking for a reply (notifications, other replies).
    pending: VecDeque<Value>,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", path.display()));
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: UnixStream) -> Client {
        stream.set_read_timeout(Some(STEP)).unwrap();
        stream.set_write_timeout(Some(STEP)).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            next_id: 1,
            pending: VecDeque::new(),
        }
    }

    pub fn set_timeout(&self, t: Duration) {
        self.writer.set_read_timeout(Some(t)).unwrap();
    }

    /// Call a method; its result or its error.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let reply = self.reply_to(&json!(id));
        to_result(&reply)
    }

    /// Call a method that must succeed.
    #[track_caller]
    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        match self.call(method, params.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{method} {params} failed: {e:?}"),
        }
    }

    /// Call a method that must fail.
    #[track_caller]
    pub fn err(&mut self, method: &str, params: Value) -> RpcError {
        match self.call(method, params.clone()) {
            Ok(v) => panic!("{method} {params} should have failed, got {v}"),
            Err(e) => e,
        }
    }

    /// Call a method that must fail with `code`.
    #[track_caller]
    pub fn err_code(&mut self, method: &str, params: Value, code: i64) -> RpcError {
        let e = self.err(method, params.clone());
        assert_eq!(e.code, code, "{method} {params}: {e:?}");
        e
    }

    /// `execute` that must succeed; waits up to [`COMMAND_TIMEOUT_MS`] for the end.
    #[track_caller]
    pub fn exec(&mut self, command: &str) -> Value {
        self.exec_with(command, json!({}))
    }

    /// `execute` with extra params (`timeout_ms` defaults to [`COMMAND_TIMEOUT_MS`]).
    #[track_caller]
    pub fn exec_with(&mut self, command: &str, mut params: Value) -> Value {
        params["command"] = json!(command);
        if params.get("timeout_ms").is_none() {
            params["timeout_ms"] = json!(COMMAND_TIMEOUT_MS);
        }
        self.ok("execute", params)
    }

    /// `wait` for a command until it leaves `running` (or [`COMMAND_TIMEOUT_MS`] pass).
    #[track_caller]
    pub fn wait(&mut self, id: &str) -> Value {
        self.ok("wait", json!({"id": id, "timeout_ms": COMMAND_TIMEOUT_MS}))
    }

    /// Send one JSON value as a line.
    pub fn send(&mut self, v: &Value) {
        self.send_line(&v.to_string());
    }

    /// Send `s` and a newline.
    pub fn send_line(&mut self, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(b'\n');
        self.send_raw(&b);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing to the daemon");
    }

    /// Close our writing side: the daemon answers what it has and then closes.
    pub fn shutdown_write(&self) {
        self.writer.shutdown(std::net::Shutdown::Write).unwrap();
    }

    /// The next line, without its newline; `None` at end of stream. Panics on timeout.
    pub fn recv_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no message from the daemon within the read timeout")
            }
            // A reset connection is an end of stream too.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading from the daemon: {e}"),
        }
    }

    /// The next message (queued ones first); panics at end of stream.
    pub fn recv(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        self.recv_fresh().expect("the daemon closed the connection")
    }

    fn recv_fresh(&mut self) -> Option<Value> {
        let line = self.recv_line()?;
        Some(
            serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("the daemon sent a line that is not JSON ({e}): {line:?}")
            }),
        )
    }

    /// The reply with `id`; anything else read meanwhile is kept for `recv`.
    pub fn reply_to(&mut self, id: &Value) -> Value {
        if let Some(i) = self.pending.iter().position(|m| m.get("id") == Some(id)) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let m = self.recv_fresh().expect("the daemon closed the connection");
            if m.get("id") == Some(id) && m.get("method").is_none() {
                return m;
            }
            self.pending.push_back(m);
        }
    }

    /// The next notification named `method` (other messages are kept for `recv`).
    pub fn notification(&mut self, method: &str) -> Value {
        if let Some(i) = self
            .pending
            .iter()
            .position(|m| m.get("method").and_then(Value::as_str) == Some(method))
        {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let m = self.recv_fresh().expect("the daemon closed the connection");
            if m.get("method").and_then(Value::as_str) == Some(method) {
                return m;
            }
            self.pending.push_back(m);
        }
    }

    /// Everything until the daemon closes the connection (as lines).
    pub fn lines_to_end(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self.pending.drain(..).map(|v| v.to_string()).collect();
        while let Some(l) = self.recv_line() {
            out.push(l);
        }
        out
    }
}

/// A response's result, or its error.
pub fn to_result(reply: &Value) -> Result<Value, RpcError> {
    assert_eq!(
        reply["jsonrpc"], "2.0",
        "not a JSON-RPC 2.0 response: {reply}"
    );
    if let Some(e) = reply.get("error") {
        assert!(
            reply.get("result").is_none(),
            "a response with both result and error: {reply}"
        );
        return Err(RpcError {
            code: e["code"].as_i64().expect("error code"),
            message: e["message"].as_str().expect("error message").to_string(),
            data: e.get("data").cloned().unwrap_or(Value::Null),
        });
    }
    Ok(reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("a response with neither result nor error: {reply}")))
}

/// Shorthands for `CommandResult` fields.
pub fn state(r: &Value) -> &str {
    r["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no state in {r}"))
}

pub fn output(r: &Value) -> &str {
    r["output"]
        .as_str()
        .unwrap_or_else(|| panic!("no output in {r}"))
}

pub fn id(r: &Value) -> String {
    r["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {r}"))
        .to_string()
}

/// Assert a command exited with `code` and printed exactly `out`.
#[track_caller]
pub fn assert_exited(r: &Value, code: i64, out: &str) {
    assert_eq!(state(r), "exited", "{r}");
    assert_eq!(r["exit_code"], json!(code), "{r}");
    assert_eq!(output(r), out, "{r}");
    assert_eq!(r["output_bytes"], json!(out.len()), "{r}");
    assert_eq!(r["truncated"], json!(false), "{r}");
}
