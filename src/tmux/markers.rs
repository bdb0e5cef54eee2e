//! Begin/end markers around each command: private OSC sequences carrying a random nonce.
//!
//! The typed line holds no ESC byte, so the shell's echo of it can never match; tmux passes
//! the sequences through `%output` verbatim and never shows them in `capture-pane`.

/// Common head of every marker.
const HEAD: &[u8] = b"\x1b]777;archy;";
/// Longest marker tail we wait for before treating the bytes as plain output.
const MAX_TAIL: usize = 128;

/// Shell `printf` format producing the begin marker for `%s` = nonce.
pub const BEGIN_FMT: &str = r"\033]777;archy;begin;%s\007";
/// Shell `printf` text of the marker a hook prints once loaded.
pub const READY_FMT: &str = r"\033]777;archy;ready\007";
/// Shell `printf` format producing the end marker for `%s;%d` = nonce, exit code.
pub const END_FMT: &str = r"\033]777;archy;end;%s;%d\007";

/// What a chunk of pane output meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Output of the command (between its markers).
    Output(Vec<u8>),
    /// The command's begin marker was seen.
    Begin,
    /// The end marker, with `$?`.
    End(i32),
}

/// Splits one pane's byte stream into command output and markers for one nonce at a time.
#[derive(Debug, Default)]
pub struct Scanner {
    nonce: Option<String>,
    inside: bool,
    carry: Vec<u8>,
}

impl Scanner {
    /// Expect a new command; bytes before its begin marker are the shell's echo and prompt.
    pub fn expect(&mut self, nonce: &str) {
        self.nonce = Some(nonce.to_string());
        self.inside = false;
        self.carry.clear();
    }

    /// Resume a command already past its begin marker (after a daemon restart).
    pub fn resume(&mut self, nonce: &str) {
        self.expect(nonce);
        self.inside = true;
    }

    /// Whether a command is expected or running.
    pub fn active(&self) -> bool {
        self.nonce.is_some()
    }

    /// Feed pane bytes; returns what they contained, in order.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        let Some(nonce) = self.nonce.clone() else {
            return out;
        };
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let mut start = 0; // first byte not yet emitted or dropped
        let mut i = 0;
        while let Some(off) = memchr(0x1b, &buf[i..]) {
            let esc = i + off;
            let rest = &buf[esc..];
            if rest.len() < HEAD.len() {
                if HEAD.starts_with(rest) {
                    self.emit(&buf[start..esc], &mut out);
                    self.carry = rest.to_vec();
                    return out;
                }
                i = esc + 1;
                continue;
            }
            if !rest.starts_with(HEAD) {
                i = esc + 1;
                continue;
            }
            let Some(bel) = memchr(0x07, &rest[HEAD.len()..]) else {
                if rest.len() < HEAD.len() + MAX_TAIL {
                    self.emit(&buf[start..esc], &mut out);
                    self.carry = rest.to_vec();
                    return out;
                }
                i = esc + 1;
                continue;
            };
            let body = &rest[HEAD.len()..HEAD.len() + bel];
            let end_of_marker = esc + HEAD.len() + bel + 1;
            match parse_body(body, &nonce) {
                Some(Piece::Begin) => {
                    // Anything before our begin marker is echo/prompt: drop it.
                    self.inside = true;
                    out.push(Piece::Begin);
                    start = end_of_marker;
                }
                Some(Piece::End(rc)) => {
                    self.emit(&buf[start..esc], &mut out);
                    out.push(Piece::End(rc));
                    self.nonce = None;
                    self.inside = false;
                    return out;
                }
                _ => {}
            }
            i = end_of_marker;
        }
        self.emit(&buf[start..], &mut out);
        out
    }

    fn emit(&self, bytes: &[u8], out: &mut Vec<Piece>) {
        if self.inside && !bytes.is_empty() {
            out.push(Piece::Output(bytes.to_vec()));
        }
    }
}

fn parse_body(body: &[u8], nonce: &str) -> Option<Piece> {
    let body = std::str::from_utf8(body).ok()?;
    if let Some(n) = body.strip_prefix("begin;") {
        return (n == nonce).then_some(Piece::Begin);
    }
    let rest = body.strip_prefix("end;")?;
    let (n, rc) = rest.split_once(';')?;
    (n == nonce).then(|| Piece::End(rc.parse().unwrap_or(-1)))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Find one command's output and exit code in a recorded pane log (after a daemon restart).
/// Returns `(output, Some(rc))` when the command ended, `(output so far, None)` otherwise, and
/// `None` when its begin marker is not in the log.
pub fn find_in_log(log: &[u8], nonce: &str) -> Option<(Vec<u8>, Option<i32>)> {
    let mut s = Scanner::default();
    s.expect(nonce);
    let mut began = false;
    let mut output = Vec::new();
    for piece in s.feed(log) {
        match piece {
            Piece::Begin => began = true,
            Piece::Output(b) => output.extend_from_slice(&b),
            Piece::End(rc) => return Some((output, Some(rc))),
        }
    }
    began.then_some((output, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(n: &str) -> Vec<u8> {
        format!("\x1b]777;archy;begin;{n}\x07").into_bytes()
    }
    fn end(n: &str, rc: i32) -> Vec<u8> {
        format!("\x1b]777;archy;end;{n};{rc}\x07").into_bytes()
    }

    #[test]
    fn splits_echo_output_and_end() {
        let mut s = Scanner::default();
        s.expect("n1");
        let mut stream = b" echo-of-line\r\n".to_vec();
        stream.extend(begin("n1"));
        stream.extend(b"hello\r\n\x1b[31mred\x1b[0m\r\n");
        stream.extend(end("n1", 3));
        stream.extend(b"prompt$ ");
        // Feed one byte at a time: markers split across chunks must still be found.
        let mut pieces = Vec::new();
        for b in &stream {
            pieces.extend(s.feed(std::slice::from_ref(b)));
        }
        let out: Vec<u8> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Output(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(out, b"hello\r\n\x1b[31mred\x1b[0m\r\n");
        assert_eq!(pieces.last(), Some(&Piece::End(3)));
        assert!(!s.active());
    }

    #[test]
    fn ignores_other_nonces_and_finds_in_log() {
        let mut log = begin("old");
        log.extend(b"x\r\n");
        log.extend(end("old", 0));
        log.extend(begin("n2"));
        log.extend(b"y\r\n");
        assert_eq!(find_in_log(&log, "n2"), Some((b"y\r\n".to_vec(), None)));
        log.extend(end("n2", 7));
        assert_eq!(find_in_log(&log, "n2"), Some((b"y\r\n".to_vec(), Some(7))));
        assert_eq!(find_in_log(&log, "absent"), None);
    }
}
