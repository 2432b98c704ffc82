//! What the event loop does once it knows a socket is ready: the callbacks.
//!
//! chat-epoll compiles this very file (`#[path]` in its `main.rs`). The two
//! servers differ only in how they *learn* which sockets are ready (`main.rs`); what they do
//! about it is the same state machine, with the same names as Eli Bendersky's select/epoll
//! servers:
//!
//! | callback | called when |
//! |---|---|
//! | [`Server::on_listener_ready`] | the listening socket is readable: connections are waiting |
//! | [`Server::on_peer_connected`] | one was accepted |
//! | [`Server::on_peer_ready_recv`] | a peer's socket is readable (data, EOF or an error) |
//! | [`Server::on_peer_ready_send`] | a peer's socket is writable, or its queue got frames |
//! | [`Server::on_tick`] | after each turn: idle timeouts, lingering closes, shutdown |
//! | [`Server::carry_out`] | after each turn: do what the Hub asked (queue frames, close) |
//!
//! Nothing here blocks: every socket is non-blocking, and "the kernel cannot take/give more
//! right now" (`WouldBlock`, EAGAIN) just ends the callback until the next readiness event.

use crate::peer::{Peer, PeerState};
use crate::Server;
use chat_core::{error_frame, net, Action, ConnId, ErrorCode, Flush};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Connections accepted per readiness event of the listener, so that a flood of connects
/// cannot keep the loop from serving the peers it already has.
const ACCEPT_BATCH: usize = 64;

/// How long a closing peer may take to read its last frames and hang up before we drop it.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How long to stop accepting when no descriptor is left even for the spare-fd trick.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// After SIGTERM, how long we keep flushing `shutting_down` before exiting anyway (the spec
/// gives 2 s in all; the rest is margin for the process to exit).
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(1500);

/// When the frames the Hub queued for a peer are handed to the kernel (`--flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlushPolicy {
    /// Once per loop turn, after every event was handled: all the frames a peer got during the
    /// turn leave in one `writev`. The default, and the point of an event loop.
    PerTurn,
    /// As soon as each frame is queued: one `writev` per frame (for measuring the difference).
    PerFrame,
}

/// How far a read or accept callback got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The kernel said EAGAIN: nothing more until the next readiness event.
    Drained,
    /// The callback stopped at its budget; there may be more. A level-triggered loop will be
    /// told again; an edge-triggered one must remember to come back by itself.
    MoreLeft,
    /// The peer is gone (or the listener, when shutting down).
    Closed,
}

