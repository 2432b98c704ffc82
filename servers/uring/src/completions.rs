//! What the loop does with each completion.
//!
//! These are chat-epoll's callbacks turned inside out. A readiness callback is told "you may
//! read now" and makes the call itself; a completion handler is told "the receive you asked for
//! is done: 87 bytes, in buffer 5". The work (copying the bytes, taking a connection off the
//! listen queue, writing to the socket) has already happened, in the kernel, in the
//! `io_uring_enter` that ended the last turn:
//!
//! | handler | completion of |
//! |---|---|
//! | [`Server::on_accepted`] | the multishot accept: a new connection, in a slot of the file table |
//! | [`Server::on_peer_named`] | asking a new connection for its address (`--max-conns-per-ip`) |
//! | [`Server::on_received`] | a connection's multishot receive: data, EOF (0), or `-errno` |
//! | [`Server::on_written`] | a connection's write: how many bytes the kernel took |
//! | [`Server::on_shut_down`] | our `shutdown(SHUT_WR)`: the FIN is on its way |
//! | [`Server::on_closed`] | closing a slot: the connection is gone |
//! | [`Server::on_woken`] | the eventfd read: the signal thread woke us |
//!
//! A multishot operation posts completions with `IORING_CQE_F_MORE` while it stays armed; its
//! last completion comes without it, and the operation must be submitted again if we still
//! want it (out of buffers, an error, or the kernel deciding to stop it).

use crate::outgoing::Outgoing;
use crate::peers::{Peer, PeerState};
use crate::token::Token;
use crate::{Accepting, Server};
use chat_core::net::{self, AcceptFailed};
use chat_core::{ConnId, Flush};
use io_uring::{cqueue, opcode, types};
use std::io;
use std::net::IpAddr;
use std::time::Instant;
use tracing::{debug, info, warn};

impl Server {
    /// The multishot accept produced a connection (`result`: its slot in the file table), or
    /// ended with an error.
    pub(crate) fn on_accepted(&mut self, result: i32, flags: u32) {
        if self.accepting == Accepting::Stopped {
            if result >= 0 {
                // Accepted while the cancellation was on its way: not ours to serve.
                self.close_slot(result as u32);
            }
            return;
        }
        if result >= 0 {
            self.accepting = match cqueue::more(flags) {
                true => Accepting::Armed,
                false => Accepting::Rearm, // the kernel stopped it (a full completion queue)
            };
            let slot = result as u32;
            return match &mut self.peer_names {
                // `--max-conns-per-ip`: the Hub needs the address first (`peer_name.rs`).
                Some(names) => {
                    let entry = names.ask(slot);
                    // SAFETY: the answer's buffer stays in `self.peer_names` until its
                    // completion (`on_peer_named`), and the ring is dropped before it.
                    unsafe { self.peers.ring.push(entry) };
                }
                None => self.on_peer_connected(slot, None),
            };
        }
        // The accept-error ladder. ENFILE here means the file table is full (and the connection
        // that found it full was closed by the kernel); EMFILE, ENOMEM, ENOBUFS: the system is
        // short of something. Retrying at once would spin: wait for a free slot and a pause.
        let err = io::Error::from_raw_os_error(-result);
        self.accepting = match net::accept_failed(&err) {
            AcceptFailed::Retry => Accepting::Rearm,
            AcceptFailed::Pause => {
                info!(
                    "accepting again once a slot is free ({} of {} in use)",
                    self.peers.len(),
                    self.capacity
                );
                Accepting::Paused
            }
        };
    }

    /// The address of the connection in `slot` is known (or why not): admit it.
    pub(crate) fn on_peer_named(&mut self, slot: u32, result: i32) {
        let Some(names) = &mut self.peer_names else {
            return;
        };
        let answer = names.answer(slot, result);
        if self.accepting == Accepting::Stopped {
            return self.close_slot(slot); // shutting down: not ours to serve any more
        }
        match answer {
            Ok(ip) => self.on_peer_connected(slot, Some(ip)),
            Err(e) => {
                // Most likely the client reset the connection before we asked.
                debug!("dropping a new connection: its address: {e}");
                self.close_slot(slot);
            }
        }
    }

    /// A connection was accepted into `slot` (from `ip`, when the address was asked for): tell
    /// the Hub, arm its receive. A refusal (`server_full`) is its first frame and its close.
    fn on_peer_connected(&mut self, slot: u32, ip: Option<IpAddr>) {
        let now = Instant::now();
        let id = match ip {
            Some(ip) => self.hub.connect_from(now, ip, &mut self.outbox),
            None => self.hub.connect(now, &mut self.outbox),
        };
        let queue = Outgoing::new(self.args.max_backlog);
        self.peers
            .insert(id, Peer::new(slot, self.args.decoder(), queue));
        self.carry_out();
        debug!("{id} connected (slot {slot}, {} open)", self.peers.len());
    }

