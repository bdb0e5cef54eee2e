//! jsonrpsee client transport over the two halves of a Unix stream, one JSON value per line.

use std::io;
use std::os::fd::AsRawFd;

use jsonrpsee::core::client::{ReceivedMessage, TransportReceiverT, TransportSenderT};
use nix::sys::socket::{self, MsgFlags};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::transport::lines::{Frame, LineReader};

/// Largest line accepted from the daemon. Results are bounded by the caller's `max_bytes`;
/// this only stops a broken peer from exhausting memory.
const MAX_LINE: usize = 256 << 20;

/// How the daemon's "too many connections" line starts. It answers no request of ours
/// (`id` null), so jsonrpsee would drop it and report only a lost connection.
const REFUSED: &[u8] = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32028,"#;

fn refused(line: &[u8]) -> io::Error {
    let message = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| Some(v["error"]["message"].as_str()?.to_owned()))
        .unwrap_or_else(|| "too many connections".into());
    io::Error::new(io::ErrorKind::ConnectionRefused, message)
}

/// Writing half: each message goes out as one line.
#[derive(Debug)]
pub struct Sender(OwnedWriteHalf);

impl Sender {
    pub fn new(half: OwnedWriteHalf) -> Self {
        Sender(half)
    }
}

impl Sender {
    /// After a failed write: the daemon's reason, if it refused us. It wrote its line before
    /// closing, so the line waits in our receive buffer; peeking leaves it for the receiver.
    fn refusal(&self) -> Option<io::Error> {
        let mut buf = [0u8; 512];
        let fd = self.0.as_ref().as_raw_fd();
        let n = socket::recv(fd, &mut buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT).ok()?;
        let line = buf[..n].split(|&b| b == b'\n').next()?;
        line.starts_with(REFUSED).then(|| refused(line))
    }
}

impl TransportSenderT for Sender {
    type Error = io::Error;

    async fn send(&mut self, mut msg: String) -> io::Result<()> {
        // jsonrpsee serializes compactly: the message holds no newline of its own.
        msg.push('\n');
        let written = self.0.write_all(msg.as_bytes()).await;
        written.map_err(|e| self.refusal().unwrap_or(e))
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

/// Reading half: each line is one message.
pub struct Receiver(LineReader<BufReader<OwnedReadHalf>>);

impl Receiver {
    pub fn new(half: OwnedReadHalf) -> Self {
        Receiver(LineReader::new(BufReader::new(half), MAX_LINE))
    }
}

impl TransportReceiverT for Receiver {
    type Error = io::Error;

    async fn receive(&mut self) -> io::Result<ReceivedMessage> {
        loop {
            return match self.0.next_line().await? {
                Frame::Line(line) if line.trim_ascii().is_empty() => continue,
                Frame::Line(line) if line.starts_with(REFUSED) => Err(refused(&line)),
                Frame::Line(line) => String::from_utf8(line)
                    .map(ReceivedMessage::Text)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
                Frame::TooLong => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the daemon sent a line over {MAX_LINE} bytes"),
                )),
                Frame::Eof => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                )),
            };
        }
    }
}
