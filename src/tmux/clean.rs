//! Turn raw terminal bytes into the text a person would read: ANSI sequences stripped, CRLF
//! folded, `\r` redraws and backspaces applied. Streaming: bytes may arrive in any chunks.

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Text,
    Esc,
    /// `ESC [` ... final byte; `params` collects nothing we need except for `K`.
    Csi,
    /// `ESC ]`, `ESC P`, `ESC _`, `ESC ^`: a string ended by BEL or `ESC \`.
    Str,
    StrEsc,
    /// `ESC (`, `ESC )` ...: one more byte follows.
    Charset,
}

/// Streaming cleaner. Completed lines are appended to the sink given to `feed`.
#[derive(Debug, Default)]
pub struct Cleaner {
    state: State,
    line: Vec<char>,
    cursor: usize,
    utf8: Vec<u8>,
}

impl Cleaner {
    /// Feed raw bytes; completed lines (with `\n`) are appended to `sink`.
    pub fn feed(&mut self, bytes: &[u8], sink: &mut String) {
        for &b in bytes {
            match self.state {
                State::Text => self.text(b, sink),
                State::Esc => {
                    self.state = match b {
                        b'[' => State::Csi,
                        b']' | b'P' | b'_' | b'^' | b'X' => State::Str,
                        b'(' | b')' | b'*' | b'+' | b'#' | b'%' => State::Charset,
                        _ => State::Text,
                    }
                }
                State::Csi => {
                    if (0x40..=0x7e).contains(&b) {
                        if b == b'K' {
                            // Erase to end of line: used by progress redraws.
                            self.line.truncate(self.cursor);
                        }
                        self.state = State::Text;
                    }
                }
                State::Str => match b {
                    0x07 => self.state = State::Text,
                    0x1b => self.state = State::StrEsc,
                    _ => {}
                },
                State::StrEsc => self.state = if b == b'\\' { State::Text } else { State::Str },
                State::Charset => self.state = State::Text,
            }
        }
    }

    fn text(&mut self, b: u8, sink: &mut String) {
        match b {
            0x1b => {
                self.utf8.clear();
                self.state = State::Esc;
            }
            b'\n' => {
                sink.extend(self.line.drain(..));
                sink.push('\n');
                self.cursor = 0;
            }
            b'\r' => self.cursor = 0,
            0x08 => self.cursor = self.cursor.saturating_sub(1),
            b'\t' => self.put('\t'),
            0..=0x1f | 0x7f => {}
            0x20..=0x7e => self.put(b as char),
            _ => {
                self.utf8.push(b);
                match std::str::from_utf8(&self.utf8) {
                    Ok(s) => {
                        let c = s.chars().next().unwrap_or('\u{fffd}');
                        self.utf8.clear();
                        self.put(c);
                    }
                    Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => {
                        self.utf8.clear();
                        self.put('\u{fffd}');
                    }
                    Err(_) => {} // incomplete: wait for the next byte
                }
            }
        }
    }

    fn put(&mut self, c: char) {
        if self.cursor >= self.line.len() {
            self.line.resize(self.cursor, ' ');
            self.line.push(c);
        } else {
            self.line[self.cursor] = c;
        }
        self.cursor += 1;
    }

    /// The unfinished last line.
    pub fn pending(&self) -> String {
        self.line.iter().collect()
    }

    /// Byte length of the unfinished last line.
    pub fn pending_len(&self) -> usize {
        self.line.iter().map(|c| c.len_utf8()).sum()
    }

    /// End of stream: move the unfinished line to `sink` (without adding a newline).
    pub fn finish(&mut self, sink: &mut String) {
        sink.extend(self.line.drain(..));
        self.cursor = 0;
    }
}

/// Clean a whole buffer at once.
pub fn clean(bytes: &[u8]) -> String {
    let mut c = Cleaner::default();
    let mut s = String::new();
    c.feed(bytes, &mut s);
    c.finish(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_and_folds() {
        assert_eq!(clean(b"a\r\nb\r\n"), "a\nb\n");
        assert_eq!(clean(b"\x1b[1;31mred\x1b[0m\r\n"), "red\n");
        assert_eq!(clean(b"10%\r20%\r100%\r\n"), "100%\n");
        assert_eq!(clean(b"abcdef\r\x1b[Kxy\r\n"), "xy\n");
        assert_eq!(clean(b"ab\x08c\n"), "ac\n");
        assert_eq!(clean(b"\x1b]0;title\x07t\n"), "t\n");
        assert_eq!(clean("é ✓\n".as_bytes()), "é ✓\n");
        assert_eq!(clean(b"\x1b[?2004ltail"), "tail");
    }

    #[test]
    fn streaming_matches_whole() {
        let raw = "x\r\n\x1b[32mgr\u{e9}en\x1b[0m\r\n50%\r100%\r\nend".as_bytes();
        let mut c = Cleaner::default();
        let mut s = String::new();
        for b in raw {
            c.feed(std::slice::from_ref(b), &mut s);
        }
        c.finish(&mut s);
        assert_eq!(s, clean(raw));
        assert_eq!(s, "x\ngr\u{e9}en\n100%\nend");
    }
}
