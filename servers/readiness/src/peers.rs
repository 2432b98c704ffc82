//! The loop's connections: one [`Peer`] per client, and [`Peers`], the table of them together
//! with the readiness API that watches them.
//!
//! A blocking server keeps a connection's state on a thread's stack (where am I in the line,
//! what is left to write). A single-threaded event loop cannot block in the middle of a line or
//! of a write, so everything a thread would remember lives in a `Peer`, between two readiness
//! events:
//!
//! ```text
//!          Hub says Close, or EOF      all written: shutdown(Write)      EOF, error or
//!          with frames still queued    (closed at once after an EOF)     linger deadline
//!   Open ─────────────────────────▶ Flushing ──────────────────────▶ Lingering ─────────▶ closed
//!     │                               │
//!     └── EOF, error, backlog full ───┴── error, linger deadline ───────────────────────▶ closed
//! ```
//!
//! [`Peers`] is also the loop's [`Sink`]: chat-core's executor queues the Hub's frames here, and
//! they are written at the end of the turn (or at once with `--flush per-frame`).

use crate::readiness::{Interest, Readiness, Token};
use chat_core::net::CLOSE_LINGER;
use chat_core::{
    BacklogFull, CloseReason, ConnId, ConnIdMap, Flush, Frame, LineDecoder, SendQueue, Sink,
};
use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown as Direction, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;
use tracing::debug;

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
    /// discarding, until the client's EOF or a deadline. Closing a socket while unread input
    /// sits in its receive buffer makes the kernel answer with a RST instead of a FIN, and a
    /// RST can destroy our last frames (`bye`, the error) before the client reads them.
    Lingering,
}

/// One connection.
#[derive(Debug)]
pub struct Peer {
    /// The non-blocking socket. Dropping the `Peer` closes it (and removes it from epoll).
    pub socket: TcpStream,
    /// The unfinished line between two reads (at most `--max-line` bytes).
    pub decoder: LineDecoder,
    /// Frames not yet taken by the kernel (at most `--max-backlog` refused bytes).
    pub queue: SendQueue,
    /// Where it is in its life.
    pub state: PeerState,
    /// Whether the loop currently asks to hear when the socket is writable. It is on only while
    /// `queue` holds bytes the kernel refused: a socket is writable almost always, and asking
    /// for it while there is nothing to write would wake the loop on every turn for nothing.
    pub write_interest: bool,
    /// Whether the client sent its FIN (we read EOF). Nothing more will come, so the loop stops
    /// watching for input: level-triggered, it would otherwise wake for the same EOF forever.
    pub hung_up: bool,
    /// Whether this peer is on the list of queues to flush at the end of this turn.
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

    /// What the loop asks the readiness API about it: input until it hangs up, output only
    /// while the kernel refuses some.
    pub fn interest(&self) -> Interest {
        Interest {
            read: !self.hung_up,
            write: self.write_interest,
        }
    }
}

/// When the frames the Hub queued for a peer are handed to the kernel (`--flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlushPolicy {
    /// Once per loop turn, after every event was handled: all the frames a peer got during the
    /// turn leave in one `writev`. The default, and the point of an event loop.
    PerTurn,
    /// As soon as each frame is queued: one `writev` per frame (to measure the difference).
    PerFrame,
}

/// Every connection of the loop, by the Hub's id, and the readiness API that watches them.
pub struct Peers<R> {
    /// The readiness API (poll, select, epoll): the listener and the wake pipe are watched
    /// through it too.
    pub readiness: R,
    /// Every connection, by the Hub's id (never by descriptor number: see [`Token`]). Boxed, so
    /// that the map's empty half costs a pointer a slot (chat-core's `maps` module says why).
    map: ConnIdMap<Box<Peer>>,
    /// Peers whose queue got frames this turn, each once: flushed at the end of the turn.
    dirty: Vec<ConnId>,
    /// Closing peers and when they are dropped anyway. Every close gets the same delay, so
    /// the queue is in deadline order: a FIFO is a timer queue here.
    lingering: VecDeque<(Instant, ConnId)>,
    /// `--flush`.
    flush: FlushPolicy,
    /// `--linger 0`: a closing peer is closed as soon as its queue is written, with a RST and
    /// no `TIME-WAIT`, instead of half-closed and waited for (lesson 09).
    aborts_on_close: bool,
    /// Peers whose socket failed while frames were queued (`--flush per-frame` writes as it
    /// queues): the loop closes them once the Outbox is carried out, because closing an open
    /// peer needs the Hub, which a [`Sink`] does not have.
    failed: Vec<ConnId>,
}

