//! One persistent tmux control-mode client (`tmux -C`): commands go in on stdin, replies come
//! back as `%begin`/`%end` blocks in order, and pane output arrives as `%output` lines.
//!
//! A tmux process per call costs ~1.7 ms; a command over this client costs ~0.04 ms (brief §3).

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// What the control client reports besides command replies.
#[derive(Debug)]
pub enum Event {
    /// Raw bytes a pane printed (`%output %ID ...`), already unescaped.
    Output { pane: String, data: Vec<u8> },
    /// A window closed (its shell exited); `@ID`.
    WindowClosed { window: String },
    /// The client ended: the tmux server died or was killed.
    Exited { reason: String },
}

type Reply = oneshot::Sender<std::result::Result<Vec<String>, String>>;

/// Reply slots in command order, and whether the reader has ended (then no reply will come,
/// so a new command must fail at once instead of waiting forever).
#[derive(Default)]
struct Pending {
    replies: VecDeque<Reply>,
    closed: Option<String>,
}

/// How long tmux may take to answer one command.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Handle to the control client. Dropping the last handle closes its stdin, which detaches it.
pub struct ControlClient {
    /// Held across "queue the reply slot, write the line" so replies match commands in order.
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Arc<Mutex<Pending>>,
    child: Mutex<Child>,
}

