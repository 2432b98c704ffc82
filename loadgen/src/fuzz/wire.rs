//! One fuzzing connection: raw bytes out, judged frames in, every wait bounded.
//!
//! Unlike the test client (`testkit::TestClient`), nothing here panics: a peer that sends
//! nonsense, goes silent or vanishes is what the fuzzer is looking for, so every outcome is a
//! value the caller can report. Every line the server sends is judged against the protocol
//! ([`judge_frame`]) without chat-core's parser or types, so a server in any language is held
//! to the protocol itself. Only the list of error codes is chat-core's ([`ErrorCode::ALL`],
//! PROTOCOL.md's table as a Rust array): a list, not code that could share a server's bug. (The
//! cargo-fuzz judges of chat-core itself, in `fuzz/`, keep their own.)

use super::report::Tally;
use chat_core::ErrorCode;
use serde_json::Value;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The event types a server may send (PROTOCOL.md, "Events").
const EVENT_TYPES: [&str; 12] = [
    "welcome",
    "joined",
    "left",
    "renamed",
    "broadcast",
    "private",
    "users",
    "rooms",
    "room",
    "pong",
    "bye",
    "error",
];

/// What waiting for the next frame gave.
#[derive(Debug)]
pub enum Next {
    Frame(Value),
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// The server closed the connection (`EOF`, or the error, e.g. a reset).
    Closed(String),
    /// The server sent a line that is not a valid frame.
    Invalid(String),
}

/// How a connection ended, from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An orderly close (FIN).
    Close,
    /// An abortive close: `SO_LINGER` 0, so the kernel sends a reset (RST).
    Reset,
}

/// One connection to the server under test.
pub struct Wire<'t> {
    /// The socket, blocking, with a write timeout; reads wait at most until a deadline.
    stream: TcpStream,
    /// Bytes received and not yet split into lines.
    pending: Vec<u8>,
    /// Set once the server closed (EOF or error): why.
    closed: Option<String>,
    /// The run's counters: bytes out and frames in are counted as they pass.
    tally: &'t Tally,
}

impl<'t> Wire<'t> {
    /// Connects within `timeout`, with `TCP_NODELAY` so that each write leaves at once.
    pub fn connect(addr: SocketAddr, timeout: Duration, tally: &'t Tally) -> io::Result<Wire<'t>> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        // A server that stops reading must not block us for long: the write fails instead.
        stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        Tally::add(&tally.connections, 1);
        Ok(Wire {
            stream,
            pending: Vec::new(),
            closed: None,
            tally,
        })
    }

    /// Writes all of `bytes` (bounded by the one-second write timeout).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        Tally::add(&self.tally.bytes_out, bytes.len() as u64);
        Ok(())
    }

    /// Shuts our sending side (`shutdown(SHUT_WR)`): the server reads EOF after what we sent.
    pub fn half_close(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Ends the connection with a FIN or a reset (dropping it is a FIN).
    pub fn end(self, how: Ending) {
        if how == Ending::Reset {
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
            Tally::add(&self.tally.resets_sent, 1);
        }
    }

    /// Whether the server has closed the connection, and how.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// The next frame, waiting until `deadline` at most.
    pub fn next(&mut self, deadline: Instant) -> Next {
        loop {
            if let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=newline).collect();
                Tally::add(&self.tally.frames_in, 1);
                return match judge_frame(&line) {
                    Ok(frame) => Next::Frame(frame),
                    Err(why) => Next::Invalid(why),
                };
            }
            if let Some(how) = &self.closed {
                return Next::Closed(how.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Timeout;
            }
            self.fill(left);
        }
    }

    /// Reads whatever arrives for `duration` (or until the server closes), judging every
    /// complete frame; returns the invalid ones' reasons. For sessions that do not wait for
    /// particular replies.
    pub fn drain_for(&mut self, duration: Duration, frames: &mut Vec<Value>) -> Vec<String> {
        let deadline = Instant::now() + duration;
        let mut invalid = Vec::new();
        loop {
            match self.next(deadline) {
                Next::Frame(frame) => frames.push(frame),
                Next::Invalid(why) => invalid.push(why),
                Next::Timeout | Next::Closed(_) => return invalid,
            }
        }
    }

    /// One read of at most `wait`. EOF and errors mark the connection closed.
    fn fill(&mut self, wait: Duration) {
        let mut buf = [0u8; 16 * 1024];
        // A zero timeout would mean "block forever".
        let wait = wait.max(Duration::from_millis(1));
        if let Err(e) = self.stream.set_read_timeout(Some(wait)) {
            self.closed = Some(format!("socket error: {e}"));
            return;
        }
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = Some("EOF".into()),
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => self.closed = Some(e.to_string()),
        }
    }
}

/// Judges one line from the server: UTF-8 JSON, an object, a known event `type`, and for an
/// `error` a known `code` with a string `message`. Returns the frame.
pub fn judge_frame(line: &[u8]) -> Result<Value, String> {
    let shown = || super::report::clip(&String::from_utf8_lossy(line));
    let text = std::str::from_utf8(line)
        .map_err(|_| format!("the server sent a line that is not UTF-8: {}", shown()))?;
    let frame: Value = serde_json::from_str(text)
        .map_err(|e| format!("the server sent a line that is not JSON ({e}): {}", shown()))?;
    let kind = frame.get("type").and_then(Value::as_str).ok_or_else(|| {
        format!(
            "the server sent a frame without a string `type`: {}",
            shown()
        )
    })?;
    if !EVENT_TYPES.contains(&kind) {
        return Err(format!(
            "the server sent an unknown event type: {}",
            shown()
        ));
    }
    if kind == "error" {
        // Every code of PROTOCOL.md, "Error codes" (`unavailable` is sent by cluster nodes only).
        let code_ok = frame["code"]
            .as_str()
            .is_some_and(|c| ErrorCode::ALL.iter().any(|code| code.as_str() == c));
        if !code_ok || !frame["message"].is_string() {
            return Err(format!(
                "the server sent an error without a known `code` and a string `message`: {}",
                shown()
            ));
        }
    }
    Ok(frame)
}

/// The `code` of an `error` frame (`None` for other frames).
pub fn error_code(frame: &Value) -> Option<&str> {
    (frame["type"] == "error")
        .then(|| frame["code"].as_str())
        .flatten()
}