impl Server {
    /// The listener is readable: accept up to [`ACCEPT_BATCH`] connections.
    pub(crate) fn on_listener_ready(&mut self) -> Progress {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                return Progress::Closed; // shutting down: no more accepts
            };
            match listener.accept() {
                Ok((stream, _)) => self.on_peer_connected(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Drained,
                Err(e) if net::is_fd_exhaustion(&e) => {
                    // Out of descriptors. Refuse the newcomer with our reserve descriptor, so it
                    // leaves the backlog (else the listener stays readable: a hot loop).
                    let farewell = error_frame(ErrorCode::ServerFull, "out of file descriptors");
                    if !self.spare.refuse_one(listener, &farewell) {
                        warn!("out of file descriptors: pausing accept for {ACCEPT_BACKOFF:?}");
                        self.pause_accepting(Instant::now());
                        return Progress::Drained;
                    }
                    debug!("out of file descriptors: refused a connection with server_full");
                }
                Err(e) if net::is_transient_accept_error(&e) => continue,
                Err(e) => {
                    warn!("accept failed: {e}; pausing accept for {ACCEPT_BACKOFF:?}");
                    self.pause_accepting(Instant::now());
                    return Progress::Drained;
                }
            }
        }
        Progress::MoreLeft
    }

    /// A connection was accepted: make it non-blocking, tell the Hub, start watching it.
    pub(crate) fn on_peer_connected(&mut self, stream: TcpStream) {
        let fd = stream.as_raw_fd();
        if let Some(refusal) = self.beyond_watch_limit(fd) {
            // This loop cannot watch that descriptor: say so (best effort) and close it.
            debug!("refusing a connection on fd {fd}: beyond what this loop can watch");
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write(&refusal);
            return;
        }
        let setup = stream
            .set_nonblocking(true)
            .and_then(|()| net::configure_accepted(&stream, &self.args.socket));
        if let Err(e) = setup {
            debug!("dropping a new connection: {e}");
            return;
        }
        let id = self.hub.connect(Instant::now(), &mut self.outbox);
        let peer = Peer::new(stream, self.args.decoder(), self.args.send_queue());
        self.peers.insert(id, peer);
        if let Err(e) = self.watch_peer(id) {
            warn!("cannot watch {id}: {e}");
            self.close_peer(id);
        }
        debug!("{id} connected (fd {fd}, {} open)", self.peers.len());
    }

    /// The peer's socket is readable: read what is there (at most `reads_per_event` times) and
    /// hand each complete line to the Hub.
    pub(crate) fn on_peer_ready_recv(&mut self, id: ConnId) -> Progress {
        for _ in 0..self.reads_per_event {
            let Some(peer) = self.peers.get_mut(&id) else {
                return Progress::Closed;
            };
            match (&peer.socket).read(&mut self.read_buf) {
                Ok(0) => {
                    self.on_peer_hung_up(id);
                    return Progress::Closed;
                }
                Ok(n) if peer.is_open() => {
                    // One read may hold half a line or fifty: the decoder sorts that out.
                    let mut lines = std::mem::take(&mut self.lines);
                    lines.extend(peer.decoder.feed(&self.read_buf[..n]));
                    let now = Instant::now();
                    for inbound in lines.drain(..) {
                        self.hub.handle(id, inbound, now, &mut self.outbox);
                        // Apply each request's effects before the next request: a member that
                        // overflowed its backlog just now has left the room for the next one.
                        // (This only queues frames; writing them waits for the end of the turn.)
                        self.carry_out();
                    }
                    self.lines = lines;
                }
                Ok(_) => {} // closing: input is read only to be discarded
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("{id} read error: {e}");
                    self.close_peer(id);
                    return Progress::Closed;
                }
            }
        }
        Progress::MoreLeft
    }

    /// The peer's socket is writable (or its queue got frames): write as much of the queue as
    /// the kernel takes, in one `writev` when it takes it all.
    pub(crate) fn on_peer_ready_send(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // `&TcpStream` implements `Write`: a short write leaves the rest queued, mid-frame.
        match peer.queue.write_to(&mut &peer.socket) {
            // The kernel's send buffer is full: ask to hear when it has room again.
            Ok(Flush::Pending) => self.set_write_interest(id, true),
            Ok(Flush::Done) => {
                self.set_write_interest(id, false);
                if peer_state(&self.peers, id) == Some(PeerState::Flushing) {
                    self.finish_close(id);
                }
            }
            Err(e) => {
                debug!("{id} write error: {e}");
                self.close_peer(id);
            }
        }
    }

    /// Does what the Hub asked during this turn, in order. Closing a peer whose backlog
    /// overflowed makes the Hub tell its room `left`, which adds actions: hence the loop.
    pub(crate) fn carry_out(&mut self) {
        while !self.outbox.is_empty() {
            let mut batch = std::mem::take(&mut self.outbox);
            for action in batch.drain() {
                match action {
                    Action::Send { to, frame } => self.queue_frame(to, frame),
                    Action::Close { conn, .. } => self.begin_close(conn),
                }
            }
            if self.outbox.is_empty() {
                self.outbox = batch; // keep the allocation for the next turn
            }
        }
    }

    /// Writes every queue that got frames this turn: one flush per peer per turn, however
    /// many frames it got. Closing a peer here can produce new actions: loop until quiet.
    pub(crate) fn write_out(&mut self) {
        loop {
            self.carry_out();
            if self.dirty.is_empty() {
                return;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            for id in dirty.drain(..) {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.dirty = false;
                    self.on_peer_ready_send(id);
                }
            }
            self.dirty = dirty;
        }
    }

    /// Time passed: enforce the idle timeout, drop closing peers that lingered too long,
    /// resume accepting after a back-off, and start the shutdown once it is requested.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        if self.shutdown.is_requested() && self.stop_deadline.is_none() {
            self.begin_shutdown(now);
        }
        self.hub_deadline = self.hub.tick(now, &mut self.outbox);
        while let Some(&(deadline, id)) = self.lingering.front() {
            if deadline > now {
                break;
            }
            self.lingering.pop_front();
            if peer_state(&self.peers, id).is_some_and(|state| state != PeerState::Open) {
                debug!("{id} did not finish closing in {CLOSE_LINGER:?}: dropped");
                self.close_peer(id);
            }
        }
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            self.watch_listener(true);
        }
    }

    /// How long the loop may sleep: until the earliest timer (`None`: no timer, forever).
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        [
            self.hub_deadline,
            self.lingering.front().map(|&(deadline, _)| deadline),
            self.accept_paused_until,
            self.stop_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// Whether the loop is done: shutting down, and every peer has been flushed and sent its
    /// FIN (or the time is up).
    pub(crate) fn finished(&self, now: Instant) -> bool {
        let Some(deadline) = self.stop_deadline else {
            return false;
        };
        let all_flushed = self
            .peers
            .values()
            .all(|peer| peer.state == PeerState::Lingering);
        now >= deadline || all_flushed
    }

    /// The end: closes every remaining peer. Each one's unread input is read and discarded
    /// first, so that the kernel closes with a FIN and goes on delivering what it still holds
    /// for the client; closing a socket with unread input sends a RST, which throws that away.
    pub(crate) fn close_all(&mut self) {
        for (_, peer) in self.peers.drain() {
            for _ in 0..16 {
                // Bounded: a peer still streaming at us gets its RST.
                match (&peer.socket).read(&mut self.read_buf) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
        }
    }

    // ---- the steps the callbacks share -------------------------------------------------------

    fn queue_frame(&mut self, id: ConnId, frame: chat_core::Frame) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return; // closed already
        };
        if peer.queue.push(frame).is_err() {
            // Guarantee 4: a reader this far behind is dropped, nobody waits for it.
            debug!("{id} is over --max-backlog: closing it");
            self.close_peer(id);
            return;
        }
        match self.flush {
            FlushPolicy::PerFrame => self.on_peer_ready_send(id),
            FlushPolicy::PerTurn if !peer.dirty => {
                peer.dirty = true;
                self.dirty.push(id);
            }
            FlushPolicy::PerTurn => {}
        }
    }

    /// The Hub closed `id`: flush its queue, then half-close (see [`PeerState`]).
    fn begin_close(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.state != PeerState::Open {
            return;
        }
        peer.state = PeerState::Flushing;
        self.lingering
            .push_back((Instant::now() + CLOSE_LINGER, id));
        if !peer.dirty {
            peer.dirty = true;
            self.dirty.push(id);
        }
    }

    /// The queue of a closing peer is empty: send our FIN and wait for the client's.
    fn finish_close(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.hung_up || peer.socket.shutdown(Direction::Write).is_err() {
            self.close_peer(id); // it already hung up: nothing to wait for
        } else {
            peer.state = PeerState::Lingering;
        }
    }

    /// The client sent EOF (its FIN). It leaves the Hub at once; if frames are still queued for
    /// it (a client may half-close after its last request and wait for the replies), it gets
    /// them before we close.
    fn on_peer_hung_up(&mut self, id: ConnId) {
        self.carry_out(); // whatever the Hub had for it is in its queue now
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        debug!("{id} hung up");
        if peer.queue.is_empty() || peer.state == PeerState::Lingering {
            return self.close_peer(id); // nothing left to send: free the descriptor now
        }
        if peer.is_open() {
            self.hub.disconnect(id, &mut self.outbox);
        }
        peer.hung_up = true;
        // Nothing more to read: stop watching for input, or a level-triggered loop would be
        // woken again and again by the same EOF.
        if let Err(e) = self.update_interest(id) {
            debug!("{id}: {e}");
            return self.close_peer(id);
        }
        self.begin_close(id);
    }

    /// Closes `id` now. An open peer's departure is reported to the Hub (its room gets `left`).
    fn close_peer(&mut self, id: ConnId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        if peer.is_open() {
            self.hub.disconnect(id, &mut self.outbox);
        }
        debug!("{id} closed ({} open)", self.peers.len());
        // Dropping `peer` closes the socket, which also removes it from an epoll set.
    }

    fn set_write_interest(&mut self, id: ConnId, on: bool) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.write_interest != on {
            peer.write_interest = on;
            if let Err(e) = self.update_interest(id) {
                debug!("{id}: {e}");
                self.close_peer(id);
            }
        }
    }

    fn pause_accepting(&mut self, now: Instant) {
        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
        self.watch_listener(false);
    }

    /// SIGINT/SIGTERM: stop accepting, say `shutting_down` to everyone, and give the flush
    /// [`SHUTDOWN_FLUSH`] before the loop ends.
    fn begin_shutdown(&mut self, now: Instant) {
        info!("shutting down: {} connections to close", self.peers.len());
        self.watch_listener(false);
        self.listener = None; // closes it: new connections are refused by the kernel
        self.hub.shutdown(&mut self.outbox);
        self.stop_deadline = Some(now + SHUTDOWN_FLUSH);
    }
}

fn peer_state(peers: &HashMap<ConnId, Peer>, id: ConnId) -> Option<PeerState> {
    peers.get(&id).map(|peer| peer.state)
}
