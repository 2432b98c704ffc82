//! A connection's way out: chat-async's [`Outbound`] (the queue bounded by `--max-backlog`, and
//! the writer task that drains it), plus the framing of the connection's transport.
//!
//! The node produces protocol frames: JSON lines ending in `\n`, each encoded once and shared by
//! every member that receives it (a `Bytes`, so a copy is a pointer). Over TCP the line is
//! exactly what goes on the wire. Over WebSocket a protocol frame is one *text message*: a header
//! of 2 to 10 bytes (FIN, opcode 1 = text, the payload length; a server never masks), then the
//! line *without* its newline. The header is queued as a slice of its own in front of a slice of
//! the shared line, so the writer sends both with one `writev`, and the line is still never
//! copied per member.
//!
//! Everything else is the same for both transports: one queue, one writer task, one rule for
//! `--max-backlog` (the bytes the socket refused, headers included; PROTOCOL.md, guarantee 4).
//! A WebSocket connection also carries the control frames of RFC 6455 (tungstenite's pong and
//! close replies, our own close), in the same queue, between two messages, never inside one.

use bytes::Bytes;
use chat_async::outbound::Outbound;
use chat_core::sync::lock;
use chat_core::{BacklogFull, CloseReason, Frame};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame, FrameHeader};

/// The output side of one connection.
#[derive(Debug)]
pub struct Outlet {
    /// The queue and its writer task, chat-async's, the same for both transports.
    outbound: Arc<Outbound>,
    /// How a protocol frame travels on this connection.
    framing: Framing,
}

#[derive(Debug)]
enum Framing {
    /// TCP: one frame is one line.
    Lines,
    /// WebSocket: one frame is one text message. The lock makes the two pushes of a message
    /// (header, payload) one step, so that a control frame pushed by the reader task cannot
    /// land between them; the `bool` turns true once a close frame is queued, after which
    /// nothing more may be sent (RFC 6455, section 5.5.1).
    WebSocket(Mutex<bool>),
}

impl Outlet {
    /// The outlet of a TCP connection.
    pub fn lines(outbound: Arc<Outbound>) -> Self {
        Outlet {
            outbound,
            framing: Framing::Lines,
        }
    }

    /// The outlet of a WebSocket connection.
    pub fn websocket(outbound: Arc<Outbound>) -> Self {
        Outlet {
            outbound,
            framing: Framing::WebSocket(Mutex::new(false)),
        }
    }

    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// Cancelled when the connection ends, for whatever reason: the reader stops.
    pub fn stop_reading(&self) -> &CancellationToken {
        &self.outbound.stop_reading
    }

    /// Queues a protocol frame. `Err`: the socket has refused more than `--max-backlog` bytes;
    /// the connection has been aborted (its queue dropped), and the caller forgets it.
    pub fn send(&self, frame: Frame) -> Result<(), BacklogFull> {
        let result = match &self.framing {
            Framing::Lines => self.outbound.push(frame),
            Framing::WebSocket(closed) => {
                let closed = lock(closed);
                if *closed {
                    return Ok(()); // closing: nothing may follow the close frame
                }
                let line = frame.slice(..frame.len().saturating_sub(1)); // without its `\n`
                self.outbound
                    .push(text_header(line.len()))
                    .and_then(|()| self.outbound.push(line))
            }
        };
        if result.is_err() {
            // Possibly half a message queued: the stream cannot be continued.
            self.outbound.abort();
        }
        result
    }

    /// Queues the bytes of WebSocket control frames written by tungstenite (a pong, the reply
    /// to the client's close); `closing` when they end with a close frame.
    pub fn send_control(&self, bytes: Bytes, closing: bool) -> Result<(), BacklogFull> {
        let Framing::WebSocket(closed) = &self.framing else {
            return Ok(()); // TCP has no control frames
        };
        let mut closed = lock(closed);
        if *closed {
            return Ok(());
        }
        *closed |= closing;
        let result = self.outbound.push(bytes);
        if result.is_err() {
            self.outbound.abort();
        }
        result
    }

