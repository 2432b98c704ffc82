//! The callbacks of one event loop, with the names they have in chat-readiness (chat-poll and
//! chat-epoll): what happens when the listener is readable (`on_listener_ready`,
//! `on_peer_connected`), when a peer's socket is readable (`on_peer_ready_recv`), when a peer
//! hung up (`on_peer_hung_up`), when a turn's input goes to the workers (`hand_off`, the one
//! callback chat-epoll has no need for), when the Hub's orders arrive (`carry_out`), and when
//! queued frames are written (`write_out`, `on_peer_ready_send`).

use super::{mark_dirty, Reactor, LISTENER, MAIL_PER_TURN};
use crate::peer::Peer;
use crate::shared::{Mail, Order};
use crate::worker::{self, Batch};
use chat_core::net::{self, AcceptFailed, ACCEPT_PAUSE, CLOSE_LINGER};
use chat_core::{ConnId, Flush, LineDecoder};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

impl Reactor {
    // ---- accepting ------------------------------------------------------------------------

    /// The listener is readable: accept until `WouldBlock` (edge-triggered: the next event
    /// comes only with the next *new* connection).
    pub(super) fn on_listener_ready(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let accepted = match &self.listener {
                Some(listener) => listener.accept(),
                None => return,
            };
            match accepted {
                Ok((socket, addr)) => self.on_peer_connected(socket, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors (or worse): the listener leaves the registry for
                    // ACCEPT_PAUSE rather than wake us again at once, forever.
                    if net::accept_failed(&e) == AcceptFailed::Pause {
                        return self.pause_accepting();
                    }
                }
            }
        }
    }

    fn on_peer_connected(&mut self, mut socket: TcpStream, addr: SocketAddr) {
        if let Err(e) = net::configure_accepted(&socket, &self.args.socket) {
            tracing::debug!("socket options: {e}");
        }
        let entry = self.peers.vacant_entry();
        let token = Token(entry.key());
        // Readable and writable from the start, never changed: see `Peer::blocked`.
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut socket, token, interest) {
            tracing::warn!("cannot register a new connection: {e}");
            return;
        }
        let id = self
            .shared
            .connect(self.index, token, addr.ip(), Instant::now());
        let (decoder, queue) = (self.args.decoder(), self.args.send_queue());
        entry.insert(Peer::new(id, socket, decoder, queue));
        tracing::debug!("{id} connected on reactor {}", self.index);
    }

    fn pause_accepting(&mut self) {
        if let Some(listener) = &mut self.listener {
            let _ = self.poll.registry().deregister(listener);
        }
        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
    }

    pub(super) fn resume_accepting(&mut self) {
        self.accept_paused_until = None;
        if let Some(listener) = &mut self.listener {
            let _ = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE);
        }
        // The waiting connections will not make a new edge: accept them now.
        self.on_listener_ready();
    }

    /// SIGINT/SIGTERM: close the listener (the kernel refuses new clients from now on) and
    /// have the Hub tell everyone `shutting_down`: each reactor gets its peers' orders by mail.
    pub(super) fn begin_shutdown(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_paused_until = None;
        self.shared.shutdown();
    }

    // ---- input: socket -> worker ----------------------------------------------------------

    pub(super) fn on_peer_ready_recv(&mut self, token: Token, read_closed: bool) {
        let Some(peer) = self.peers.get_mut(token.0) else {
            return;
        };
        if peer.lingering {
            if peer.drain(&mut self.scratch) {
                self.peers.remove(token.0); // it hung up: the close ends without a reset
            }
            return;
        }
        if peer.closing || peer.hung_up {
            return; // a closing peer's input is drained once its output is flushed
        }
        peer.receive(&mut self.scratch, read_closed);
        self.process_input(token);
    }

    /// Queues the peer's buffered input for this turn's hand-off, unless its previous batch is
    /// still on a worker; once everything a departed peer sent is handled, disconnects it.
    fn process_input(&mut self, token: Token) {
        let Some(peer) = self.peers.get_mut(token.0) else {
            return;
        };
        if peer.closing || peer.in_flight() {
            return; // (the decoder's return brings us back here)
        }
        if peer.inbound.is_empty() {
            if peer.hung_up {
                self.on_peer_hung_up(token);
            }
            return;
        }
        if let Some(decoder) = peer.decoder.take() {
            self.batches.push(Batch {
                token,
                id: peer.id,
                decoder,
                bytes: std::mem::take(&mut peer.inbound),
            });
        }
    }

    /// The client sent its FIN (or its socket failed), and every line it sent before is
    /// answered: now its room may hear it left, and it gets what is still queued for it
    /// (PROTOCOL.md, guarantee 7) before we close.
    fn on_peer_hung_up(&mut self, token: Token) {
        let Some(peer) = self.peers.get(token.0) else {
            return;
        };
        let id = peer.id;
        self.shared.disconnect(id);
        self.begin_close(token, id);
    }

    /// Hands this turn's input to the workers, or handles it here when it is too little to be
    /// worth the trip: a hand-off costs a wake-up on each side (and rayon's workers spin a
    /// while before sleeping), which a few small requests do not repay.
    pub(super) fn hand_off(&mut self) {
        if self.batches.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.batches);
        let bytes: usize = batches.iter().map(|batch| batch.bytes.len()).sum();
        match &self.shared.pool {
            Some(pool) if bytes >= self.offload_min => {
                worker::spawn_jobs(&self.shared, pool, self.index, batches);
            }
            _ => {
                for (token, id, decoder) in worker::run_batches(&self.shared, batches) {
                    self.on_batch_done(token, id, decoder);
                }
            }
        }
    }

    /// A worker is done with the peer's previous batch: read what we left unread, queue the
    /// next batch.
    fn on_batch_done(&mut self, token: Token, id: ConnId, decoder: LineDecoder) {
        let Some(peer) = self.peers.get_mut(token.0).filter(|p| p.id == id) else {
            return; // it left meanwhile
        };
        peer.decoder = Some(decoder);
        if peer.unread && !peer.closing {
            // We cannot know whether an EOF waits behind what we left unread: read on until
            // the socket says `WouldBlock` (as if the event had said `read_closed`).
            peer.receive(&mut self.scratch, true);
        }
        self.process_input(token);
    }

    // ---- output: Hub -> socket ------------------------------------------------------------

    pub(super) fn read_mail(&mut self) {
        // Re-arm the waker *before* draining: mail sent from now on wakes us again.
        self.shared.rearm(self.index);
        for _ in 0..MAIL_PER_TURN {
            match self.mailbox.try_recv() {
                Ok(Mail::Orders(orders)) => self.carry_out(orders),
                Ok(Mail::BatchesDone(decoders)) => {
                    for (token, id, decoder) in decoders {
                        self.on_batch_done(token, id, decoder);
                    }
                }
                Err(_) => {
                    self.mail_left = false;
                    return;
                }
            }
        }
        self.mail_left = true;
    }

    /// Carries out the Hub's orders for this reactor's peers, in the Hub's order. Only queues:
    /// writing waits for the end of the turn.
    fn carry_out(&mut self, orders: Vec<(Token, ConnId, Order)>) {
        for (token, id, order) in orders {
            let Some(peer) = self.peers.get_mut(token.0).filter(|p| p.id == id) else {
                continue; // it left meanwhile (its slot may hold a newer peer)
            };
            match order {
                Order::Send(frame) => {
                    if peer.queue.push(frame).is_err() {
                        // Guarantee 4: its socket refused more than --max-backlog bytes. It is
                        // dropped with what it had not taken, and its room is told it left.
                        tracing::info!("{id}: over --max-backlog; disconnecting");
                        self.peers.remove(token.0);
                        self.shared.disconnect(id);
                        continue;
                    }
                    mark_dirty(&mut self.dirty, peer, token);
                }
                Order::Close => self.begin_close(token, id),
            }
        }
    }

    /// The connection must end: write what is queued, then close (after a lingering close: see
    /// `Peer::half_close`). A client that does not read its last frames, or does not hang up,
    /// gets [`CLOSE_LINGER`] to do so, then it is dropped anyway.
    fn begin_close(&mut self, token: Token, id: ConnId) {
        let Some(peer) = self.peers.get_mut(token.0) else {
            return;
        };
        peer.closing = true;
        mark_dirty(&mut self.dirty, peer, token);
        self.closing
            .push_back((Instant::now() + CLOSE_LINGER, token, id));
    }

    /// Writes every queue that got frames this turn: one flush per peer per turn, however many
    /// frames it got.
    pub(super) fn write_out(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &token in &dirty {
            if let Some(peer) = self.peers.get_mut(token.0) {
                peer.dirty = false;
            }
            self.on_peer_ready_send(token);
        }
        dirty.clear();
        self.dirty = dirty; // keeps the allocation
    }

    /// The peer's socket is writable (or its queue got frames): write as much as the kernel
    /// takes. What is left waits for the WRITABLE event that comes when the kernel has room.
    pub(super) fn on_peer_ready_send(&mut self, token: Token) {
        let Some(peer) = self.peers.get_mut(token.0) else {
            return;
        };
        match peer.send() {
            Ok(Flush::Done) if peer.closing => {
                // FIN, then linger until the client hangs up (or the `closing` deadline). With
                // `--linger 0` the close is the abort that was asked for, at once: a FIN first
                // would leave the `TIME-WAIT` it is meant to avoid (lesson 09).
                if self.args.socket.aborts_on_close() || peer.half_close(&mut self.scratch) {
                    self.peers.remove(token.0);
                }
            }
            Ok(Flush::Done) => peer.blocked = false,
            Ok(Flush::Pending) => peer.blocked = true,
            Err(e) => {
                // The peer is gone, or refused more than --max-backlog bytes. If the Hub still
                // knows it, its room is told.
                let peer = self.peers.remove(token.0);
                tracing::debug!("{} write error: {e}", peer.id);
                self.shared.disconnect(peer.id);
            }
        }
    }
}
