//! The connections of chat-ext's loop: each one's socket, unfinished line and unsent frames, and
//! where it is in its life. [`Peers`] is also the [`Sink`] chat-core's executor queues frames
//! into; they are written at the end of each turn of the loop.
//!
//! A connection ends the way lesson 04's chat-poll ends one: when the Hub closes it, its last
//! frames (`bye`, an error) are written, then we send our FIN and keep reading, and discarding,
//! until the client's EOF or [`CLOSE_LINGER`]. Closing a socket while unread input sits in its
//! receive buffer would make the kernel answer with a RST, which can destroy those last frames.

use chat_core::net::CLOSE_LINGER;
use chat_core::{BacklogFull, CloseReason, ConnId, Flush, Frame, LineDecoder, SendQueue, Sink};
use std::collections::HashMap;
use std::net::{Shutdown as Direction, TcpStream};
use std::time::Instant;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A member or a newcomer: its lines go to the chat.
    Open,
    /// Closed by the Hub, or hung up with frames still queued: write them out, then hang up.
    Flushing,
    /// Everything written and our FIN sent: read and discard until EOF or this deadline.
    Lingering(Instant),
}

/// One connection.
#[derive(Debug)]
pub struct Peer {
    /// The non-blocking socket; dropping the peer closes it.
    pub socket: TcpStream,
    /// Its unfinished line (chat-core's framing; the lines are parsed in `extensions.rs`).
    pub decoder: LineDecoder,
    /// Frames the kernel has not taken yet (at most `--max-backlog` refused bytes).
    pub queue: SendQueue,
    pub state: State,
    /// The client sent its FIN: nothing more to read.
    pub hung_up: bool,
}

/// Every connection, by the id the Hub gave it.
#[derive(Debug, Default)]
pub struct Peers {
    pub by_id: HashMap<ConnId, Peer>,
    /// Open connections whose socket failed while we wrote: the loop tells the chat they left.
    pub failed: Vec<ConnId>,
}

impl Peers {
    /// Whether `id` is open (its lines still go to the chat).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.by_id.get(&id).is_some_and(|p| p.state == State::Open)
    }

    /// Writes what is queued for every peer, without blocking, and moves the ones that are done
    /// along: a flushed closing peer sends its FIN and lingers (or is dropped, if its client has
    /// hung up already).
    pub fn write_out(&mut self, now: Instant) {
        let mut drop = Vec::new();
        for (&id, peer) in &mut self.by_id {
            if !peer.queue.is_empty() {
                match peer.queue.write_to(&mut &peer.socket) {
                    Ok(Flush::Done) => {}
                    Ok(Flush::Pending) => continue,
                    Err(_) => {
                        if peer.state == State::Open {
                            self.failed.push(id);
                        }
                        drop.push(id);
                        continue;
                    }
                }
            }
            if peer.state == State::Flushing {
                if peer.hung_up || peer.socket.shutdown(Direction::Write).is_err() {
                    drop.push(id);
                } else {
                    peer.state = State::Lingering(now + CLOSE_LINGER);
                }
            }
        }
        for id in drop {
            self.by_id.remove(&id);
        }
    }

    /// The earliest linger deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_id
            .values()
            .filter_map(|p| match p.state {
                State::Lingering(deadline) => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Drops the lingering peers whose client did not hang up in time.
    pub fn drop_expired(&mut self, now: Instant) {
        self.by_id
            .retain(|_, p| !matches!(p.state, State::Lingering(deadline) if deadline <= now));
    }
}

impl Sink for Peers {
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        match self.by_id.get_mut(&to) {
            Some(peer) if peer.state != State::Open && peer.state != State::Flushing => Ok(()),
            Some(peer) => peer.queue.push(frame),
            None => Ok(()), // gone already
        }
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        if let Some(peer) = self.by_id.get_mut(&conn) {
            if peer.state == State::Open {
                peer.state = State::Flushing;
            }
        }
    }

    /// Over `--max-backlog`: hung up at once, its queue dropped.
    fn cut(&mut self, conn: ConnId) {
        self.by_id.remove(&conn);
    }
}
