//! One command's live record: state, cleaned output, and who is waiting on it.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::clean::Cleaner;
use super::store::OutputStore;
use crate::api::{CommandResult, CommandState};

/// What is persisted of a command, so a restarted daemon finds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub result: CommandResult,
    pub nonce: String,
    /// Unix milliseconds at start (for ordering after a restart).
    pub started_ms: u64,
}

/// A command Archy started (or recovered).
#[derive(Debug)]
pub struct Cmd {
    pub id: String,
    pub session: String,
    pub command: String,
    pub nonce: String,
    pub started_at: SystemTime,
    started: Instant,
    pub inner: Mutex<Live>,
    /// Bumped on every state change; waiters watch it.
    pub changed: watch::Sender<u64>,
    /// Cleaned output chunks as they arrive, for `subscribe_output`.
    /// Made on the first subscription only: a channel's buffer costs tens of KiB, times every
    /// command kept in history.
    chunks: Mutex<Option<broadcast::Sender<String>>>,
    /// Version of the last saved record: saves race (start vs. end), and an older snapshot
    /// must never overwrite a newer one.
    pub saved: Mutex<Option<u64>>,
}

/// Mutable part of a command.
#[derive(Debug)]
pub struct Live {
    pub state: CommandState,
    pub exit_code: Option<i32>,
    pub prompt: Option<String>,
    pub out: OutputStore,
    pub cleaner: Cleaner,
    /// Set by `interrupt`, so the end reads as interrupted.
    pub signalled: bool,
    pub duration: Option<Duration>,
    pub last_output: Instant,
    /// The shell has started it (its begin marker arrived). Before that, a Ctrl-C would flush
    /// the typed line from the terminal and no end marker would ever come.
    pub began: bool,
    /// Output comes from the pane log, not `%output` (recovered after a daemon restart).
    pub from_log: bool,
}

impl Cmd {
    pub fn new(
        id: String,
        session: String,
        command: String,
        nonce: String,
        out: OutputStore,
    ) -> Cmd {
        Cmd {
            id,
            session,
            command,
            nonce,
            started_at: SystemTime::now(),
            started: Instant::now(),
            inner: Mutex::new(Live {
                state: CommandState::Running,
                exit_code: None,
                prompt: None,
                out,
                cleaner: Cleaner::default(),
                signalled: false,
                duration: None,
                last_output: Instant::now(),
                began: false,
                from_log: false,
            }),
            changed: watch::channel(0).0,
            chunks: Mutex::new(None),
            saved: Mutex::new(None),
        }
    }

    /// Rebuild from a persisted record.
    pub fn from_record(rec: &Record, out: OutputStore) -> Cmd {
        let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(rec.started_ms);
        let age = SystemTime::now()
            .duration_since(started_at)
            .unwrap_or_default();
        let mut c = Cmd::new(
            rec.result.id.clone(),
            rec.result.session.clone(),
            rec.result.command.clone(),
            rec.nonce.clone(),
            out,
        );
        c.started_at = started_at;
        c.started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        {
            let live = c.inner.get_mut().unwrap();
            live.state = rec.result.state;
            live.exit_code = rec.result.exit_code;
            live.prompt = rec.result.prompt.clone();
            if !rec.result.state.is_live() {
                live.duration = Some(Duration::from_millis(rec.result.duration_ms));
            }
        }
        c
    }

    /// Receive output chunks printed from now on.
    pub fn subscribe_chunks(&self) -> broadcast::Receiver<String> {
        let mut chunks = self.chunks.lock().unwrap();
        chunks
            .get_or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    /// Pass a chunk to subscribers, if there are any.
    pub fn send_chunk(&self, text: String) {
        if let Some(tx) = self.chunks.lock().unwrap().as_ref() {
            let _ = tx.send(text);
        }
    }

    pub fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn state(&self) -> CommandState {
        self.inner.lock().unwrap().state
    }

    /// Add raw pane bytes to the output; returns the cleaned text that became final.
    pub fn push_raw(&self, raw: &[u8]) -> String {
        let mut live = self.inner.lock().unwrap();
        let mut text = String::new();
        live.cleaner.feed(raw, &mut text);
        live.out.push(&text);
        live.last_output = Instant::now();
        if live.state == CommandState::WaitingForInput {
            live.state = CommandState::Running;
            live.prompt = None;
            drop(live);
            self.bump();
        }
        text
    }

    /// Replace the output with a cleaned copy of `raw` (used when reading a pane log).
    pub fn push_raw_replace(&self, raw: &[u8]) {
        {
            let mut l = self.inner.lock().unwrap();
            l.out.clear();
            l.cleaner = Default::default();
        }
        self.push_raw(raw);
    }

    /// Mark the end (no-op if it already ended) and wake waiters.
    pub fn finish(&self, rc: Option<i32>) {
        let mut live = self.inner.lock().unwrap();
        if !live.state.is_live() {
            return;
        }
        let mut rest = String::new();
        live.cleaner.finish(&mut rest);
        // An unterminated blank line is the shell's redraw before its prompt (zsh PROMPT_SP).
        if rest.trim().is_empty() {
            rest.clear();
        }
        live.out.push(&rest);
        if !rest.is_empty() {
            self.send_chunk(rest);
        }
        live.state = match rc {
            Some(_) if live.signalled => CommandState::Interrupted,
            Some(_) => CommandState::Exited,
            None => CommandState::Interrupted,
        };
        live.exit_code = if live.state == CommandState::Exited {
            rc
        } else {
            None
        };
        live.prompt = None;
        live.duration = Some(self.started.elapsed());
        drop(live);
        self.bump();
        // No more chunks: subscribers see the channel close and send the final result.
        self.chunks.lock().unwrap().take();
    }

    /// Snapshot as the wire type, with at most `max_bytes` of output (the tail).
    pub fn result(&self, max_bytes: u64) -> CommandResult {
        let live = self.inner.lock().unwrap();
        let pending = live.cleaner.pending();
        let total = live.out.len() + pending.len() as u64;
        let (mut output, mut truncated) = live.out.tail(max_bytes);
        if !pending.is_empty() {
            output.push_str(&pending);
            if output.len() as u64 > max_bytes {
                let cut = output.len() - max_bytes as usize;
                let cut = (cut..=output.len())
                    .find(|&i| output.is_char_boundary(i))
                    .unwrap_or(output.len());
                output.drain(..cut);
                truncated = true;
            }
        }
        CommandResult {
            id: self.id.clone(),
            session: self.session.clone(),
            command: self.command.clone(),
            state: live.state,
            exit_code: live.exit_code,
            output,
            output_bytes: total,
            truncated,
            prompt: live.prompt.clone(),
            started_at: humantime::format_rfc3339_millis(self.started_at).to_string(),
            duration_ms: live
                .duration
                .unwrap_or_else(|| self.started.elapsed())
                .as_millis() as u64,
        }
    }

    pub fn record(&self, max_bytes: u64) -> Record {
        Record {
            result: self.result(max_bytes),
            nonce: self.nonce.clone(),
            started_ms: self
                .started_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
        }
    }
}