impl ControlClient {
    /// Start `tmux -L SOCKET -C new-session -A -s HUB` (creating the server if needed).
    /// `prefix` wraps the tmux command (e.g. `systemd-run --user --scope`), `scrub` lists
    /// environment variables the tmux server must not inherit.
    pub async fn start(
        socket: &str,
        hub: &str,
        prefix: &[String],
        scrub: &[&str],
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<ControlClient> {
        let mut argv: Vec<String> = prefix.to_vec();
        argv.extend(
            [
                "tmux",
                // UTF-8 whatever the locale: without it tmux shows tabs and non-ASCII as `_`.
                "-u",
                "-L",
                socket,
                "-C",
                "new-session",
                "-A",
                "-s",
                hub,
                "-n",
                "hub",
                "exec sleep infinity",
            ]
            .map(String::from),
        );
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for v in scrub {
            cmd.env_remove(v);
        }
        let mut child = cmd.spawn().map_err(|e| Error::Tmux {
            stderr: format!("cannot run {}: {e} (is tmux installed?)", argv[0]),
        })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let (ready_tx, ready_rx) = oneshot::channel();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        {
            let stderr_text = stderr_text.clone();
            tokio::spawn(async move {
                let mut buf = String::new();
                let _ = stderr.read_to_string(&mut buf).await;
                *stderr_text.lock().unwrap() = buf;
            });
        }
        tokio::spawn(read_loop(
            BufReader::with_capacity(256 * 1024, stdout),
            pending.clone(),
            events,
            ready_tx,
            stderr_text,
        ));
        // The attach itself answers with one %begin/%end block before anything else.
        let started = ready_rx
            .await
            .unwrap_or_else(|_| Err("tmux control client ended".into()));
        if let Err(reason) = started {
            let status = child.wait().await.ok();
            return Err(Error::Tmux {
                stderr: format!("tmux control client failed to start ({status:?}): {reason}"),
            });
        }
        Ok(ControlClient {
            stdin: tokio::sync::Mutex::new(stdin),
            pending,
            child: Mutex::new(child),
        })
    }

    /// Run one tmux command; returns its output lines or tmux's error text.
    pub async fn cmd(&self, line: &str) -> Result<Vec<String>> {
        let mut replies = self.cmds(&[line]).await?;
        replies.pop().expect("one reply per command")
    }

    /// Send several commands in one write, then wait for every reply (in order): one round
    /// trip instead of one per command.
    pub async fn cmds(&self, lines: &[&str]) -> Result<Vec<Result<Vec<String>>>> {
        let mut rxs = Vec::with_capacity(lines.len());
        {
            let mut buf = Vec::new();
            for line in lines {
                // A newline would split the command; `;` would make tmux answer twice.
                debug_assert!(!line.contains('\n') && !line.is_empty());
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
            let mut stdin = self.stdin.lock().await;
            {
                let mut pending = self.pending.lock().unwrap();
                if let Some(reason) = &pending.closed {
                    return Err(Error::Tmux {
                        stderr: format!("tmux control client is gone: {reason}"),
                    });
                }
                for _ in lines {
                    let (tx, rx) = oneshot::channel();
                    pending.replies.push_back(tx);
                    rxs.push(rx);
                }
            }
            if let Err(e) = stdin.write_all(&buf).await {
                return Err(Error::Tmux {
                    stderr: format!("tmux control client is gone: {e}"),
                });
            }
        }
        let mut out = Vec::with_capacity(rxs.len());
        for rx in rxs {
            out.push(match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
                Ok(Ok(Ok(lines))) => Ok(lines),
                Ok(Ok(Err(stderr))) => Err(Error::Tmux { stderr }),
                Ok(Err(_)) => Err(Error::Tmux {
                    stderr: "tmux server exited before answering".into(),
                }),
                Err(_) => Err(Error::Tmux {
                    stderr: format!("tmux did not answer in {} s", REPLY_TIMEOUT.as_secs()),
                }),
            });
        }
        Ok(out)
    }

    /// Whether the client can still answer: its reader has not ended and its process runs.
    pub fn alive(&self) -> bool {
        self.pending.lock().unwrap().closed.is_none()
            && matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }
}

async fn read_loop(
    mut reader: BufReader<tokio::process::ChildStdout>,
    pending: Arc<Mutex<Pending>>,
    events: mpsc::UnboundedSender<Event>,
    ready: oneshot::Sender<std::result::Result<(), String>>,
    stderr_text: Arc<Mutex<String>>,
) {
    let mut ready = Some(ready);
    let mut line = Vec::with_capacity(4096);
    // Lines of the reply block being read, and whether it answers one of our commands.
    let mut block: Option<(bool, Vec<String>)> = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Some((ours, lines)) = block.as_mut() {
            let end = line.starts_with(b"%end ");
            let err = line.starts_with(b"%error ");
            if end || err {
                let ours = *ours;
                let lines = std::mem::take(lines);
                block = None;
                if !ours {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(()));
                    }
                    continue;
                }
                if let Some(tx) = pending.lock().unwrap().replies.pop_front() {
                    let _ = tx.send(if err {
                        Err(lines.join("\n"))
                    } else {
                        Ok(lines)
                    });
                }
            } else {
                lines.push(String::from_utf8_lossy(&line).into_owned());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"%output ") {
            if let Some(sp) = rest.iter().position(|&b| b == b' ') {
                let pane = String::from_utf8_lossy(&rest[..sp]).into_owned();
                let data = unescape(&rest[sp + 1..]);
                let _ = events.send(Event::Output { pane, data });
            }
        } else if let Some(rest) = line.strip_prefix(b"%begin ") {
            // `%begin TIME NUMBER FLAGS`: FLAGS bit 1 marks replies to this client's commands.
            let ours = rest.rsplit(|&b| b == b' ').next() == Some(b"1");
            block = Some((ours, Vec::new()));
        } else if let Some(rest) = line
            .strip_prefix(b"%window-close ")
            .or_else(|| line.strip_prefix(b"%unlinked-window-close "))
        {
            let window = String::from_utf8_lossy(rest).trim().to_string();
            let _ = events.send(Event::WindowClosed { window });
        } else if line.starts_with(b"%exit") {
            break;
        }
    }
    let reason = {
        let text = stderr_text.lock().unwrap().trim().to_string();
        if text.is_empty() {
            "tmux server exited".to_string()
        } else {
            text
        }
    };
    if let Some(tx) = ready.take() {
        let _ = tx.send(Err(reason.clone()));
    }
    {
        let mut pending = pending.lock().unwrap();
        pending.closed = Some(reason.clone());
        for tx in pending.replies.drain(..) {
            let _ = tx.send(Err(reason.clone()));
        }
    }
    let _ = events.send(Event::Exited { reason });
}

/// Undo control mode's escaping: bytes below 32 and `\` arrive as `\ooo` octal.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Quote a string as one tmux command argument.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(b"a\\015\\012b\\134c"), b"a\r\nb\\c");
        assert_eq!(unescape(b"end\\"), b"end\\");
    }
}