    /// A completion of `id`'s receive: `result` bytes in the buffer named in `flags`, EOF (0),
    /// or an error.
    pub(crate) fn on_received(&mut self, id: ConnId, result: i32, flags: u32) {
        let buffer = cqueue::buffer_select(flags);
        let Some(peer) = self.peers.get_mut(id) else {
            // A late completion for a connection that is gone: only its buffer matters.
            if let Some(bid) = buffer {
                self.buffers.give_back(bid);
            }
            return;
        };
        let ended = !cqueue::more(flags);
        if ended {
            peer.receiving = false;
        }
        if result > 0 {
            peer.fed = true;
        }
        if let (1.., Some(bid), true) = (result, buffer, peer.is_open()) {
            // One buffer may hold half a line or fifty: the decoder sorts that out, copying
            // only an unfinished line, so the buffer can go back at once.
            let data = self.buffers.data(bid, result as usize);
            self.lines.extend(peer.decoder.feed(data));
        }
        if let Some(bid) = buffer {
            self.buffers.give_back(bid);
        }
        if peer.state == PeerState::Closing {
            return self.peers.release(id);
        }
        if ended {
            self.peers.receive_ended(id);
        }
        match result {
            1.. => {
                // The rule of chat-core's executor: each request's actions are carried out
                // (queued, not yet written) before the next request is handled.
                let mut lines = std::mem::take(&mut self.lines);
                chat_core::handle_lines(
                    &mut self.hub,
                    id,
                    lines.drain(..),
                    Instant::now(),
                    &mut self.outbox,
                    &mut self.peers,
                );
                self.lines = lines;
            }
            0 => self.on_peer_hung_up(id),
            e if e == -libc::ENOBUFS => {
                // The pool was empty: the data waits in the socket until the receive is armed
                // again, at the end of this turn, when this turn's buffers are back.
                self.stats.out_of_buffers += 1;
                debug!("{id}: receive out of buffers, armed again");
            }
            e => {
                debug!("{id} receive error: {}", io::Error::from_raw_os_error(-e));
                self.close_peer(id);
            }
        }
    }

    /// `id`'s write completed: the kernel took `result` bytes (maybe fewer than we gave it), or
    /// it failed. Its frames are ours again.
    pub(crate) fn on_written(&mut self, id: ConnId, result: i32) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if result <= 0 || peer.state == PeerState::Closing {
            peer.queue.abandon();
            if peer.state == PeerState::Closing {
                return self.peers.release(id);
            }
            if result < 0 {
                let err = io::Error::from_raw_os_error(-result);
                debug!("{id} write error: {err}");
            }
            return self.close_peer(id);
        }
        if peer.queue.complete(result as usize) == Flush::Pending {
            self.stats.short_writes += 1;
        }
        // More frames may be waiting (or the rest of a short write), or a closing peer's queue
        // is now all written: the end of the turn takes care of both.
        self.peers.mark_dirty(id);
    }

    /// Our FIN went out (`shutdown(SHUT_WR)` completed).
    pub(crate) fn on_shut_down(&mut self, id: ConnId, result: i32) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.shutting_down = false;
        if peer.state == PeerState::Closing {
            self.peers.release(id);
        } else if result < 0 {
            self.close_peer(id);
        }
    }

    /// The slot of `id` was closed: the kernel has freed it, and the connection is gone.
    pub(crate) fn on_closed(&mut self, id: ConnId, result: i32) {
        if result < 0 {
            let err = io::Error::from_raw_os_error(-result);
            warn!("closing {id}'s slot failed: {err}");
        }
        self.peers.remove(id);
        debug!("{id} closed ({} open)", self.peers.len());
    }

    /// The eventfd read completed: the signal thread woke us (`on_tick` sees the flag). Read
    /// again, for the next signal.
    pub(crate) fn on_woken(&mut self, result: i32) {
        if result < 0 {
            // Not re-armed, so a failing read cannot spin: SIGTERM is then seen at the next
            // timer instead of at once.
            let err = io::Error::from_raw_os_error(-result);
            warn!("the wake-up read failed: {err}");
            return;
        }
        self.arm_wake();
    }

    /// Closes a slot no connection owns (accepted while shutting down, or whose address could
    /// not be had).
    fn close_slot(&mut self, slot: u32) {
        let entry = opcode::Close::new(types::Fixed(slot))
            .build()
            .user_data(Token::Discard.encode());
        // SAFETY: a close points at no memory.
        unsafe { self.peers.ring.push(entry) };
    }
}

/// The result of an operation whose completion we do not act on (a cancellation, a close of an
/// unowned slot): cancellations that found nothing left to cancel are expected.
pub fn log_discarded(result: i32) {
    if result < 0 && result != -libc::ENOENT && result != -libc::EALREADY {
        let err = io::Error::from_raw_os_error(-result);
        debug!("a cancellation or close failed: {err}");
    }
}
