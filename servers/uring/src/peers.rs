//! The loop's connections: one [`Peer`] per client, and [`Peers`], the table of them together
//! with the ring every operation on them goes through. The same shapes, names and life as
//! chat-readiness' `peers.rs`, plus one state a completion model needs and a readiness model
//! does not: **closing**.
//!
//! With epoll, closing a descriptor ends everything at once (the kernel forgets the socket's
//! registrations). Here operations are *in the kernel*: a receive waiting for data, a write
//! waiting for room. They hold the socket (and, for a write, our bytes) until they complete. So
//! a peer is closed in two steps: cancel what is in flight, wait for each operation's last
//! completion, and only then close its slot in the file table, which frees the slot for the
//! next connection.
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
//!
//! [`Peers`] is also the loop's [`Sink`]: chat-core's executor queues the Hub's frames here, and
//! they are submitted as one write per peer at the end of the turn ([`Peers::write_out`]).

use crate::buffers;
use crate::outgoing::Outgoing;
use crate::ring::Ring;
use crate::token::Token;
use chat_core::net::CLOSE_LINGER;
use chat_core::time::LingerQueue;
use chat_core::{BacklogFull, CloseReason, ConnId, ConnIdMap, Frame, LineDecoder, Sink};
use io_uring::{opcode, types};
use std::time::Instant;
use tracing::debug;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// A chat member: what it sends goes to the Hub.
    Open,
    /// The Hub has closed it, or the client hung up with frames still queued for it (it has
    /// left the Hub): the queue is written out, then we half-close. Input is received and
    /// discarded.
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
pub struct Peer {
    /// Its index in the ring's table of registered files. The socket never had a file
    /// descriptor: the multishot accept put it straight into this slot, and every operation
    /// names it by the slot (`types::Fixed`).
    pub slot: u32,
    /// The unfinished line between two receives (at most `--max-line` bytes). The receive
    /// buffers themselves are the shared pool's, given back after each completion.
    pub decoder: LineDecoder,
    /// Frames not yet taken by the kernel, and the write in flight (at most `--max-backlog`
    /// refused bytes).
    pub queue: Outgoing,
    /// Where it is in its life.
    pub state: PeerState,
    /// Whether its multishot receive is armed: the last completion (without
    /// `IORING_CQE_F_MORE`) has not come yet.
    pub receiving: bool,
    /// Whether its receive brought data since it was last armed: a receive that ends having
    /// brought none was starved of buffers, and is armed again before the others
    /// ([`Peers::rearm_receives`]).
    pub fed: bool,
    /// Whether its `shutdown(SHUT_WR)` is in flight.
    pub shutting_down: bool,
    /// Whether the client sent its FIN (a receive completed with 0): nothing more will come,
    /// so the receive is not armed again.
    pub hung_up: bool,
    /// Whether this peer is on the list of queues to write at the end of this turn.
    pub dirty: bool,
    /// Whether its slot's `close` has been submitted (the end of [`PeerState::Closing`]).
    pub close_submitted: bool,
}

impl Peer {
    pub fn new(slot: u32, decoder: LineDecoder, queue: Outgoing) -> Peer {
        Peer {
            slot,
            decoder,
            queue,
            state: PeerState::Open,
            receiving: false,
            fed: false,
            shutting_down: false,
            hung_up: false,
            dirty: false,
            close_submitted: false,
        }
    }

    /// Whether its input still goes to the Hub (a closing peer's input is discarded).
    pub fn is_open(&self) -> bool {
        self.state == PeerState::Open
    }

    /// Whether the kernel still holds an operation on it (its completion has not come yet).
    pub fn has_ops_in_flight(&self) -> bool {
        self.receiving || self.queue.is_writing() || self.shutting_down
    }

    /// Whether its receive should be armed again after it ended: it is still reading and the
    /// client has not hung up.
    pub fn wants_receive(&self) -> bool {
        !self.receiving && !self.hung_up && self.state != PeerState::Closing
    }
}