impl<R: Readiness> Peers<R> {
    pub fn new(readiness: R, flush: FlushPolicy, aborts_on_close: bool) -> Self {
        Peers {
            readiness,
            map: ConnIdMap::default(),
            dirty: Vec::new(),
            lingering: VecDeque::new(),
            flush,
            aborts_on_close,
            failed: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Peer> {
        self.map.get_mut(&id).map(|peer| &mut **peer)
    }

    pub fn state(&self, id: ConnId) -> Option<PeerState> {
        self.map.get(&id).map(|peer| peer.state)
    }

    /// A new connection: watched for input from now on.
    pub fn insert(&mut self, id: ConnId, peer: Peer) -> io::Result<()> {
        let fd = peer.socket.as_raw_fd();
        self.map.insert(id, Box::new(peer));
        self.readiness.watch(fd, Token::Peer(id), Interest::READ)
    }

    /// Forgets `id` and returns it; dropping the returned `Peer` closes the socket.
    pub fn remove(&mut self, id: ConnId) -> Option<Peer> {
        let peer = self.map.remove(&id)?;
        self.readiness.forget(Token::Peer(id));
        Some(*peer)
    }

    /// Every peer, for the end of the loop.
    pub fn drain(&mut self) -> impl Iterator<Item = Peer> + '_ {
        self.map.drain().map(|(_, peer)| *peer)
    }

    /// Whether every peer has been flushed and sent its FIN (the end of a shutdown).
    pub fn all_lingering(&self) -> bool {
        self.map
            .values()
            .all(|peer| peer.state == PeerState::Lingering)
    }

    /// Tells the readiness API what `id` wants now (after `write_interest` or `hung_up`
    /// changed).
    pub fn update_interest(&mut self, id: ConnId) -> io::Result<()> {
        let Some(peer) = self.map.get(&id) else {
            return Ok(());
        };
        let (fd, interest) = (peer.socket.as_raw_fd(), peer.interest());
        self.readiness.set_interest(fd, Token::Peer(id), interest)
    }

    fn set_write_interest(&mut self, id: ConnId, on: bool) -> io::Result<()> {
        match self.map.get_mut(&id) {
            Some(peer) if peer.write_interest != on => {
                peer.write_interest = on;
                self.update_interest(id)
            }
            _ => Ok(()),
        }
    }

    /// Puts `id` on this turn's list of queues to flush (once).
    pub fn mark_dirty(&mut self, id: ConnId) {
        if let Some(peer) = self.map.get_mut(&id) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Moves this turn's queues to flush into `into` (empty), and empties the list.
    pub fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        for id in &self.dirty {
            if let Some(peer) = self.map.get_mut(id) {
                peer.dirty = false;
            }
        }
        // A swap, not a copy: each list keeps its allocation from turn to turn.
        std::mem::swap(&mut self.dirty, into);
    }

    /// Whether `id` has bytes its socket refused (and so watches for room to write them).
    pub fn is_blocked(&self, id: ConnId) -> bool {
        self.map.get(&id).is_some_and(|peer| peer.write_interest)
    }

    /// Peers whose socket failed while frames were queued, emptied.
    pub fn take_failed(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.failed)
    }

    /// Writes as much of `id`'s queue as the kernel takes, in one `writev` when it takes it
    /// all. Write interest is on while the kernel refuses bytes, off once all is written; a
    /// closing peer whose queue is empty half-closes. `Err`: close the peer now (its socket
    /// failed, or it refused more than `--max-backlog` bytes).
    pub fn flush(&mut self, id: ConnId) -> io::Result<()> {
        let Some(peer) = self.map.get_mut(&id) else {
            return Ok(());
        };
        // `&TcpStream` implements `Write`: a short write leaves the rest queued, mid-frame.
        match peer.queue.write_to(&mut &peer.socket)? {
            // The kernel's send buffer is full: ask to hear when it has room again.
            Flush::Pending => self.set_write_interest(id, true),
            Flush::Done => {
                self.set_write_interest(id, false)?;
                if self.state(id) == Some(PeerState::Flushing) {
                    self.finish_close(id);
                }
                Ok(())
            }
        }
    }

    /// `id` must end (the Hub closed it, or its client hung up): flush its queue, then
    /// half-close. It gets [`CLOSE_LINGER`] to read its last frames.
    pub fn begin_close(&mut self, id: ConnId, now: Instant) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        if peer.state != PeerState::Open {
            return;
        }
        peer.state = PeerState::Flushing;
        self.lingering.push_back((now + CLOSE_LINGER, id));
        self.mark_dirty(id);
    }

    /// The queue of a closing peer is empty: send our FIN and wait for the client's. (It has
    /// left the Hub already, so closing it needs no Hub.) With `--linger 0` the close is the
    /// abort that was asked for: a FIN first would leave the `TIME-WAIT` it is meant to avoid.
    fn finish_close(&mut self, id: ConnId) {
        let Some(peer) = self.map.get_mut(&id) else {
            return;
        };
        if peer.hung_up || self.aborts_on_close || peer.socket.shutdown(Direction::Write).is_err() {
            self.remove(id); // it already hung up, or we abort: nothing to wait for
        } else {
            peer.state = PeerState::Lingering;
        }
    }

    /// When the first closing peer is dropped anyway.
    pub fn next_linger_deadline(&self) -> Option<Instant> {
        self.lingering.front().map(|&(deadline, _)| deadline)
    }

    /// Drops the closing peers that took longer than [`CLOSE_LINGER`] to read their last
    /// frames and hang up.
    pub fn drop_lingering(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.lingering.front() {
            if deadline > now {
                break;
            }
            self.lingering.pop_front();
            if self.state(id).is_some_and(|state| state != PeerState::Open) {
                debug!("{id} did not finish closing in {CLOSE_LINGER:?}: dropped");
                self.remove(id);
            }
        }
    }
}

/// chat-core's executor queues the Hub's frames here (see `EventLoop::carry_out`).
impl<R: Readiness> Sink for Peers<R> {
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        let Some(peer) = self.map.get_mut(&to) else {
            return Ok(()); // closed already
        };
        peer.queue.push(frame)?;
        match self.flush {
            // (`mark_dirty`, without looking the peer up a second time: once per frame.)
            FlushPolicy::PerTurn if !peer.dirty => {
                peer.dirty = true;
                self.dirty.push(to);
            }
            FlushPolicy::PerTurn => {}
            FlushPolicy::PerFrame => {
                if let Err(e) = self.flush(to) {
                    debug!("{to} write error: {e}");
                    self.failed.push(to);
                }
            }
        }
        Ok(())
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        self.begin_close(conn, Instant::now());
    }

    fn cut(&mut self, conn: ConnId) {
        self.remove(conn); // dropped with what it had not taken: it stopped reading
    }
}
