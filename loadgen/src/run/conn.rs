//! One connection as an engine thread holds it: its socket, where it is in its life, the bytes
//! it could not write yet, the incomplete frame it read last, and what it has sent and received.
//!
//! No task, no future, no buffer per connection beyond what it needs: the thread reads every
//! socket into one shared buffer and keeps only the unfinished tail of a frame here (usually
//! nothing), and writes straight from one shared buffer, keeping here only what a full socket
//! refused (usually nothing).

use super::codec::MAX_FRAME;
use super::connect::{io_kind, Failure};
use super::sequence::Streams;
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum State {
    /// Not started yet (the ramp has not reached it).
    Waiting,
    /// TCP connect in progress since `started_us`.
    Connecting { started_us: u64 },
    /// WebSocket only: connected after `connect_us`, upgrade request sent, waiting for the
    /// `101` (the `Sec-WebSocket-Key` to check it against is in [`Conn::ws`]).
    Upgrading { started_us: u64, connect_us: u64 },
    /// Connected after `connect_us`; handshake sent, waiting for the reply.
    Joining { started_us: u64, connect_us: u64 },
    /// Joined: part of the workload.
    Joined,
    /// Never joined.
    Failed(Failure),
    /// Joined, then ended before the run did (closed, reset, unreadable stream).
    Dropped(String),
}

/// What this connection sends, once the plan says who is in its room.
#[derive(Debug, Clone, Default)]
pub(crate) enum Sends {
    /// Nothing (idle workload, not joined, or alone in its room with nobody to write to).
    #[default]
    Nothing,
    /// Its room (the name is the Redis channel; the chat `message` names no room).
    Room(String),
    /// A private message to this nickname.
    Private(String),
    /// `ping` / `PING`.
    Ping,
    /// A line for an echo server.
    Echo,
}

/// A WebSocket connection's state beyond the socket's.
#[derive(Debug, Default)]
pub(crate) struct WsLink {
    /// The `Sec-WebSocket-Key` of the upgrade request, until the answer has been checked.
    pub key: String,
    /// The fragments of a text message whose last fragment has not arrived yet (rare: servers
    /// send each message in one frame).
    pub message: Vec<u8>,
    /// Inside a fragmented message (its first frame has come, its last not yet).
    pub in_message: bool,
}

/// A churning connection's part in `--churn`.
#[derive(Debug, Default)]
pub(crate) struct Churn {
    /// How many times it has reconnected (0: still its first connection). Its nickname carries
    /// the number, so a reconnect never waits for the server to forget the old one.
    pub incarnation: u32,
    /// Leaving since this time (µs): it sends nothing more, and closes once its last message
    /// has come back.
    pub leaving_since: Option<u64>,
    /// It gave up waiting for its last message once: the server may or may not have handled
    /// what was in flight, so its sent count can no longer be trusted by its receivers.
    pub timed_out: bool,
}

/// One connection of an engine thread.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Its index in the whole run (the `<conn>` of every id it sends).
    pub index: u32,
    /// Which of the run's server addresses it talks to.
    pub addr_slot: usize,
    /// The socket, from the connect until it ends.
    pub stream: Option<TcpStream>,
    /// WebSocket state (`--transport ws`), `None` over plain TCP.
    pub ws: Option<WsLink>,
    /// `Some` for a connection that churns (`--churn`), `None` for one that stays.
    pub churn: Option<Churn>,
    pub state: State,
    /// An incomplete frame left at the end of the last read, to put before the next one.
    pub tail: Vec<u8>,
    /// Bytes a full socket did not take; while any wait here, nothing new is written, and the
    /// socket is watched for writability.
    pub unsent: Vec<u8>,
    /// Messages that were due while `unsent` was not empty: written late because of the server.
    pub was_blocked: bool,
    /// Every sender's stream as this connection receives it.
    pub streams: Streams,
    /// Messages written so far: the sequence number of the next one.
    pub next_seq: u64,
    /// Open loop: the next slot of its schedule (message `k` is due at the schedule's time for
    /// `k`). The same as `next_seq`, except for a churning connection, which skips the slots
    /// that fell due while it was away.
    pub next_slot: u64,
    /// Copies each of its messages produces (itself plus the other receivers).
    pub copies: u64,
    pub sends: Sends,
    /// Closed loop: its last message was acknowledged, send the next.
    pub ack_pending: bool,
}

/// What one read gave.
pub(crate) enum Got {
    /// `n` new bytes, after the tail, in the buffer.
    Data(usize),
    /// Nothing to read now.
    Nothing,
    /// The stream ended, with the reason.
    Ended(String),
}

impl Conn {
    pub(crate) fn new(index: u32, addr_slot: usize) -> Conn {
        Conn {
            index,
            addr_slot,
            stream: None,
            ws: None,
            churn: None,
            state: State::Waiting,
            tail: Vec::new(),
            unsent: Vec::new(),
            was_blocked: false,
            streams: Streams::default(),
            next_seq: 0,
            next_slot: 0,
            copies: 0,
            sends: Sends::Nothing,
            ack_pending: false,
        }
    }

    pub(crate) fn is_joined(&self) -> bool {
        matches!(self.state, State::Joined)
    }

    /// Joined, and not on its way out (`--churn`): it sends on schedule.
    pub(crate) fn is_sending(&self) -> bool {
        self.is_joined()
            && self
                .churn
                .as_ref()
                .is_none_or(|c| c.leaving_since.is_none())
    }

    /// Whether every message it wrote has come back to it (its own copy: the acknowledgement).
    pub(crate) fn all_acked(&self) -> bool {
        self.streams.received_up_to(self.index) >= self.next_seq
    }

    /// Reads once into `buf`, after this connection's tail, which is copied to the front
    /// first; returns what happened. `buf` must hold at least [`MAX_FRAME`] plus some room.
    pub(crate) fn read_into(&mut self, buf: &mut [u8]) -> (usize, Got) {
        let Some(stream) = &mut self.stream else {
            return (0, Got::Nothing);
        };
        let tail = self.tail.len();
        debug_assert!(tail <= MAX_FRAME && buf.len() > MAX_FRAME);
        buf[..tail].copy_from_slice(&self.tail);
        self.tail.clear();
        let got = match stream.read(&mut buf[tail..]) {
            Ok(0) => Got::Ended("closed by the server".to_string()),
            Ok(n) => Got::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Nothing,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Got::Nothing,
            Err(e) => Got::Ended(format!("{} ({e})", io_kind(&e))),
        };
        (tail, got)
    }

    /// Writes `bytes` after whatever is still waiting; keeps what the socket does not take.
    /// Returns whether the socket now needs watching for writability, or why writing failed.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<bool, String> {
        if !self.unsent.is_empty() {
            self.unsent.extend_from_slice(bytes);
            return Ok(true);
        }
        let Some(stream) = &mut self.stream else {
            return Ok(false);
        };
        let mut done = 0;
        while done < bytes.len() {
            match stream.write(&bytes[done..]) {
                Ok(0) => return Err("write failed: the socket took nothing".to_string()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write failed: {} ({e})", io_kind(&e))),
            }
        }
        self.unsent.extend_from_slice(&bytes[done..]);
        Ok(!self.unsent.is_empty())
    }

    /// The socket turned writable: writes what waits. Returns whether anything still waits.
    pub(crate) fn flush_unsent(&mut self) -> Result<bool, String> {
        // `write` puts back into the (now empty) `unsent` whatever the socket does not take.
        let waiting = std::mem::take(&mut self.unsent);
        self.write(&waiting)
    }
}
