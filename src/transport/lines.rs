//! Newline framing with a length cap (tokio's `lines()` has none).

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// One line, without its `\n`.
    Line(Vec<u8>),
    /// The line grew past the cap; the rest of it was not read.
    TooLong,
    /// End of stream. A trailing partial line is dropped: the peer never finished it.
    Eof,
}

/// Reads `\n`-terminated lines of at most `max` bytes.
pub(crate) struct LineReader<R> {
    inner: R,
    max: usize,
    // Partial line survives a cancelled `next_line`, which makes it safe in `select!`.
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            buf: Vec::new(),
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Cancel-safe: bytes move from the reader's buffer into `self.buf` with no await between.
    pub(crate) async fn next_line(&mut self) -> io::Result<Frame> {
        loop {
            let avail = self.inner.fill_buf().await?;
            if avail.is_empty() {
                self.buf.clear();
                return Ok(Frame::Eof);
            }
            let (chunk, used, done) = match memchr(avail) {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            if self.buf.len() + chunk.len() > self.max {
                self.inner.consume(used);
                self.buf = Vec::new();
                return Ok(Frame::TooLong);
            }
            self.buf.extend_from_slice(chunk);
            self.inner.consume(used);
            if done {
                return Ok(Frame::Line(std::mem::take(&mut self.buf)));
            }
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Frame> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        loop {
            let f = r.next_line().await.unwrap();
            let end = matches!(f, Frame::Eof | Frame::TooLong);
            out.push(f);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_across_buffer_refills() {
        let got = frames(b"abcdefgh\n\nxy\npartial", 100).await;
        assert_eq!(
            got,
            [
                Frame::Line(b"abcdefgh".to_vec()),
                Frame::Line(vec![]),
                Frame::Line(b"xy".to_vec()),
                Frame::Eof
            ]
        );
    }

    #[tokio::test]
    async fn caps_line_length() {
        assert_eq!(
            frames(b"12345\n", 5).await,
            [Frame::Line(b"12345".to_vec()), Frame::Eof]
        );
        assert_eq!(frames(b"123456\n", 5).await, [Frame::TooLong]);
        assert_eq!(frames(b"1234567890", 5).await, [Frame::TooLong]);
    }
}
