//! jsonrpsee client transport over the two halves of a Unix stream, one JSON value per line.

use std::io;

use jsonrpsee::core::client::{ReceivedMessage, TransportReceiverT, TransportSenderT};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::transport::lines::{Frame, LineReader};

/// Largest line accepted from the daemon. Results are bounded by the caller's `max_bytes`;
/// this only stops a broken peer from exhausting memory.
const MAX_LINE: usize = 256 << 20;

/// Writing half: each message goes out as one line.
#[derive(Debug)]
pub struct Sender(OwnedWriteHalf);

impl Sender {
    pub fn new(half: OwnedWriteHalf) -> Self {
        Sender(half)
    }
}

impl TransportSenderT for Sender {
    type Error = io::Error;

    async fn send(&mut self, mut msg: String) -> io::Result<()> {
        // jsonrpsee serializes compactly: the message holds no newline of its own.
        msg.push('\n');
        self.0.write_all(msg.as_bytes()).await
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
