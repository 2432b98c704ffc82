//! What the [`Hub`](crate::Hub) asks the I/O layer to do.
//!
//! The Hub never touches a socket. Every call appends [`Action`]s to an [`Outbox`]; the server
//! then carries them out with its own I/O model (a blocking write, a queue drained by a writer
//! thread, a buffer flushed when epoll says the socket is writable...). That is the whole
//! contract between the chat rules and the seven servers.

use bytes::Bytes;
use std::fmt;

/// Identifies one connection for the lifetime of the Hub. Ids are never reused, so a late
/// action for a connection that is gone can never reach a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One encoded protocol line, newline included.
///
/// A `Bytes` is a reference-counted slice: cloning it for each member of a room copies a pointer,
/// not the message. That is how a broadcast is encoded once and shared by every recipient.
pub type Frame = Bytes;

/// Why the Hub asks for a connection to be closed (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent `quit` (it was answered `bye`).
    Quit,
    /// A line exceeded `--max-line`.
    LineTooLong,
    /// `--max-conns` was reached when it connected.
    ServerFull,
    /// It was silent for `--idle-timeout`.
    IdleTimeout,
    /// The server is stopping.
    ShuttingDown,
}

/// One thing for the I/O layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Queue `frame` on connection `to`, after everything already queued there.
    Send { to: ConnId, frame: Frame },
    /// Send what is queued on `conn`, then close it. The Hub has already forgotten it: do not
    /// call [`Hub::disconnect`](crate::Hub::disconnect) for it (it would be a no-op).
    Close { conn: ConnId, reason: CloseReason },
}

/// The actions produced by Hub calls, in the order they must be carried out.
///
/// Order matters: frames for one connection must be written in the order they appear here
/// (`PROTOCOL.md`, guarantees 1 and 2), and a `Close` comes after that connection's last frame.
#[derive(Debug, Default)]
pub struct Outbox {
    actions: Vec<Action>,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox::default()
    }

    pub fn send(&mut self, to: ConnId, frame: Frame) {
        self.actions.push(Action::Send { to, frame });
    }

    pub fn close(&mut self, conn: ConnId, reason: CloseReason) {
        self.actions.push(Action::Close { conn, reason });
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// The pending actions, without removing them.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Removes and yields every pending action, keeping the allocation for reuse.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }
}