    /// The server ends the connection, after its last frame (an `error`, `bye`): a WebSocket
    /// connection gets a close frame with the code that says why (PROTOCOL.md, section 9);
    /// then the queue is written out and the socket closed.
    pub fn close(&self, reason: CloseReason) {
        self.close_with(close_code(reason), close_text(reason));
    }

    /// Like [`Outlet::close`], with any close code (1002 for a client that broke RFC 6455).
    pub fn close_with(&self, code: CloseCode, why: &str) {
        if let Framing::WebSocket(closed) = &self.framing {
            let mut closed = lock(closed);
            if !*closed {
                *closed = true;
                let _ = self.outbound.push(close_frame(code, why));
            }
        }
        self.outbound.close_after_flush();
    }

    /// The client ended the connection (end of stream, or its own close handshake, already
    /// answered): write what is queued, then close.
    pub fn finish(&self) {
        self.outbound.close_after_flush();
    }

    /// Closes at once, dropping what is queued (a backlog overflow).
    pub fn abort(&self) {
        self.outbound.abort();
    }

    pub fn is_aborted(&self) -> bool {
        self.outbound.is_aborted()
    }
}

/// The close codes of PROTOCOL.md, section 9, for the reasons a server closes.
pub fn close_code(reason: CloseReason) -> CloseCode {
    match reason {
        CloseReason::Quit => CloseCode::Normal,        // 1000
        CloseReason::ShuttingDown => CloseCode::Away,  // 1001
        CloseReason::IdleTimeout => CloseCode::Policy, // 1008
        CloseReason::LineTooLong => CloseCode::Policy, // 1008
        CloseReason::ServerFull => CloseCode::Again,   // 1013
    }
}

/// The reason given in the close frame: the error code the client was just sent.
fn close_text(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Quit => "bye",
        CloseReason::ShuttingDown => "shutting_down",
        CloseReason::IdleTimeout => "idle_timeout",
        CloseReason::LineTooLong => "line_too_long",
        CloseReason::ServerFull => "server_full",
    }
}

/// The header of a text message of `len` bytes, from the server (final, unmasked).
fn text_header(len: usize) -> Bytes {
    let header = FrameHeader {
        is_final: true,
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let mut bytes = Vec::with_capacity(header.len(len as u64));
    // Writing into a Vec cannot fail.
    let _ = header.format(len as u64, &mut bytes);
    Bytes::from(bytes)
}

/// A whole close frame: the code, then a reason for people (at most 123 bytes, the limit of a
/// control frame's payload).
fn close_frame(code: CloseCode, why: &str) -> Bytes {
    let mut end = why.len().min(123);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    let frame = WsFrame::close(Some(CloseFrame {
        code,
        reason: why[..end].into(),
    }));
    let mut bytes = Vec::with_capacity(frame.len());
    let _ = frame.format(&mut bytes);
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header says "final text frame" and the length in the three sizes of RFC 6455, 5.2.
    #[test]
    fn text_headers_carry_the_length() {
        assert_eq!(&text_header(15)[..], &[0x81, 15]);
        assert_eq!(&text_header(125)[..], &[0x81, 125]);
        assert_eq!(&text_header(126)[..], &[0x81, 126, 0, 126]);
        assert_eq!(&text_header(65535)[..], &[0x81, 126, 0xff, 0xff]);
        assert_eq!(
            &text_header(65536)[..],
            &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    /// A close frame: opcode 8, the code in two bytes, the reason, never over 125 bytes.
    #[test]
    fn close_frames_carry_the_code() {
        let frame = close_frame(close_code(CloseReason::IdleTimeout), "idle");
        assert_eq!(&frame[..], &[0x88, 6, 0x03, 0xf0, b'i', b'd', b'l', b'e']);
        let long = close_frame(CloseCode::Away, &"é".repeat(100));
        assert_eq!(long[1] as usize, long.len() - 2);
        assert!(long.len() - 2 <= 125);
    }
}
