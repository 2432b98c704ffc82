//! What the loop does once it knows a socket is ready: the callbacks, with the names of Eli
//! Bendersky's select/epoll servers (chat-reactor's loops use the same ones).
//!
//! | callback | called when |
//! |---|---|
//! | [`on_listener_ready`](EventLoop::on_listener_ready) | the listening socket is readable: connections are waiting |
//! | [`on_peer_connected`](EventLoop::on_peer_connected) | one was accepted |
//! | [`on_peer_ready_recv`](EventLoop::on_peer_ready_recv) | a peer's socket is readable (data, EOF or an error) |
//! | [`on_peer_ready_send`](EventLoop::on_peer_ready_send) | a peer's socket is writable, or its queue got frames |
//! | [`on_peer_hung_up`](EventLoop::on_peer_hung_up) | a peer's read returned EOF |
//! | [`on_tick`](EventLoop::on_tick) | after each turn: idle timeouts, lingering closes, shutdown |
//! | [`carry_out`](EventLoop::carry_out) | after each request: do what the Hub asked (queue frames, close) |
//! | [`write_out`](EventLoop::write_out) | at the end of each turn: flush the queues that got frames |
//!
//! Nothing here blocks: every socket is non-blocking, and "the kernel cannot take/give more
//! right now" (`WouldBlock`, `EAGAIN`) just ends the callback until the next readiness event.
//! Nothing here knows which readiness API is in use either: that is the [`Readiness`] trait.

use crate::event_loop::{EventLoop, Progress};
use crate::peers::Peer;
use crate::readiness::{Interest, Readiness, Token, Trigger};
use chat_core::net::{self, AcceptFailed, ACCEPT_PAUSE};
use chat_core::shutdown::STOP_GRACE;
use chat_core::{error_frame, ConnId, ErrorCode};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;
use tracing::{debug, info, warn};

/// Connections accepted per readiness event of the listener, so that a flood of connects
/// cannot keep the loop from serving the peers it already has.
pub const ACCEPT_BATCH: usize = 64;

