//! The state the loop keeps for one connection: a [`Conn`].
//!
//! The same life as chat-epoll's `Peer` (open, flushing, lingering), plus one state a completion
//! model needs and a readiness model does not: **closing**. With epoll, closing a descriptor
//! ends everything at once (the kernel forgets the socket's registrations). Here operations are
//! *in the kernel*: a receive waiting for data, a write waiting for room. They hold the socket
//! (and, for a write, our bytes) until they complete. So a connection is closed in two steps:
//! cancel what is in flight, wait for each operation's last completion, and only then close its
//! slot in the file table, which frees the slot for the next connection.
//!
//! ```text
//!          Hub says Close, or EOF      all written: shutdown(SHUT_WR)   EOF, error or
//!          with frames still queued    (at once after an EOF)           linger deadline
//!   Open ─────────────────────────▶ Flushing ──────────────────────▶ Lingering ──────────▶ Closing
//!     │                               │                                                   │
//!     └── EOF, error, backlog full ───┴── error, linger deadline ─────────────────────────┘
//!                                                    cancel in-flight operations, wait for their
//!                                                    last completions, then close the slot ──▶ gone
//! ```

use crate::outgoing::Outgoing;
use chat_core::LineDecoder;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// A chat member: what it sends goes to the Hub.
    Open,
    /// The Hub has closed it, or the client hung up with frames still queued for it: the queue
    /// is written out, then we half-close. Input is received and discarded.
    Flushing,
    /// Everything was written and our FIN is sent. We keep receiving, and discarding, until the
    /// client's EOF or the linger deadline: closing with unread input would make the kernel
    /// answer with a RST, which can destroy our last frames before the client reads them.
    Lingering,
    /// Being torn down: its operations are cancelled, and the slot is closed once the last of
    /// them has completed.
    Closing,
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    /// Its index in the ring's table of registered files. The socket never had a file
    /// descriptor: the multishot accept put it straight into this slot, and every operation
    /// names it by the slot (`types::Fixed`).
    pub slot: u32,
    /// The unfinished line between two receives (at most `--max-line` bytes). The receive
    /// buffers themselves are the shared pool's, given back after each completion.
    pub decoder: LineDecoder,
    /// Frames waiting, and the write in flight.
    pub output: Outgoing,
    pub state: ConnState,
    /// Whether its multishot receive is armed: the last completion (without `IORING_CQE_F_MORE`)
    /// has not come yet.
    pub receiving: bool,
    /// Whether its `shutdown(SHUT_WR)` is in flight.
    pub shutting_down: bool,
    /// Whether the client sent its FIN (a receive completed with 0): nothing more will come,
    /// so the receive is not re-armed.
    pub hung_up: bool,
    /// Whether this connection is on the loop's list of outputs to write at the end of the turn.
    pub dirty: bool,
    /// Whether its slot's `close` has been submitted (the end of [`ConnState::Closing`]).
    pub close_submitted: bool,
}

impl Conn {
    pub fn new(slot: u32, decoder: LineDecoder, output: Outgoing) -> Conn {
        Conn {
            slot,
            decoder,
            output,
            state: ConnState::Open,
            receiving: false,
            shutting_down: false,
            hung_up: false,
            dirty: false,
            close_submitted: false,
        }
    }

    /// Whether its input still goes to the Hub (a closing connection's input is discarded).
    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }

    /// Whether the kernel still holds an operation on it (its completion has not come yet).
    pub fn has_ops_in_flight(&self) -> bool {
        self.receiving || self.output.is_writing() || self.shutting_down
    }

    /// Whether its receive should be armed again after it ended: it is still reading and the
    /// client has not hung up.
    pub fn wants_receive(&self) -> bool {
        !self.receiving && !self.hung_up && self.state != ConnState::Closing
    }
}
