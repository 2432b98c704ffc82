//! The checker's transports: JSON lines over TCP, or one text message per line over WebSocket
//! (`--transport ws`, PROTOCOL.md, section 9).
//!
//! The scenarios are written in lines either way. Over WebSocket, [`Writer`] sends each line
//! (without its newline) as one masked text message, and [`Reader`] turns each text message the
//! server sends back into a line, answers pings, and notes the close code, so that `client.rs`
//! and every scenario above it read the same for both transports. A few scenarios only make
//! sense on TCP (partial lines, `\r\n`, half-close…): `transport.rs` skips them, with the reason.

use crate::ws::{self, MaskKeys, Opcode};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest message the checker accepts from a server.
const MAX_MESSAGE: usize = 16 << 20;

/// A handle that writes lines to one connection. Several may exist for one socket (a client
/// and its writer threads); a lock shared by all of them keeps each write whole, so two
/// WebSocket frames never interleave.
pub(crate) struct Writer {
    stream: TcpStream,
    /// Masking keys, when the connection speaks WebSocket.
    ws: Option<MaskKeys>,
    /// Shared by every handle on this socket.
    lock: Arc<Mutex<()>>,
}

/// Makes each handle's masking keys differ.
fn salt() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Writer {
    pub(crate) fn new(stream: TcpStream, ws: bool) -> Writer {
        Writer {
            stream,
            ws: ws.then(|| MaskKeys::new(salt())),
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Another handle on the same socket (for a writer thread).
    pub(crate) fn try_clone(&self) -> io::Result<Writer> {
        Ok(Writer {
            stream: self.stream.try_clone()?,
            ws: self.ws.as_ref().map(|_| MaskKeys::new(salt())),
            lock: Arc::clone(&self.lock),
        })
    }

    /// Sends `bytes`: over TCP as they are; over WebSocket each line (up to and without its
    /// `\n`, and a last piece without one) as one text message. The payload is sent as given,
    /// valid UTF-8 or not: how a server answers bad text is one of the scenarios.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let framed;
        let out = match self.ws.as_mut() {
            None => bytes,
            Some(keys) => {
                let mut frames = Vec::with_capacity(bytes.len() + 16);
                for line in bytes.split_inclusive(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\n").unwrap_or(line);
                    ws::push_frame(&mut frames, Opcode::Text, true, line, Some(keys.next_key()));
                }
                framed = frames;
                &framed
            }
        };
        self.write_whole(out)
    }

    /// Sends one frame of `opcode` (WebSocket only; a no-op over TCP).
    pub(crate) fn send_frame(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let Some(keys) = self.ws.as_mut() else {
            return Ok(());
        };
        let frame = ws::frame(opcode, payload, Some(keys.next_key()));
        self.write_whole(&frame)
    }

    /// Bytes on the socket exactly as given, also over WebSocket (for frames built by hand).
    pub(crate) fn write_whole(&mut self, bytes: &[u8]) -> io::Result<()> {
        let _whole = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.stream.write_all(bytes)
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.shutdown(how)
    }

    /// This end's address (the source address and port the kernel gave the connection).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }
}

/// Writer threads write with `write_all`: every call is sent as it is given (see
/// [`Writer::send`]), so a caller writes whole lines.
impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading side's state over WebSocket.
#[derive(Default)]
pub(crate) struct Reader {
    ws: bool,
    /// Bytes of a frame not fully arrived.
    raw: Vec<u8>,
    /// A fragmented message being put together.
    message: Vec<u8>,
    /// The server's close frame: its code and reason.
    pub close: Option<(Option<u16>, String)>,
    /// Payloads of the pongs the server sent (answers to our ping frames).
    pub pongs: Vec<Vec<u8>>,
}

impl Reader {
    pub(crate) fn new(ws: bool) -> Reader {
        Reader {
            ws,
            ..Reader::default()
        }
    }

    /// Adds what was read from the socket to `lines`: as it is over TCP; over WebSocket the
    /// text messages, each followed by a newline, answering pings through `writer`. `Err` for a
    /// stream that is not WebSocket any more (a masked or broken frame, a binary message).
    pub(crate) fn take(
        &mut self,
        chunk: &[u8],
        lines: &mut Vec<u8>,
        writer: &mut Writer,
    ) -> Result<(), String> {
        if !self.ws {
            lines.extend_from_slice(chunk);
            return Ok(());
        }
        self.raw.extend_from_slice(chunk);
        let mut at = 0;
        while self.close.is_none() {
            let frame = match ws::parse_frame(&self.raw[at..], MAX_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(format!("the server sent a broken WebSocket frame: {e}")),
            };
            if frame.mask.is_some() {
                return Err("the server masked a frame (RFC 6455 forbids it)".into());
            }
            let payload = &self.raw[at + frame.header..at + frame.frame_len()];
            match frame.opcode {
                Opcode::Text | Opcode::Continuation => {
                    self.message.extend_from_slice(payload);
                    if frame.fin {
                        let message = std::mem::take(&mut self.message);
                        // A server may end its messages with a newline; the line gets one.
                        let message = message.strip_suffix(b"\n").unwrap_or(&message);
                        lines.extend_from_slice(message);
                        lines.push(b'\n');
                    }
                }
                Opcode::Binary => {
                    return Err("the server sent a binary message (the protocol is text)".into())
                }
                Opcode::Ping => {
                    let payload = payload.to_vec();
                    let _ = writer.send_frame(Opcode::Pong, &payload);
                }
                Opcode::Pong => self.pongs.push(payload.to_vec()),
                Opcode::Close => {
                    let (code, reason) = ws::parse_close(payload);
                    // Answer the closing handshake (best effort: the server may be gone).
                    let _ = writer
                        .send_frame(Opcode::Close, &ws::close_payload(code.unwrap_or(1000), ""));
                    self.close = Some((code, reason));
                }
            }
            at += frame.frame_len();
        }
        self.raw.drain(..at);
        Ok(())
    }

    /// How the server closed, as a sentence (`None` over TCP or before a close frame).
    pub(crate) fn close_text(&self) -> Option<String> {
        self.close
            .as_ref()
            .map(|(code, reason)| ws::describe_close(*code, reason))
    }
}

/// The client's side of the upgrade on a connected socket: sends the request for `path`,
/// checks the `101`, and returns what the server sent after it (early frames).
pub(crate) fn upgrade(
    stream: &mut TcpStream,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let (request, key) = ws::upgrade_request(addr, path)?;
    stream
        .write_all(&request)
        .map_err(|e| format!("sending the WebSocket upgrade failed: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(len) = ws::upgrade_response(&head, &key)? {
            return Ok(head.split_off(len));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no answer to the WebSocket upgrade at {path} within {} ms",
                timeout.as_millis()
            ));
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Err("the server closed the connection instead of upgrading".into()),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("the WebSocket upgrade failed: {e}")),
        }
    }
}
