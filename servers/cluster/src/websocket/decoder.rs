//! The WebSocket decoder: RFC 6455 frames in, protocol frames out, on tungstenite's sans-I/O
//! core ([`WebSocketContext`]).
//!
//! A client's frame on the wire (RFC 6455, section 5.2):
//!
//! ```text
//! byte 0: FIN (last frame of the message), 3 reserved bits, opcode (1 text, 2 binary,
//!         0 continuation, 8 close, 9 ping, 10 pong)
//! byte 1: MASK (always 1 from a client), payload length 0..=125, or 126 / 127: the length
//!         follows in 2 / 8 bytes
//! then:   the 4-byte masking key, then the payload, each byte XORed with key[i % 4]
//! ```
//!
//! tungstenite does the work: it unmasks, reassembles a message sent in several frames,
//! refuses a frame whose header announces more than `--max-line` bytes *before* reading its
//! payload, checks that text is UTF-8, answers a ping with a pong and a close with a close,
//! and fails on anything RFC 6455 forbids (an unmasked client frame, reserved bits, a control
//! frame of more than 125 bytes...). `WebSocketContext` takes the stream as an argument on every
//! call, so we hand it a [`Wire`]: its reading side is the bytes the reader task already read,
//! its writing side is the connection's [`Outlet`], where tungstenite's replies join the node's
//! frames in the one outbound queue.
//!
//! What is ours: a text message is one protocol frame (a final `\n` is allowed, and counts
//! against `--max-line` like a line's), an empty message is skipped like an empty line, a
//! binary message or text that is not UTF-8 is a `bad_request` (the connection stays open,
//! PROTOCOL.md section 9), and a message over the limit is `line_too_long`.

use crate::outlet::Outlet;
use crate::transport::{Decoded, Decoder};
use bytes::{Buf, Bytes, BytesMut};
use chat_core::{parse_request, BacklogFull, ErrorCode, Inbound, Rejection};
use std::io::{self, Read, Write};
use std::sync::Arc;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error, Message};

/// tungstenite's own read buffer, allocated per connection: small, since we feed it what our
/// reader already read (it grows to a message's length when a message needs it).
const READ_BUFFER: usize = 4 * 1024;

/// One WebSocket connection's decoder.
pub struct Messages {
    /// tungstenite's state machine: the frame being parsed, the message being reassembled,
    /// where the closing handshake stands.
    context: WebSocketContext,
    /// Bytes read from the socket that tungstenite has not taken yet.
    input: BytesMut,
    /// Where tungstenite's pongs and close replies go.
    outlet: Arc<Outlet>,
    /// `--max-line`: the longest message, in bytes, counting a newline as a line does.
    max_line: usize,
    /// The stream can no longer be read (closed, broken, or a message was too long).
    done: bool,
}

impl Messages {
    /// A decoder for a connection whose handshake is done; `early` is what the client sent
    /// after its HTTP request, already read by the HTTP server (often its first message).
    pub fn new(outlet: Arc<Outlet>, max_line: usize, early: &[u8]) -> Self {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            // Control replies are written into the outlet at once, never held back.
            .write_buffer_size(0)
            .max_message_size(Some(max_line))
            .max_frame_size(Some(max_line));
        Messages {
            context: WebSocketContext::new(Role::Server, Some(config)),
            input: BytesMut::from(early),
            outlet,
            max_line: max_line.max(2),
            done: false,
        }
    }

    /// A text message as a protocol frame; `None` for an empty one (skipped, like an empty line).
    fn frame(&mut self, text: &[u8]) -> Option<Inbound> {
        let line = match text.strip_suffix(b"\n") {
            Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
            None => text,
        };
        // Judged as the line it would be over TCP, newline included.
        if line.len() + 1 > self.max_line {
            return Some(Err(self.too_long()));
        }
        (!line.is_empty()).then(|| parse_request(line))
    }

    fn too_long(&mut self) -> Rejection {
        self.done = true;
        Rejection::new(
            ErrorCode::LineTooLong,
            format!(
                "message longer than {} bytes; closing the connection",
                self.max_line
            ),
        )
    }
}

impl Decoder for Messages {
    fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    fn next(&mut self) -> Option<Decoded> {
        while !self.done {
            let mut wire = Wire {
                input: &mut self.input,
                outlet: &self.outlet,
                closing: false,
            };
            let message = match self.context.read(&mut wire) {
                Ok(message) => message,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(Error::Utf8(_)) => {
                    let why = "a text message must be UTF-8";
                    return Some(Decoded::Frame(Err(bad_request(why))));
                }
                Err(Error::Capacity(_)) => return Some(Decoded::Frame(Err(self.too_long()))),
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    self.done = true;
                    return Some(Decoded::Closed);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Decoded::Broken(e.to_string()));
                }
            };
            match message {
                Message::Text(text) => {
                    if let Some(frame) = self.frame(text.as_bytes()) {
                        return Some(Decoded::Frame(frame));
                    }
                }
                Message::Binary(_) => {
                    let why = "a binary message; send each request as a text message";
                    return Some(Decoded::Frame(Err(bad_request(why))));
                }
                // Answered by tungstenite (the pong goes out on the next read), and not
                // activity: only a complete protocol frame is (PROTOCOL.md, guarantee 6).
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Close(_) => {
                    // Its reply, the last frame we send: written now, then nothing more.
                    wire.closing = true;
                    let _ = self.context.flush(&mut wire);
                    self.done = true;
                    return Some(Decoded::Closed);
                }
            }
        }
        None
    }
}

fn bad_request(why: &str) -> Rejection {
    Rejection::new(ErrorCode::BadRequest, why)
}

/// The stream tungstenite reads and writes during one call: our buffered input, and the
/// connection's outlet. Reading past the input says `WouldBlock`: "wait for the next read".
struct Wire<'a> {
    /// What tungstenite reads: the bytes fed and not yet taken.
    input: &'a mut BytesMut,
    /// Where what it writes goes.
    outlet: &'a Outlet,
    /// Set while tungstenite writes its reply to the client's close.
    closing: bool,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.advance(n);
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outlet
            .send_control(Bytes::copy_from_slice(buf), self.closing)
            .map_err(|full: BacklogFull| io::Error::other(full))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
