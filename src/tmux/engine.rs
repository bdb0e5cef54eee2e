//! The tmux engine: Archy's own tmux server, its sessions, and the commands run in them.
//!
//! One control-mode client is attached to a hidden hub session; each Archy session's window is
//! also linked into the hub so the one client sees every pane's `%output`. Every pane is also
//! piped to a log file (`pipe-pane`), so a restarted daemon can read the results of commands that
//! ended while it was away.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::command::{Cmd, Record};
use super::control::{ControlClient, Event, quote};
use super::inputwait;
use super::markers::{Piece, Scanner, find_in_log};
use super::shell::{Shell, command_file, hook_dir};
use super::store::OutputStore;
use crate::api::{
    Capture, CommandResult, CommandState, EnvMap, Interrupted, SessionInfo, SessionState, Status,
};
use crate::error::{Error, Result};

/// The hidden session the control client attaches to.
pub const HUB: &str = "_archy_hub";
/// What the shell hooks print once loaded.
const READY_MARKER: &[u8] = b"\x1b]777;archy;ready\x07";
/// How long a new session's shell may take to load its start-up files and the hook.
const SHELL_START: Duration = Duration::from_secs(15);
/// Output kept in a command's record on disk (the whole output is in its output file).
const RECORD_TAIL: u64 = 64 * 1024;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `tmux -L` socket name.
    pub tmux_socket: String,
    /// Private state directory (command files, pane logs, records), e.g.
    /// `$XDG_RUNTIME_DIR/archy/<tmux_socket>`.
    pub state_dir: PathBuf,
    /// Preferred shell (name or path); default `$SHELL`.
    pub shell: Option<String>,
    /// Finished commands remembered.
    pub history_limit: usize,
    /// Cleaned output kept in memory per command before spilling to a file.
    pub output_memory_cap: usize,
    /// Quiet time after which a running command is checked for waiting on input.
    pub input_quiet: Duration,
    /// Start tmux (and windows) in their own systemd scope, out of the service's cgroup.
    pub use_scope: bool,
    /// Environment variables the tmux server and windows must not inherit.
    pub scrub_env: Vec<&'static str>,
}

/// A request to run a command.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub command: String,
    pub session: String,
    pub queue: bool,
    pub cwd: Option<String>,
    pub env: EnvMap,
}

/// Cheap-to-clone handle to the engine.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

struct Inner {
    cfg: EngineConfig,
    shell: Shell,
    /// Held across start-up of the control client (an `.await`), hence tokio's mutex.
    control: tokio::sync::Mutex<Option<Arc<ControlClient>>>,
    /// Held while a session is being created (across `.await`s).
    creating: tokio::sync::Mutex<()>,
    /// Never held across an `.await`.
    state: Mutex<State>,
    commands_run: AtomicU64,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    commands: HashMap<String, Arc<Cmd>>,
    /// Finished or running command ids, oldest first.
    order: VecDeque<String>,
}

struct Session {
    pane: String,
    window: String,
    pane_pid: u32,
    tty: String,
    shell: Shell,
    scanner: Scanner,
    running: Option<Arc<Cmd>>,
    queue: VecDeque<(Arc<Cmd>, ExecRequest)>,
    /// The shell has loaded the hook (its ready marker arrived).
    ready: watch::Sender<bool>,
    /// Tail of output seen while not ready, for a marker split across chunks.
    ready_carry: Vec<u8>,
}

impl Session {
    /// The running command ended: hand the session to the next queued command, reserved at
    /// once so that no new `execute` types its line in between.
    fn advance(&mut self) -> Option<(Arc<Cmd>, ExecRequest)> {
        self.running = None;
        let (next, req) = self.queue.pop_front()?;
        self.running = Some(next.clone());
        self.scanner.expect(&next.nonce);
        Some((next, req))
    }

    /// A session as tmux describes it: `#{pane_id}`, `#{window_id}`, `#{pane_pid}`, `#{pane_tty}`.
    fn new(pane: &str, window: &str, pane_pid: &str, tty: &str, shell: Shell) -> Session {
        Session {
            pane: pane.to_string(),
            window: window.to_string(),
            pane_pid: pane_pid.parse().unwrap_or(0),
            tty: tty.to_string(),
            shell,
            scanner: Scanner::default(),
            running: None,
            queue: VecDeque::new(),
            // Adopted sessions are ready; a new one is marked not ready until its marker.
            ready: watch::channel(true).0,
            ready_carry: Vec::new(),
        }
    }

    /// Look for the hook's ready marker in output of a session still starting.
    fn watch_ready(&mut self, data: &[u8]) {
        if *self.ready.borrow() {
            return;
        }
        self.ready_carry.extend_from_slice(data);
        if self
            .ready_carry
            .windows(READY_MARKER.len())
            .any(|w| w == READY_MARKER)
        {
            self.ready_carry = Vec::new();
            self.ready.send_replace(true);
        } else {
            let keep = self.ready_carry.len().saturating_sub(READY_MARKER.len());
            self.ready_carry.drain(..keep);
        }
    }
}

impl Engine {
    /// Set up the engine and load the records of earlier runs. Does not start tmux.
    pub fn new(cfg: EngineConfig) -> Engine {
        let shell = Shell::pick(cfg.shell.as_deref());
        let engine = Engine(Arc::new(Inner {
            shell,
            control: tokio::sync::Mutex::new(None),
            creating: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            commands_run: AtomicU64::new(0),
            cfg,
        }));
        engine.load_records();
        engine
    }

    pub fn config(&self) -> &EngineConfig {
        &self.0.cfg
    }

