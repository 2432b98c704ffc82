//! The state the event loop keeps for one connection: a [`Peer`].
//!
//! chat-epoll compiles this very file too: the per-connection state machine
//! does not depend on how the loop learns that a socket is ready.
//!
//! A blocking server keeps this state on a thread's stack (where am I in the line, what is left
//! to write). A single-threaded event loop cannot block in the middle of a line or of a write,
//! so everything a thread would remember lives here, between two readiness events:
//!
//! ```text
//!          Hub says Close, or EOF      all written: shutdown(Write)      EOF, error or
//!          with frames still queued    (closed at once after an EOF)     linger deadline
//!   Open ─────────────────────────▶ Flushing ──────────────────────▶ Lingering ─────────▶ closed
//!     │                               │
//!     └── EOF, error, backlog full ───┴── error, linger deadline ───────────────────────▶ closed
//! ```

use chat_core::{LineDecoder, SendQueue};
use std::net::TcpStream;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// A chat member: what it sends goes to the Hub.
    Open,
    /// The Hub has closed it (`bye`, `line_too_long`, `idle_timeout`, `shutting_down`...), or
    /// the client hung up with frames still queued for it (it has left the Hub): the queue is
    /// written out, then we half-close. Input is read and discarded.
    Flushing,
    /// Everything was written and we sent our FIN (`shutdown(Write)`). We keep reading, and
    /// discarding, until the client's EOF or a deadline. Closing a socket while unread
    /// input sits in its receive buffer makes the kernel answer with a RST instead of a FIN,
    /// and a RST can destroy our last frames (`bye`, the error) before the client reads them.
    Lingering,
}

/// One connection.
///
/// The loop finds it by its `ConnId`, the Hub's name for it, not by its file descriptor: a
/// descriptor number is reused as soon as it is closed, so a stale readiness event for a socket
/// closed earlier in the same turn could reach the new connection that got the same number. A
/// `ConnId` is never reused.
#[derive(Debug)]
pub struct Peer {
    /// The non-blocking socket. Dropping the `Peer` closes it (and removes it from epoll).
    pub socket: TcpStream,
    /// The unfinished line between two reads (at most `--max-line` bytes).
    pub decoder: LineDecoder,
    /// Frames not yet taken by the kernel (at most `--max-backlog` bytes).
    pub queue: SendQueue,
    pub state: PeerState,
    /// Whether the loop currently asks to hear when the socket is writable. It is on only while
    /// `queue` holds bytes the kernel refused: a socket is writable almost always, and asking
    /// for it while there is nothing to write would wake the loop on every turn for nothing.
    pub write_interest: bool,
    /// Whether the client sent its FIN (we read EOF). Nothing more will come, so the loop stops
    /// watching for input: a level-triggered loop would otherwise wake for the same EOF forever.
    pub hung_up: bool,
    /// Whether this peer is on the loop's list of queues to flush at the end of this turn.
    pub dirty: bool,
}

impl Peer {
    pub fn new(socket: TcpStream, decoder: LineDecoder, queue: SendQueue) -> Self {
        Peer {
            socket,
            decoder,
            queue,
            state: PeerState::Open,
            write_interest: false,
            hung_up: false,
            dirty: false,
        }
    }

    /// Whether its input still goes to the Hub (a closing peer's input is discarded).
    pub fn is_open(&self) -> bool {
        self.state == PeerState::Open
    }

    /// Whether the loop should watch it for input.
    pub fn wants_read(&self) -> bool {
        !self.hung_up
    }
}
