//! What the checker's clients write on: the TCP stream as given, or (`--transport ws`) the
//! same bytes as WebSocket messages.
//!
//! The scenarios write lines, sometimes in pieces, several in one write, or never finished.
//! Over WebSocket a line is a message, and the analogue of a line in pieces is a message in
//! fragments, so every write becomes frames, masked as a client's must be:
//!
//! * each complete line is the end of a message: one text frame, or the last fragment (a
//!   continuation frame with FIN) when the line was begun by an earlier write;
//! * bytes of a line not finished yet are sent at once as a fragment (a text frame without
//!   FIN, then continuation frames): the server sees them when a TCP server would, and a line
//!   that never ends is a message that never ends;
//! * a blank line (empty, or `\r`) outside a message is sent as nothing: over TCP it is no
//!   request either.
//!
//! All the frames of one write go out in one `write` call, as the bytes would over TCP.

use crate::run::ws;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};

/// A client's writing side.
pub(crate) struct Wire {
    /// The connection.
    stream: TcpStream,
    /// Frame what is written as WebSocket messages.
    ws: bool,
    /// A message is begun (its first fragments sent) and waits for the end of its line.
    in_message: bool,
}

impl Wire {
    pub fn new(stream: TcpStream, ws: bool) -> Wire {
        Wire {
            stream,
            ws,
            in_message: false,
        }
    }

    /// A second writer on the same connection (for a writer thread), starting at a line's
    /// beginning.
    pub fn try_clone(&self) -> io::Result<Wire> {
        Ok(Wire::new(self.stream.try_clone()?, self.ws))
    }

    /// How long a write may block.
    pub fn set_write_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// `shutdown(2)` on the connection.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.shutdown(how)
    }

    /// The close frame a client sends in reply to the server's (RFC 6455, section 5.5.1).
    pub fn close_reply(&mut self, code: Option<u16>) -> io::Result<()> {
        let mut out = Vec::new();
        let code = code.map(u16::to_be_bytes);
        let payload: &[u8] = match &code {
            Some(code) => code,
            None => &[],
        };
        ws::frame(&mut out, true, ws::CLOSE, &[payload]);
        self.stream.write_all(&out)
    }

    /// The frames that carry `bytes` (see the module docs).
    fn frames(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (piece, ends_line) = match memchr::memchr(b'\n', rest) {
                Some(newline) => (&rest[..newline], true),
                None => (rest, false),
            };
            rest = &rest[(piece.len() + usize::from(ends_line)).min(rest.len())..];
            let blank = piece.is_empty() || piece == b"\r";
            if !self.in_message && ends_line && blank {
                continue;
            }
            let opcode = if self.in_message {
                ws::CONTINUATION
            } else {
                ws::TEXT
            };
            ws::frame(&mut out, ends_line, opcode, &[piece]);
            self.in_message = !ends_line;
        }
        out
    }
}

impl Write for Wire {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.ws {
            let frames = self.frames(bytes);
            self.stream.write_all(&frames)?;
        } else {
            self.stream.write_all(bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// (FIN, opcode, unmasked payload) of every frame in `bytes`.
    fn frames_of(mut bytes: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let len = usize::from(bytes[1] & 0x7F);
            assert!(len < 126 && bytes[1] & 0x80 != 0, "short and masked");
            let key = &bytes[2..6];
            let payload = bytes[6..6 + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            frames.push((bytes[0] & 0x80 != 0, bytes[0] & 0x0F, payload));
            bytes = &bytes[6 + len..];
        }
        frames
    }

    fn wire() -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        Wire::new(stream, true)
    }

    /// Lines are messages; a line in pieces is a message in fragments; blank lines are
    /// nothing; `\r` stays in the message (JSON allows it as whitespace).
    #[test]
    fn lines_become_messages_and_pieces_fragments() {
        let mut w = wire();
        assert_eq!(
            frames_of(&w.frames(b"a\n\n\r\nbc\r\nd")),
            vec![
                (true, ws::TEXT, b"a".to_vec()),
                (true, ws::TEXT, b"bc\r".to_vec()),
                (false, ws::TEXT, b"d".to_vec()),
            ]
        );
        assert_eq!(
            frames_of(&w.frames(b"e")),
            vec![(false, ws::CONTINUATION, b"e".to_vec())]
        );
        assert_eq!(
            frames_of(&w.frames(b"\nf\n")),
            vec![
                (true, ws::CONTINUATION, Vec::new()),
                (true, ws::TEXT, b"f".to_vec()),
            ]
        );
    }
}