    fn cmds_dir(&self) -> PathBuf {
        self.0.cfg.state_dir.join("cmds")
    }
    fn out_path(&self, id: &str) -> PathBuf {
        self.0.cfg.state_dir.join("out").join(format!("{id}.txt"))
    }
    fn log_path(&self, session: &str) -> PathBuf {
        self.0
            .cfg
            .state_dir
            .join("panes")
            .join(format!("{session}.log"))
    }

    /// Commands started since the daemon started.
    pub fn commands_run(&self) -> u64 {
        self.0.commands_run.load(Ordering::Relaxed)
    }

    /// Sessions known to the engine.
    pub fn session_count(&self) -> usize {
        self.0.state.lock().unwrap().sessions.len()
    }

    fn load_records(&self) {
        let Ok(dir) = std::fs::read_dir(self.cmds_dir()) else {
            return;
        };
        let mut recs: Vec<Record> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        recs.sort_by_key(|r| r.started_ms);
        let mut st = self.0.state.lock().unwrap();
        for rec in recs {
            let path = self.out_path(&rec.result.id);
            let store = OutputStore::open_existing(self.0.cfg.output_memory_cap, path)
                .unwrap_or_else(|| {
                    let mut s = OutputStore::new(
                        self.0.cfg.output_memory_cap,
                        self.out_path(&rec.result.id),
                    );
                    s.push(&rec.result.output);
                    s
                });
            let cmd = Arc::new(Cmd::from_record(&rec, store));
            st.order.push_back(cmd.id.clone());
            st.commands.insert(cmd.id.clone(), cmd);
        }
    }

    /// The control client, starting the tmux server and recovering sessions on first use.
    async fn control(&self) -> Result<Arc<ControlClient>> {
        let mut guard = self.0.control.lock().await;
        if let Some(c) = guard.as_ref()
            && c.alive()
        {
            return Ok(c.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let prefix = if self.0.cfg.use_scope {
            scope_prefix(&format!("archy-tmux-{}", self.0.cfg.tmux_socket))
        } else {
            Vec::new()
        };
        let start = || {
            ControlClient::start(
                &self.0.cfg.tmux_socket,
                HUB,
                &prefix,
                &self.0.cfg.scrub_env,
                tx.clone(),
            )
        };
        // Right after a kill-server the old server may still hold the socket: try once more.
        let client = match start().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "tmux control client failed to start; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                start().await?
            }
        };
        let client = Arc::new(client);
        tracing::info!(tmux_socket = %self.0.cfg.tmux_socket, "tmux control client attached");
        // Keep the server alive when the last real session closes, and quiet.
        let _ = client.cmd("set-option -g exit-empty off").await;
        let _ = client.cmd("set-option -g history-limit 10000").await;
        // Renaming windows after their process makes tmux read /proc on every output.
        let _ = client.cmd("set-option -wg automatic-rename off").await;
        *guard = Some(client.clone());
        drop(guard);
        let engine = self.clone();
        tokio::spawn(async move { engine.event_loop(rx).await });
        self.recover(&client).await;
        Ok(client)
    }