/// Every connection of the loop, by the Hub's id, and the ring that does their I/O.
pub struct Peers {
    /// The io_uring instance: every operation of the loop is submitted through it (the
    /// listener's, the timer's and the wake-up's too). Declared first, so dropped first: the
    /// kernel must be done with the memory it was lent (the frames and `iovec`s of the writes
    /// below, and what `Server` owns) before that memory is freed.
    pub ring: Ring,
    /// Every connection, by the Hub's id: the token table (`token.rs` says why not by slot).
    /// Boxed, so that the map's empty half costs a pointer a slot (chat-core's `maps` module
    /// says why).
    map: ConnIdMap<Box<Peer>>,
    /// Peers whose queue got frames this turn, each once: written at the end of the turn.
    dirty: Vec<ConnId>,
    /// Closing peers, and when each is dropped anyway.
    lingering: LingerQueue<ConnId>,
    /// Peers whose multishot receive ended this turn (out of buffers, or stopped by the
    /// kernel): armed again at the end of the turn, after the turn's buffers went back.
    to_rearm: Vec<ConnId>,
    /// `--linger 0`: a closing peer is closed as soon as its queue is written, with a RST and
    /// no `TIME-WAIT`, instead of half-closed and waited for (lesson 09).
    aborts_on_close: bool,
}

impl Peers {
    pub fn new(ring: Ring, aborts_on_close: bool) -> Peers {
        Peers {
            ring,
            map: ConnIdMap::default(),
            dirty: Vec::new(),
            lingering: LingerQueue::new(),
            to_rearm: Vec::new(),
            aborts_on_close,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, id: ConnId) -> Option<&Peer> {
        self.map.get(&id).map(|peer| &**peer)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Peer> {
        self.map.get_mut(&id).map(|peer| &mut **peer)
    }

    /// A new connection: its receive is armed from now on.
    pub fn insert(&mut self, id: ConnId, peer: Peer) {
        self.map.insert(id, Box::new(peer));
        self.arm_receive(id);
    }

    /// Submits `id`'s multishot receive: one submission for as long as it keeps reading, each
    /// completion in a buffer the kernel takes from the pool when data has arrived.
    fn arm_receive(&mut self, id: ConnId) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        peer.receiving = true;
        peer.fed = false;
        let entry = opcode::RecvMulti::new(types::Fixed(peer.slot), buffers::GROUP)
            .build()
            .user_data(Token::Recv(id).encode());
        // SAFETY: a receive from the pool points at no memory of ours but the pool, which
        // outlives the ring.
        unsafe { self.ring.push(entry) };
    }

    /// `id`'s multishot receive ended (its last completion came without `MORE`): armed again at
    /// the end of the turn, if it still reads.
    pub fn receive_ended(&mut self, id: ConnId) {
        self.to_rearm.push(id);
    }

    /// Arms again the receives that ended this turn, for peers still reading. The turn's
    /// buffers are back in the pool by now.
    ///
    /// Starved ones first. The kernel runs the turn's receives in the order they were
    /// submitted, and the first ones with data take what the pool holds: a client streaming a
    /// burst would take every buffer again and again, while a quiet one's ping waited (and its
    /// idle timeout ran). So a receive that ended without having brought any data goes before
    /// those that were fed.
    pub fn rearm_receives(&mut self) {
        let mut ids = std::mem::take(&mut self.to_rearm);
        ids.sort_by_key(|id| self.map.get(id).is_some_and(|peer| peer.fed));
        for id in ids.drain(..) {
            if self.get(id).is_some_and(Peer::wants_receive) {
                self.arm_receive(id);
            }
        }
        self.to_rearm = ids;
    }

    /// Puts `id` on this turn's list of queues to write (once).
    pub fn mark_dirty(&mut self, id: ConnId) {
        if let Some(peer) = self.map.get_mut(&id) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Submits one write for each peer whose queue changed this turn and has no write in
    /// flight: all the frames it got this turn leave in one `writev`. The last step of a turn
    /// (see `outgoing.rs` for why it must be).
    pub fn write_out(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for id in dirty.drain(..) {
            self.start_write(id);
        }
        self.dirty = dirty;
    }

    fn start_write(&mut self, id: ConnId) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        peer.dirty = false;
        if peer.state == PeerState::Closing {
            return;
        }
        if let Some((iovecs, count)) = peer.queue.start_write() {
            let entry = opcode::Writev::new(types::Fixed(peer.slot), iovecs, count)
                .build()
                .user_data(Token::Write(id).encode());
            // SAFETY: the iovecs and the frames they point at stay in `peer.queue` until this
            // write's completion (`on_written`); the peer is removed only after it (`release`),
            // and the ring is dropped before the peers.
            unsafe { self.ring.push(entry) };
        } else if peer.queue.is_empty() && peer.state == PeerState::Flushing {
            self.finish_close(id);
        }
        // Otherwise a write is in flight: its completion marks the peer dirty again.
    }

    /// `id` must end (the Hub closed it, or its client hung up): write its queue out, then
    /// half-close. It gets [`CLOSE_LINGER`] to read its last frames.
    pub fn begin_close(&mut self, id: ConnId, now: Instant) {
        if let Some(peer) = self.map.get_mut(&id).filter(|peer| peer.is_open()) {
            peer.state = PeerState::Flushing;
            self.lingering.push(id, now);
            self.mark_dirty(id);
        }
    }

    /// The queue of a closing peer is all written: send our FIN and wait for the client's (it
    /// already hung up, or `--linger 0` asked for an abort, which a FIN first would turn into a
    /// `TIME-WAIT`: tear it down now). It has left the Hub already, so this needs no Hub.
    fn finish_close(&mut self, id: ConnId) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        if peer.hung_up || self.aborts_on_close {
            return self.tear_down(id);
        }
        peer.state = PeerState::Lingering;
        peer.shutting_down = true;
        let entry = opcode::Shutdown::new(types::Fixed(peer.slot), libc::SHUT_WR)
            .build()
            .user_data(Token::Shutdown(id).encode());
        // SAFETY: a shutdown points at no memory.
        unsafe { self.ring.push(entry) };
    }