impl<R: Readiness> EventLoop<R> {
    /// The listener is readable: accept up to [`ACCEPT_BATCH`] connections.
    pub fn on_listener_ready(&mut self) -> Progress {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                return Progress::Closed; // shutting down: no more accepts
            };
            match listener.accept() {
                Ok((stream, addr)) => self.on_peer_connected(stream, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Drained,
                Err(e) if net::is_fd_exhaustion(&e) => {
                    // Out of descriptors. Refuse the newcomer with our reserve descriptor, so it
                    // leaves the backlog (else the listener stays readable: a hot loop).
                    let farewell = error_frame(ErrorCode::ServerFull, "out of file descriptors");
                    if !self.spare.refuse_one(listener, &farewell) {
                        warn!("out of file descriptors: pausing accept for {ACCEPT_PAUSE:?}");
                        self.pause_accepting(Instant::now());
                        return Progress::Drained;
                    }
                    debug!("out of file descriptors: refused a connection with server_full");
                }
                Err(e) => {
                    if net::accept_failed(&e) == AcceptFailed::Pause {
                        self.pause_accepting(Instant::now());
                        return Progress::Drained;
                    }
                }
            }
        }
        Progress::MoreLeft
    }

    /// A connection was accepted: make it non-blocking, tell the Hub, start watching it.
    pub fn on_peer_connected(&mut self, stream: TcpStream, addr: SocketAddr) {
        let fd = stream.as_raw_fd();
        if let Some(reason) = self.peers.readiness.refuse_fd(fd) {
            // This loop cannot watch that descriptor: say so (best effort) and close it.
            debug!("refusing a connection on fd {fd}: {reason}");
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write(&error_frame(ErrorCode::ServerFull, &reason));
            return;
        }
        let setup = stream
            .set_nonblocking(true)
            .and_then(|()| net::configure_accepted(&stream, &self.args.socket));
        if let Err(e) = setup {
            debug!("dropping a new connection: {e}");
            return;
        }
        let id = self
            .hub
            .connect_from(Instant::now(), addr.ip(), &mut self.outbox);
        let peer = Peer::new(stream, self.args.decoder(), self.args.send_queue());
        if let Err(e) = self.peers.insert(id, peer) {
            warn!("cannot watch {id}: {e}");
            self.close_peer(id);
        }
        // A refusal (`server_full`) is this connection's first frame and its close.
        self.carry_out();
        debug!("{id} connected (fd {fd}, {} open)", self.peers.len());
    }

    /// The peer's socket is readable: read what is there (at most `reads_per_event` times) and
    /// hand each complete line to the Hub, carrying out each one's actions before the next.
    /// `read_closed`: the event said the client shut down its side (see [`Ready`](crate::Ready)).
    pub fn on_peer_ready_recv(&mut self, id: ConnId, read_closed: bool) -> Progress {
        let edge = self.peers.readiness.trigger() == Trigger::Edge;
        for _ in 0..self.peers.readiness.trigger().reads_per_event() {
            let Some(peer) = self.peers.get_mut(id) else {
                return Progress::Closed;
            };
            let n = match (&peer.socket).read(&mut self.read_buf) {
                Ok(0) => {
                    self.on_peer_hung_up(id);
                    return Progress::Closed;
                }
                Ok(n) if peer.is_open() => {
                    // The decoder leaves the peer while its lines go through the Hub: they
                    // borrow from it and from the read buffer, and the Hub's frames go to the
                    // peers (this one included) meanwhile.
                    let mut decoder = std::mem::take(&mut peer.decoder);
                    // One read may hold half a line or fifty: the decoder sorts that out.
                    // The rule of chat-core's executor: each request's actions are carried out
                    // (queued, not yet written) before the next request is handled.
                    chat_core::handle_lines(
                        &mut self.hub,
                        id,
                        decoder.feed_ref(&self.read_buf[..n]),
                        Instant::now(),
                        &mut self.outbox,
                        &mut self.peers,
                    );
                    if let Some(peer) = self.peers.get_mut(id) {
                        peer.decoder = decoder;
                    }
                    self.close_failed();
                    n
                }
                Ok(n) => n, // closing: input is read only to be discarded
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("{id} read error: {e}");
                    self.close_peer(id);
                    return Progress::Closed;
                }
            };
            // Edge-triggered, "read until EAGAIN" need not cost a read that only says EAGAIN:
            // a read that did not fill the buffer took all the socket had (Linux copies all it
            // has queued, up to the length asked), and what arrives after it is a new edge.
            // Except an EOF that came along with this data: it will not be one, so with the
            // event's `read_closed` we read on to it. (nginx reads the same way.)
            if edge && n < self.read_buf.len() && !read_closed {
                return Progress::Drained;
            }
        }
        Progress::MoreLeft
    }

    /// The peer's socket is writable (or its queue got frames): write as much of the queue as
    /// the kernel takes (see `Peers::flush`).
    pub fn on_peer_ready_send(&mut self, id: ConnId) {
        if let Err(e) = self.peers.flush(id) {
            debug!("{id} write error: {e}");
            self.close_peer(id);
        }
    }

    /// The client sent EOF (its FIN). It leaves the Hub at once; if frames are still queued for
    /// it (a client may half-close after its last request and wait for the replies), it gets
    /// them before we close (PROTOCOL.md, guarantee 7).
    pub fn on_peer_hung_up(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        debug!("{id} hung up");
        if peer.queue.is_empty() || peer.state == crate::peers::PeerState::Lingering {
            return self.close_peer(id); // nothing left to send: free the descriptor now
        }
        let was_open = peer.is_open();
        peer.hung_up = true;
        if was_open {
            self.hub.disconnect(id, &mut self.outbox);
            self.carry_out();
        }
        // Nothing more to read: stop watching for input, or a level-triggered loop would be
        // woken again and again by the same EOF.
        if let Err(e) = self.peers.update_interest(id) {
            debug!("{id}: {e}");
            return self.close_peer(id);
        }
        self.peers.begin_close(id, Instant::now());
    }

    /// Does what the Hub asked, in order (chat-core's executor, with the peers as its sink).
    pub fn carry_out(&mut self) {
        chat_core::carry_out(&mut self.hub, &mut self.outbox, &mut self.peers);
        self.close_failed();
    }

    /// Writes every queue that got frames this turn: one flush per peer per turn, however
    /// many frames it got. Closing a peer here can produce new actions: loop until quiet.
    pub fn write_out(&mut self) {
        let mut to_flush = std::mem::take(&mut self.to_flush);
        loop {
            self.carry_out();
            self.peers.take_dirty(&mut to_flush);
            if to_flush.is_empty() {
                break;
            }
            for id in to_flush.drain(..) {
                self.on_peer_ready_send(id);
            }
        }
        self.to_flush = to_flush; // its allocation serves the next turn
    }

    /// Time passed: enforce the idle timeout, drop closing peers that lingered too long,
    /// resume accepting after a pause, and start the shutdown once it is requested.
    pub fn on_tick(&mut self, now: Instant) {
        if self.shutdown.is_requested() && self.stop_deadline.is_none() {
            self.begin_shutdown(now);
        }
        self.hub_deadline = self.hub.tick(now, &mut self.outbox);
        self.carry_out();
        self.peers.drop_lingering(now);
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            self.watch_listener(true);
        }
    }

    /// Closes `id` now. An open peer's departure is reported to the Hub (its room gets `left`).
    pub fn close_peer(&mut self, id: ConnId) {
        let Some(peer) = self.peers.remove(id) else {
            return;
        };
        if peer.is_open() {
            self.hub.disconnect(id, &mut self.outbox);
            self.carry_out();
        }
        debug!("{id} closed ({} open)", self.peers.len());
        // Dropping `peer` closes the socket (which also takes it out of an epoll set).
    }

    /// Closes the peers whose socket failed while frames were being queued (`--flush
    /// per-frame`).
    fn close_failed(&mut self) {
        for id in self.peers.take_failed() {
            self.close_peer(id);
        }
    }

    fn pause_accepting(&mut self, now: Instant) {
        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
        self.watch_listener(false);
    }

    /// Accepting paused or resumed: the listener leaves the interest set, or comes back (which,
    /// edge-triggered, reports the connections that queued up meanwhile).
    fn watch_listener(&mut self, on: bool) {
        let Some(listener) = &self.listener else {
            return;
        };
        let fd = listener.as_raw_fd();
        let readiness = &mut self.peers.readiness;
        let done = match on {
            true => readiness.watch(fd, Token::Listener, Interest::READ),
            false => readiness.unwatch(fd, Token::Listener),
        };
        if let Err(e) = done {
            warn!("cannot change the listener's interest: {e}");
        }
    }

    /// SIGINT/SIGTERM: stop accepting, say `shutting_down` to everyone, and give the flush
    /// [`STOP_GRACE`] before the loop ends.
    fn begin_shutdown(&mut self, now: Instant) {
        info!("shutting down: {} connections to close", self.peers.len());
        if self.listener.take().is_some() {
            // Dropped: closed, so new connections are refused by the kernel.
            self.peers.readiness.forget(Token::Listener);
        }
        self.hub.shutdown(&mut self.outbox);
        self.carry_out();
        self.stop_deadline = Some(now + STOP_GRACE);
    }
}