    async fn event_loop(self, mut rx: mpsc::UnboundedReceiver<Event>) {
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Output { pane, data } => self.on_output(&pane, &data),
                Event::WindowClosed { window } => self.on_window_closed(&window),
                Event::Exited { reason } => {
                    tracing::warn!(%reason, "tmux server gone; running commands are interrupted");
                    self.on_server_gone();
                    return;
                }
            }
        }
    }

    fn on_output(&self, pane: &str, data: &[u8]) {
        let mut finished = None;
        {
            let mut st = self.0.state.lock().unwrap();
            let Some(sess) = st.sessions.values_mut().find(|s| s.pane == pane) else {
                return;
            };
            sess.watch_ready(data);
            let Some(cmd) = sess.running.clone() else {
                return;
            };
            for piece in sess.scanner.feed(data) {
                match piece {
                    Piece::Begin => {
                        let mut l = cmd.inner.lock().unwrap();
                        l.last_output = Instant::now();
                        l.began = true;
                        drop(l);
                        cmd.bump();
                    }
                    Piece::Output(raw) => {
                        if cmd.inner.lock().unwrap().from_log {
                            continue;
                        }
                        let text = cmd.push_raw(&raw);
                        if !text.is_empty() {
                            cmd.send_chunk(text);
                        }
                    }
                    Piece::End(rc) => {
                        // Finish here, not in a task: waiters wake one hop sooner.
                        if !cmd.inner.lock().unwrap().from_log {
                            cmd.finish(Some(rc));
                        }
                        finished = Some((cmd.clone(), rc, sess.advance()));
                    }
                }
            }
        }
        if let Some((cmd, rc, next)) = finished {
            let engine = self.clone();
            tokio::spawn(async move {
                engine.complete(&cmd, Some(rc)).await;
                if let Some((next, req)) = next {
                    engine.launch(next, req).await;
                }
            });
        }
    }

    /// Finish a command (if not yet): output from the pane log when it was recovered; then
    /// persist and audit it.
    async fn complete(&self, cmd: &Arc<Cmd>, mut rc: Option<i32>) {
        let from_log = cmd.inner.lock().unwrap().from_log;
        if from_log && cmd.state().is_live() {
            // The log is written by a `cat` behind a pipe; give it a moment to catch up.
            let path = self.log_path(&cmd.session);
            for _ in 0..40 {
                if let Ok(log) = std::fs::read(&path)
                    && let Some((raw, Some(logged))) = find_in_log(&log, &cmd.nonce)
                {
                    cmd.push_raw_replace(&raw);
                    rc = Some(logged);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        cmd.finish(rc);
        self.persist(cmd);
        self.audit(cmd);
        self.prune();
    }

    fn audit(&self, cmd: &Cmd) {
        let r = cmd.result(0);
        tracing::info!(
            target: "archy::audit",
            id = %r.id,
            session = %r.session,
            command = %r.command,
            state = ?r.state,
            exit_code = r.exit_code.map(i64::from).unwrap_or(-1),
            duration_ms = r.duration_ms,
            output_bytes = r.output_bytes,
            "command {} {}: {:?} after {} ms",
            r.id,
            match r.exit_code {
                Some(c) => format!("exited {c}"),
                None => format!("{:?}", r.state).to_lowercase(),
            },
            r.command,
            r.duration_ms
        );
    }

    fn on_window_closed(&self, window: &str) {
        let gone = {
            let mut st = self.0.state.lock().unwrap();
            let name = st
                .sessions
                .iter()
                .find(|(_, s)| s.window == window)
                .map(|(n, _)| n.clone());
            name.and_then(|n| st.sessions.remove(&n))
        };
        if let Some(sess) = gone {
            self.abandon(sess);
        }
    }

    fn on_server_gone(&self) {
        let sessions: Vec<Session> = {
            let mut st = self.0.state.lock().unwrap();
            st.sessions.drain().map(|(_, s)| s).collect()
        };
        for s in sessions {
            self.abandon(s);
        }
    }

    /// A session vanished: its running and queued commands end as interrupted.
    ///
    /// tmux may report the window closing before the last `%output` of its pane (seen with
    /// `exit 3` as a zsh session's first command), so the running command's end is looked
    /// up in the pane log before it is called interrupted.
    fn abandon(&self, sess: Session) {
        if let Some(cmd) = sess.running {
            cmd.inner.lock().unwrap().from_log = true;
            let engine = self.clone();
            tokio::spawn(async move { engine.complete(&cmd, None).await });
        }
        for (cmd, _) in sess.queue {
            cmd.finish(None);
            self.persist(&cmd);
            self.audit(&cmd);
        }
    }

    fn persist(&self, cmd: &Cmd) {
        let mut saved = cmd.saved.lock().unwrap();
        // Version first, then the snapshot: the snapshot is at least that new.
        let version = *cmd.changed.borrow();
        if saved.is_some_and(|s| s > version) {
            return;
        }
        let rec = cmd.record(RECORD_TAIL);
        // An output the record holds whole needs no file of its own after a restart.
        if !rec.result.state.is_live() && rec.result.truncated {
            cmd.inner.lock().unwrap().out.persist();
        }
        let path = self.cmds_dir().join(format!("{}.json", cmd.id));
        let data = serde_json::to_vec(&rec).unwrap_or_default();
        // The first record makes a new file: a crash while writing it leaves a torn file,
        // skipped at load like a record never written. Later ones replace it whole.
        let written = match *saved {
            None => write_making_dir(&path, &data),
            Some(_) => write_atomic(&path, &data),
        };
        match written {
            Ok(()) => *saved = Some(version),
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cannot save command record")
            }
        }
    }

    fn prune(&self) {
        let mut drop_ids = Vec::new();
        {
            let mut st = self.0.state.lock().unwrap();
            while st.order.len() > self.0.cfg.history_limit {
                let Some(pos) = st
                    .order
                    .iter()
                    .position(|id| st.commands.get(id).is_none_or(|c| !c.state().is_live()))
                else {
                    break;
                };
                let id = st.order.remove(pos).unwrap();
                if let Some(c) = st.commands.remove(&id) {
                    drop_ids.push(c);
                }
            }
        }
        for c in drop_ids {
            c.inner.lock().unwrap().out.discard();
            let _ = std::fs::remove_file(self.cmds_dir().join(format!("{}.json", c.id)));
        }
    }

    /// Re-adopt Archy's sessions of a running server and settle commands of an earlier run.
    async fn recover(&self, control: &ControlClient) {
        // `@archy_pane` names the pane Archy types into (not "index 0": base-index varies).
        let fmt = "#{session_name}\t#{pane_id}\t#{window_id}\t#{pane_pid}\t#{pane_tty}\t#{@archy_shell}\t#{pane_pipe}\t#{window_linked_sessions}\t#{@archy_pane}";
        let lines = control
            .cmd(&format!("list-panes -a -F {}", quote(fmt)))
            .await
            .unwrap_or_default();
        let mut found = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 9 || f[0].starts_with(HUB) || f[5].is_empty() || f[8] != f[1] {
                continue;
            }
            let Some(shell) = Shell::from_name(f[5]) else {
                continue;
            };
            if f[7] == "1" {
                let _ = control
                    .cmd(&format!("link-window -d -s {} -t {}:", f[2], quote(HUB)))
                    .await;
            }
            if f[6] != "1" {
                let _ = self.pipe_pane(control, f[0], f[1]).await;
            }
            found.push((
                f[0].to_string(),
                Session::new(f[1], f[2], f[3], f[4], shell),
            ));
        }
        // Commands the records say are live: ended (read from the pane log), still running
        // (follow them), or lost with their session.
        let mut settle = Vec::new();
        {
            let mut st = self.0.state.lock().unwrap();
            for (name, sess) in found {
                st.sessions.entry(name).or_insert(sess);
            }
            let live: Vec<Arc<Cmd>> = st
                .commands
                .values()
                .filter(|c| c.state().is_live())
                .filter(|c| {
                    st.sessions
                        .get(&c.session)
                        .is_none_or(|s| s.running.as_ref().is_none_or(|r| r.id != c.id))
                })
                .cloned()
                .collect();
            for cmd in live {
                let log = std::fs::read(self.log_path(&cmd.session)).unwrap_or_default();
                match (
                    st.sessions.get_mut(&cmd.session),
                    find_in_log(&log, &cmd.nonce),
                ) {
                    (Some(_), Some((raw, Some(rc)))) => {
                        cmd.push_raw_replace(&raw);
                        settle.push((cmd, Some(rc)));
                    }
                    (Some(sess), Some((raw, None))) if sess.running.is_none() => {
                        cmd.push_raw_replace(&raw);
                        {
                            let mut l = cmd.inner.lock().unwrap();
                            l.from_log = true;
                            l.began = true;
                        }
                        sess.scanner.resume(&cmd.nonce);
                        sess.running = Some(cmd.clone());
                        self.spawn_monitor(cmd.clone(), sess.pane_pid, sess.tty.clone());
                    }
                    _ => settle.push((cmd, None)),
                }
            }
        }
        for (cmd, rc) in settle {
            cmd.finish(rc);
            self.persist(&cmd);
            self.audit(&cmd);
        }
    }

    async fn pipe_pane(&self, control: &ControlClient, session: &str, pane: &str) -> Result<()> {
        let log = self.log_path(session);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating pane log directory", e))?;
        }
        let sh = format!("exec cat >> {}", super::shell::sh_quote(&log));
        control
            .cmd(&format!("pipe-pane -o -t {pane} {}", quote(&sh)))
            .await
            .map(|_| ())
    }

    /// Create the session if it does not exist yet.
    ///
    /// Runs as a task of its own: a client that hangs up must not leave a session half made.
    pub async fn ensure_session(&self, name: &str) -> Result<()> {
        let engine = self.clone();
        let name = name.to_string();
        tokio::spawn(async move { engine.ensure_session_inner(&name).await })
            .await
            .map_err(|e| Error::Tmux {
                stderr: format!("creating the session failed: {e}"),
            })?
    }

    async fn ensure_session_inner(&self, name: &str) -> Result<()> {
        validate_session(name)?;
        let control = self.control().await?;
        // One creation at a time: two calls for a new name must not both run new-session.
        let creating = self.0.creating.lock().await;
        if let Some(ready) = self.ready_rx(name) {
            drop(creating);
            return self.await_ready(name, ready).await;
        }
        let shell = self.0.shell;
        let hooks = hook_dir(&self.0.cfg.state_dir);
        let start = shell
            .install(&hooks, &self.cmds_dir())
            .map_err(|e| Error::io("writing shell hook", e))?;
        let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
        // The pane starts idle; the shell is started only once its window is linked into the
        // hub (and piped to the log), so that none of its start-up output, and in particular
        // its ready marker, is missed.
        let out = control
            .cmd(&format!(
                "new-session -d -P -F {} -s {} -x 200 -y 50 -c {} -e ARCHY_SESSION={} {}",
                quote("#{pane_id} #{window_id}"),
                quote(name),
                quote(&home),
                quote(name),
                quote("exec sleep 2147483647")
            ))
            .await;
        let out = match out {
            Ok(o) => o,
            // Made by the user (or an older Archy) meanwhile: adopt it if it is Archy's.
            Err(Error::Tmux { stderr }) if stderr.contains("duplicate session") => {
                self.recover(&control).await;
                return if self.0.state.lock().unwrap().sessions.contains_key(name) {
                    Ok(())
                } else {
                    Err(Error::Tmux {
                        stderr: format!(
                            "session {name:?} exists in tmux but was not created by Archy"
                        ),
                    })
                };
            }
            Err(e) => return Err(e),
        };
        let f: Vec<&str> = out
            .first()
            .map(|l| l.split(' ').collect())
            .unwrap_or_default();
        let [pane, window] = f[..] else {
            return Err(Error::Tmux {
                stderr: format!("unexpected new-session reply: {out:?}"),
            });
        };
        // A pane target names its session; `=NAME` is not accepted by set-option.
        control
            .cmd(&format!(
                "set-option -t {pane} @archy_shell {}",
                shell.name()
            ))
            .await?;
        control
            .cmd(&format!("set-option -t {pane} @archy_pane {pane}"))
            .await?;
        control
            .cmd(&format!("link-window -d -s {window} -t {}:", quote(HUB)))
            .await?;
        self.pipe_pane(&control, name, pane).await?;
        let ready = {
            let mut st = self.0.state.lock().unwrap();
            let sess = Session::new(pane, window, "0", "", shell);
            let rx = sess.ready.subscribe();
            let sess = st.sessions.entry(name.to_string()).or_insert(sess);
            sess.ready.send_replace(false);
            rx
        };
        let info = control
            .cmd(&format!("respawn-pane -k -t {pane} {}", quote(&start)))
            .await
            .and(
                control
                    .cmd(&format!(
                        "display-message -p -t {pane} {}",
                        quote("#{pane_pid} #{pane_tty}")
                    ))
                    .await,
            );
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                self.0.state.lock().unwrap().sessions.remove(name);
                return Err(e);
            }
        };
        if let Some((pid, tty)) = info.first().and_then(|l| l.split_once(' ')) {
            let mut st = self.0.state.lock().unwrap();
            if let Some(sess) = st.sessions.get_mut(name) {
                sess.pane_pid = pid.parse().unwrap_or(0);
                sess.tty = tty.to_string();
            }
        }
        drop(creating);
        tracing::info!(session = name, shell = shell.name(), "session created");
        self.await_ready(name, ready).await
    }

    fn ready_rx(&self, name: &str) -> Option<watch::Receiver<bool>> {
        let st = self.0.state.lock().unwrap();
        st.sessions.get(name).map(|s| s.ready.subscribe())
    }

    /// Wait for the session's shell to have loaded its hook (it prints a ready marker).
    async fn await_ready(&self, name: &str, mut ready: watch::Receiver<bool>) -> Result<()> {
        let waited = tokio::time::timeout(SHELL_START, async {
            ready.wait_for(|r| *r).await.map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            _ if !self.0.state.lock().unwrap().sessions.contains_key(name) => Err(Error::Tmux {
                stderr: format!("session {name:?}: its shell exited while starting"),
            }),
            _ => {
                let shown = self
                    .capture(name, 5)
                    .await
                    .map(|c| c.output)
                    .unwrap_or_default();
                Err(Error::Tmux {
                    stderr: format!(
                        "session {name:?}: the shell has not loaded Archy's hook after {} s \
                         (a slow or failing shell start-up file?); the pane shows: {shown}",
                        SHELL_START.as_secs()
                    ),
                })
            }
        }
    }

    /// Start a command (or queue it behind the running one).
    ///
    /// Runs as a task of its own: if the client hangs up (its request future is dropped), a
    /// session reserved for the command must still get the command typed, or it would stay
    /// busy forever.
    pub async fn execute(&self, req: ExecRequest) -> Result<Arc<Cmd>> {
        let engine = self.clone();
        tokio::spawn(async move { engine.execute_inner(req).await })
            .await
            .map_err(|e| Error::Tmux {
                stderr: format!("starting the command failed: {e}"),
            })?
    }

    async fn execute_inner(&self, req: ExecRequest) -> Result<Arc<Cmd>> {
        self.ensure_session_inner(&req.session).await?;
        let id = new_id("c");
        let nonce = new_id("");
        let store = OutputStore::new(self.0.cfg.output_memory_cap, self.out_path(&id));
        let cmd = Arc::new(Cmd::new(
            id.clone(),
            req.session.clone(),
            req.command.clone(),
            nonce,
            store,
        ));
        {
            let mut st = self.0.state.lock().unwrap();
            let Some(sess) = st.sessions.get_mut(&req.session) else {
                return Err(Error::SessionNotFound {
                    session: req.session,
                });
            };
            if let Some(running) = &sess.running {
                if !req.queue {
                    return Err(Error::Busy {
                        session: req.session.clone(),
                        running_id: running.id.clone(),
                    });
                }
                sess.queue.push_back((cmd.clone(), req));
                st.order.push_back(id.clone());
                st.commands.insert(id, cmd.clone());
                return Ok(cmd);
            }
            sess.running = Some(cmd.clone());
            sess.scanner.expect(&cmd.nonce);
            st.order.push_back(id.clone());
            st.commands.insert(id, cmd.clone());
        }
        if let Err(e) = self.type_command(&cmd, &req).await {
            let mut st = self.0.state.lock().unwrap();
            if let Some(sess) = st.sessions.get_mut(&req.session) {
                sess.running = None;
            }
            st.commands.remove(&cmd.id);
            st.order.retain(|i| *i != cmd.id);
            return Err(e);
        }
        Ok(cmd)
    }

    /// Type a queued command whose turn has come (the session is already reserved for it by
    /// `Session::advance`); if it cannot start, end it and go on with the next.
    async fn launch(&self, cmd: Arc<Cmd>, req: ExecRequest) {
        let mut turn = Some((cmd, req));
        while let Some((cmd, req)) = turn.take() {
            let Err(e) = self.type_command(&cmd, &req).await else {
                return;
            };
            tracing::warn!(id = %cmd.id, error = %e, "queued command could not start");
            turn = {
                let mut st = self.0.state.lock().unwrap();
                st.sessions
                    .get_mut(&req.session)
                    .filter(|s| s.running.as_ref().is_some_and(|r| r.id == cmd.id))
                    .and_then(Session::advance)
            };
            cmd.finish(None);
            self.persist(&cmd);
            self.audit(&cmd);
        }
    }

    /// Write the command file and type the short line that runs it.
    async fn type_command(&self, cmd: &Arc<Cmd>, req: &ExecRequest) -> Result<()> {
        let control = self.control().await?;
        let (pane, shell, pid, tty) = {
            let st = self.0.state.lock().unwrap();
            let s = st
                .sessions
                .get(&req.session)
                .ok_or_else(|| Error::SessionNotFound {
                    session: req.session.clone(),
                })?;
            (s.pane.clone(), s.shell, s.pane_pid, s.tty.clone())
        };
        let file = command_file(&self.cmds_dir(), &req.session);
        let env: Vec<(String, String)> = req
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let script = shell.script(&req.command, req.cwd.as_deref(), &env);
        // The log only has to hold the current command: start it afresh (first, so that a
        // disk filled by the last command's output has room for this one's file).
        let _ = std::fs::File::create(self.log_path(&req.session));
        write_making_dir(&file, script.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        let line = shell.run_line(&cmd.nonce);
        let typed = format!("send-keys -t {pane} -l {}", quote(&line));
        let enter = format!("send-keys -t {pane} Enter");
        for reply in control.cmds(&[&typed, &enter]).await? {
            reply?;
        }
        // Saved while the shell runs the command; a daemon killed before this line loses a
        // command that had only just been typed.
        self.persist(cmd);
        self.0.commands_run.fetch_add(1, Ordering::Relaxed);
        self.spawn_monitor(cmd.clone(), pid, tty);
        Ok(())
    }

    /// Watch a running command for a quiet spell in which it waits for terminal input.
    fn spawn_monitor(&self, cmd: Arc<Cmd>, shell_pid: u32, tty: String) {
        let quiet = self.0.cfg.input_quiet;
        let engine = self.clone();
        tokio::spawn(async move {
            let mut changed = cmd.changed.subscribe();
            let mut backoff = quiet;
            loop {
                let (state, last, began) = {
                    let l = cmd.inner.lock().unwrap();
                    (l.state, l.last_output, l.began)
                };
                match state {
                    // Until the shell starts the command, it is the shell reading the terminal.
                    CommandState::Running if !began => {
                        if changed.changed().await.is_err() {
                            return;
                        }
                        continue;
                    }
                    CommandState::Running => {}
                    CommandState::WaitingForInput => {
                        if changed.changed().await.is_err() {
                            return;
                        }
                        backoff = quiet;
                        continue;
                    }
                    _ => return,
                }
                let due = last + quiet;
                if Instant::now() < due {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        r = changed.changed() => if r.is_err() { return },
                    }
                    continue;
                }
                let fg = inspect(shell_pid, &tty).await;
                let full_screen = engine.alternate_on(&cmd.session).await;
                let waiting = full_screen
                    || fg
                        .as_ref()
                        .is_some_and(|f| f.reading_tty || f.password_mode);
                if waiting {
                    let mut l = cmd.inner.lock().unwrap();
                    if l.state == CommandState::Running && l.last_output <= last {
                        l.state = CommandState::WaitingForInput;
                        let shown = last_line(&l.out.tail(4096).0, &l.cleaner.pending());
                        l.prompt = Some(if full_screen && shown.is_empty() {
                            format!(
                                "full-screen program: {}",
                                fg.map(|f| f.name).unwrap_or_default()
                            )
                        } else {
                            shown
                        });
                        drop(l);
                        cmd.bump();
                    }
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    r = changed.changed() => if r.is_err() { return },
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    async fn alternate_on(&self, session: &str) -> bool {
        let Some(pane) = self.pane_of(session) else {
            return false;
        };
        let Ok(control) = self.control().await else {
            return false;
        };
        control
            .cmd(&format!("display-message -p -t {pane} '#{{alternate_on}}'"))
            .await
            .map(|l| l.first().map(String::as_str) == Some("1"))
            .unwrap_or(false)
    }

    fn pane_of(&self, session: &str) -> Option<String> {
        let st = self.0.state.lock().unwrap();
        st.sessions.get(session).map(|s| s.pane.clone())
    }

    /// The pane of an existing session (adopting sessions of an earlier run first).
    async fn existing_pane(&self, session: &str) -> Result<(Arc<ControlClient>, String)> {
        validate_session(session)?;
        let control = self.control().await?;
        self.pane_of(session)
            .map(|p| (control, p))
            .ok_or_else(|| Error::SessionNotFound {
                session: session.to_string(),
            })
    }

    /// Look a command up by id.
    pub fn get(&self, id: &str) -> Result<Arc<Cmd>> {
        self.0
            .state
            .lock()
            .unwrap()
            .commands
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownCommand { id: id.to_string() })
    }

    /// Look a command up by id, settling it first if it was live in an earlier run.
    pub async fn get_settled(&self, id: &str) -> Result<Arc<Cmd>> {
        let cmd = self.get(id)?;
        if cmd.state().is_live() {
            // Starts (and recovers) the control client if this daemon has not yet.
            self.control().await?;
        }
        Ok(cmd)
    }

    /// Settle commands an earlier run left running (starts tmux only when there are any).
    pub async fn settle(&self) -> Result<()> {
        let any_live = {
            let st = self.0.state.lock().unwrap();
            st.commands.values().any(|c| c.state().is_live())
        };
        if any_live {
            self.control().await?;
        }
        Ok(())
    }

    /// Wait until the command leaves `running`, or the timeout passes.
    pub async fn wait(&self, cmd: &Cmd, timeout: Duration) {
        let mut rx = cmd.changed.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            while cmd.state() == CommandState::Running {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }

    /// The pane as a person sees it: the last `lines` lines, history included.
    pub async fn capture(&self, session: &str, lines: u32) -> Result<Capture> {
        let (control, pane) = self.existing_pane(session).await?;
        let mut out = control
            .cmd(&format!("capture-pane -p -J -t {pane} -S -{lines}"))
            .await?;
        while out.last().is_some_and(|l| l.trim().is_empty()) {
            out.pop();
        }
        let skip = out.len().saturating_sub(lines as usize);
        let out = &out[skip..];
        Ok(Capture {
            lines: out.len() as u32,
            output: out.join("\n"),
        })
    }

    /// Whether a tmux session of that name exists.
    pub async fn session_exists(&self, session: &str) -> Result<bool> {
        validate_session(session)?;
        let control = self.control().await?;
        Ok(control
            .cmd(&format!("has-session -t {}", quote(&format!("={session}"))))
            .await
            .is_ok())
    }

    /// What a session is doing.
    pub async fn status(&self, session: &str) -> Result<Status> {
        let (_, _pane) = self.existing_pane(session).await?;
        let (pid, tty, running) = {
            let st = self.0.state.lock().unwrap();
            let s = &st.sessions[session];
            (s.pane_pid, s.tty.clone(), s.running.clone())
        };
        let fg = inspect(pid, &tty).await;
        let full = self.alternate_on(session).await;
        let (state, prompt) = match &running {
            Some(c) => {
                let l = c.inner.lock().unwrap();
                match l.state {
                    CommandState::WaitingForInput if full => (SessionState::FullScreen, None),
                    CommandState::WaitingForInput => {
                        (SessionState::WaitingForInput, l.prompt.clone())
                    }
                    _ => (SessionState::Running, None),
                }
            }
            None if full => (SessionState::FullScreen, None),
            None if fg.as_ref().is_some_and(|f| f.pid != pid) => (SessionState::Running, None),
            None => (SessionState::Idle, None),
        };
        Ok(Status {
            session: session.to_string(),
            state,
            foreground: fg.as_ref().map(|f| f.name.clone()),
            foreground_pid: fg.map(|f| f.pid),
            command_id: running.map(|c| c.id.clone()),
            prompt,
        })
    }

    /// Archy's sessions with their attached windows.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        let control = self.control().await?;
        let lines = control
            .cmd(&format!(
                "list-sessions -F {}",
                quote("#{session_name}\t#{session_attached}")
            ))
            .await?;
        let attached: HashMap<String, u32> = lines
            .iter()
            .filter_map(|l| {
                let (n, a) = l.split_once('\t')?;
                Some((n.to_string(), a.parse().unwrap_or(0)))
            })
            .collect();
        let st = self.0.state.lock().unwrap();
        let mut v: Vec<SessionInfo> = st
            .sessions
            .iter()
            .map(|(name, s)| SessionInfo {
                name: name.clone(),
                attached: attached.get(name).copied().unwrap_or(0),
                command_id: s.running.as_ref().map(|c| c.id.clone()),
                queued: s.queue.len() as u32,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Recent commands, newest last.
    pub fn history(
        &self,
        session: Option<&str>,
        limit: usize,
        max_bytes: u64,
    ) -> Vec<CommandResult> {
        let st = self.0.state.lock().unwrap();
        let mut v: Vec<CommandResult> = st
            .order
            .iter()
            .rev()
            .filter_map(|id| st.commands.get(id))
            .filter(|c| session.is_none_or(|s| c.session == s))
            .take(limit)
            .map(|c| c.result(max_bytes))
            .collect();
        v.reverse();
        v
    }

    /// Send a signal to what runs in a session.
    pub async fn interrupt(
        &self,
        id: Option<&str>,
        session: Option<&str>,
        signal: &str,
    ) -> Result<Interrupted> {
        let sig = parse_signal(signal)?;
        let session = match (id, session) {
            (Some(id), _) => {
                let cmd = self.get(id)?;
                if !cmd.state().is_live() {
                    return Ok(Interrupted {
                        id: None,
                        signal: signal_name(sig),
                    });
                }
                cmd.session.clone()
            }
            (None, Some(s)) => s.to_string(),
            (None, None) => crate::api::DEFAULT_SESSION.to_string(),
        };
        let (control, pane) = self.existing_pane(&session).await?;
        let (running, pid, tty) = {
            let st = self.0.state.lock().unwrap();
            let s = &st.sessions[&session];
            (s.running.clone(), s.pane_pid, s.tty.clone())
        };
        if let Some(c) = &running {
            c.inner.lock().unwrap().signalled = true;
            if !self.wait_began(c, Duration::from_secs(2)).await {
                // Still not started: the signal flushes the typed line, so no end marker
                // will come. End it here.
                control.cmd(&format!("send-keys -t {pane} C-c")).await?;
                self.forget_running(&session, c);
                return Ok(Interrupted {
                    id: Some(c.id.clone()),
                    signal: signal_name(sig),
                });
            }
        }
        let fg = inspect(pid, &tty).await.map(|f| f.pid);
        let key = match sig {
            nix::sys::signal::Signal::SIGINT => Some("C-c"),
            nix::sys::signal::Signal::SIGQUIT => Some("C-\\\\"),
            _ => None,
        };
        match (key, fg) {
            (Some(k), _) => {
                control.cmd(&format!("send-keys -t {pane} {k}")).await?;
                if let Some(c) = running.clone() {
                    self.repeat_key_until_ended(c, pane.clone(), k);
                }
            }
            // Signal the foreground process group, never the shell itself.
            (None, Some(fgpid)) if fgpid != pid => {
                let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(fgpid as i32)))
                    .map_err(|e| Error::io("finding the foreground process group", e.into()))?;
                nix::sys::signal::killpg(pgid, sig)
                    .map_err(|e| Error::io("sending the signal", e.into()))?;
            }
            (None, _) => {
                control.cmd(&format!("send-keys -t {pane} C-c")).await?;
            }
        }
        Ok(Interrupted {
            id: running.map(|c| c.id.clone()),
            signal: signal_name(sig),
        })
    }

    /// A terminal signal sent while the shell is between fork and exec of the command is lost
    /// (seen with bash: `^C` echoed, `sleep` runs on). Press the key again, as a person would,
    /// until the command ends: at most 5 times, 300 ms apart.
    fn repeat_key_until_ended(&self, cmd: Arc<Cmd>, pane: String, key: &'static str) {
        let engine = self.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                engine.wait(&cmd, Duration::from_millis(300)).await;
                if !cmd.state().is_live() {
                    return;
                }
                let Ok(control) = engine.control().await else {
                    return;
                };
                let _ = control.cmd(&format!("send-keys -t {pane} {key}")).await;
            }
        });
    }

    /// Wait until the shell has started the command; false on timeout.
    async fn wait_began(&self, cmd: &Cmd, timeout: Duration) -> bool {
        let mut rx = cmd.changed.subscribe();
        let began = || cmd.inner.lock().unwrap().began || !cmd.state().is_live();
        tokio::time::timeout(timeout, async {
            while !began() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .is_ok()
            && began()
    }

    /// End a running command that will never report its end, and free its session.
    fn forget_running(&self, session: &str, cmd: &Arc<Cmd>) {
        let next = {
            let mut st = self.0.state.lock().unwrap();
            st.sessions.get_mut(session).and_then(|s| {
                if s.running.as_ref().is_some_and(|r| r.id == cmd.id) {
                    s.scanner = Scanner::default();
                    s.advance()
                } else {
                    None
                }
            })
        };
        cmd.finish(None);
        let engine = self.clone();
        let cmd = cmd.clone();
        tokio::spawn(async move {
            engine.complete(&cmd, None).await;
            if let Some((next, req)) = next {
                engine.launch(next, req).await;
            }
        });
    }

    /// Type text into a session.
    pub async fn send_input(&self, session: &str, text: &str, enter: bool) -> Result<u64> {
        let (control, pane) = self.existing_pane(session).await?;
        if !text.is_empty() {
            control
                .cmd(&format!("send-keys -t {pane} -l {}", quote(text)))
                .await?;
        }
        if enter {
            control.cmd(&format!("send-keys -t {pane} Enter")).await?;
        }
        // An answered prompt means the command runs again: `wait` must wait, not return the
        // stale waiting state. The monitor re-checks after a new quiet spell.
        let running = self
            .0
            .state
            .lock()
            .unwrap()
            .sessions
            .get(session)
            .and_then(|s| s.running.clone());
        if let Some(cmd) = running {
            let mut l = cmd.inner.lock().unwrap();
            l.last_output = Instant::now();
            if l.state == CommandState::WaitingForInput {
                l.state = CommandState::Running;
                l.prompt = None;
                drop(l);
                cmd.bump();
            }
        }
        Ok(text.len() as u64)
    }

    /// Kill a session; returns how many were closed (0 or 1).
    pub async fn close_session(&self, session: &str) -> Result<u32> {
        validate_session(session)?;
        let control = self.control().await?;
        let target = quote(&format!("={session}"));
        let windows = control
            .cmd(&format!("list-windows -t {target} -F '#{{window_id}}'"))
            .await;
        let Ok(windows) = windows else {
            return Ok(0);
        };
        let gone = self.0.state.lock().unwrap().sessions.remove(session);
        for w in windows {
            let _ = control.cmd(&format!("kill-window -t {w}")).await;
        }
        let _ = control.cmd(&format!("kill-session -t {target}")).await;
        if let Some(s) = gone {
            self.abandon(s);
        }
        let _ = std::fs::remove_file(self.log_path(session));
        let _ = std::fs::remove_file(command_file(&self.cmds_dir(), session));
        Ok(1)
    }

    /// Terminal clients attached to a session: (pid, tty).
    pub async fn clients(&self, session: &str) -> Result<Vec<(u32, String)>> {
        let (control, _) = self.existing_pane(session).await?;
        let lines = control
            .cmd(&format!(
                "list-clients -t {} -F {}",
                quote(&format!("={session}")),
                quote("#{client_pid}\t#{client_tty}")
            ))
            .await?;
        Ok(lines
            .iter()
            .filter_map(|l| {
                let (p, t) = l.split_once('\t')?;
                Some((p.parse().ok()?, t.to_string()))
            })
            .collect())
    }

    /// Detach one terminal client (its window then closes).
    pub async fn detach(&self, tty: &str) -> Result<()> {
        let control = self.control().await?;
        control
            .cmd(&format!("detach-client -t {}", quote(tty)))
            .await
            .map(|_| ())
    }
}

/// `inputwait::inspect` off the async thread: it reads all of `/proc`.
async fn inspect(shell_pid: u32, tty: &str) -> Option<inputwait::Foreground> {
    let tty = tty.to_string();
    tokio::task::spawn_blocking(move || inputwait::inspect(shell_pid, &tty))
        .await
        .ok()
        .flatten()
}

/// Session names become tmux targets: keep them plain.
fn validate_session(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(HUB)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParams(format!(
            "session {name:?}: use 1-64 letters, digits, '_', '-', '@' or '+'"
        )))
    }
}

fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal::*;
    let up = s.trim().to_ascii_uppercase();
    Ok(match up.trim_start_matches("SIG") {
        "INT" => SIGINT,
        "TERM" => SIGTERM,
        "KILL" => SIGKILL,
        "QUIT" => SIGQUIT,
        "HUP" => SIGHUP,
        "USR1" => SIGUSR1,
        "USR2" => SIGUSR2,
        _ => {
            return Err(Error::InvalidParams(format!(
                "signal {s:?}: use INT, TERM, KILL, QUIT, HUP, USR1 or USR2"
            )));
        }
    })
}

fn signal_name(s: nix::sys::signal::Signal) -> String {
    s.as_str().trim_start_matches("SIG").to_string()
}

fn last_line(out: &str, pending: &str) -> String {
    if !pending.trim().is_empty() {
        return pending.trim_end().to_string();
    }
    out.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
        .to_string()
}

/// `prefix` + random hex, from the kernel's generator.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Never reached on Linux ≥ 3.17 for 8 bytes; still, a nonce must not be predictable.
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| {
            use std::io::Read;
            f.read_exact(&mut b)
        });
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if prefix.is_empty() {
        hex
    } else {
        format!("{prefix}-{}", &hex[..12])
    }
}

/// Run a program in a transient systemd scope of the user manager, out of our service's cgroup.
pub fn scope_prefix(unit: &str) -> Vec<String> {
    vec![
        "systemd-run".into(),
        "--user".into(),
        "--scope".into(),
        "--quiet".into(),
        "--collect".into(),
        format!("--unit={unit}-{}", &new_id("")[..8]),
        "--".into(),
    ]
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    write_making_dir(&tmp, data)?;
    std::fs::rename(tmp, path)
}

/// Write a file, making its directory only when it is missing (it was removed, or this is
/// the first file): not a `mkdir` and a `stat` before every write of every command.
fn write_making_dir(path: &Path, data: &[u8]) -> std::io::Result<()> {
    match std::fs::write(path, data) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, data)
        }
        r => r,
    }
}