    /// Ends `id` without the Hub (the caller tells the Hub if it was open): its operations in
    /// flight are cancelled, what is queued is dropped with it, and its slot is closed once the
    /// last of them has completed ([`Peers::release`]).
    pub fn tear_down(&mut self, id: ConnId) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        if peer.state == PeerState::Closing {
            return;
        }
        peer.state = PeerState::Closing;
        if peer.has_ops_in_flight() {
            // Every operation on this slot: the receive, a write waiting for room, a shutdown.
            // Each one completes (with -ECANCELED, or its result if it was finishing anyway).
            let cancel = types::CancelBuilder::fd(types::Fixed(peer.slot)).all();
            let entry = opcode::AsyncCancel2::new(cancel)
                .build()
                .user_data(Token::Discard.encode());
            // SAFETY: a cancellation points at no memory.
            unsafe { self.ring.push(entry) };
        }
        self.release(id);
    }

    /// A closing peer whose operations have all completed: close its slot. Until now the kernel
    /// could still be writing our frames or receiving into the pool for it; from now on nothing
    /// refers to it, and the slot may go to the next connection.
    pub fn release(&mut self, id: ConnId) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        if peer.state != PeerState::Closing || peer.has_ops_in_flight() || peer.close_submitted {
            return;
        }
        peer.close_submitted = true;
        let entry = opcode::Close::new(types::Fixed(peer.slot))
            .build()
            .user_data(Token::Close(id).encode());
        // SAFETY: a close points at no memory.
        unsafe { self.ring.push(entry) };
    }

    /// The slot of `id` is closed: it is gone.
    pub fn remove(&mut self, id: ConnId) -> Option<Peer> {
        self.map.remove(&id).map(|peer| *peer)
    }

    /// When the first closing peer is dropped anyway.
    pub fn next_linger_deadline(&self) -> Option<Instant> {
        self.lingering.next_deadline()
    }

    /// Tears down the closing peers that took longer than [`CLOSE_LINGER`] to read their last
    /// frames and hang up.
    pub fn drop_lingering(&mut self, now: Instant) {
        while let Some(id) = self.lingering.pop_due(now) {
            let state = self.map.get(&id).map(|peer| peer.state);
            if matches!(state, Some(PeerState::Flushing | PeerState::Lingering)) {
                debug!("{id} did not finish closing in {CLOSE_LINGER:?}: dropped");
                self.tear_down(id);
            }
        }
    }

    /// Whether every peer has been flushed and its FIN has gone out (or it is being torn down):
    /// the end of a shutdown. What is left in flight ends with the ring.
    pub fn all_flushed(&self) -> bool {
        self.map.values().all(|peer| {
            peer.state == PeerState::Closing
                || (peer.state == PeerState::Lingering && !peer.shutting_down)
        })
    }
}

/// chat-core's executor queues the Hub's frames here (see `Server::carry_out`).
impl Sink for Peers {
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        match self.map.get_mut(&to) {
            Some(peer) if peer.state != PeerState::Closing => peer.queue.push(frame)?,
            _ => return Ok(()), // gone, or being torn down
        }
        self.mark_dirty(to);
        Ok(())
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        self.begin_close(conn, Instant::now());
    }

    fn cut(&mut self, conn: ConnId) {
        self.tear_down(conn); // with what it had not taken: it stopped reading
    }
}
