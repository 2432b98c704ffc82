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
//! | [`Server::on_received`] | a connection's multishot receive: data, EOF (0), or `-errno` |
//! | [`Server::on_written`] | a connection's write: how many bytes the kernel took |
//! | [`Server::on_shut_down`] | our `shutdown(SHUT_WR)`: the FIN is on its way |
//! | [`Server::on_closed`] | closing a slot: the connection is gone |
//! | [`Server::on_woken`] | the eventfd read: the signal thread woke us |
//!
//! A multishot operation posts completions with `IORING_CQE_F_MORE` while it stays armed; its
//! last completion comes without it, and the operation must be submitted again if we still
//! want it (out of buffers, an error, or the kernel deciding to stop it).

use crate::buffers;
use crate::conn::{Conn, ConnState};
use crate::outgoing::Outgoing;
use crate::token::Token;
use crate::{Accepting, Server};
use chat_core::{net, ConnId};
use io_uring::{cqueue, opcode, types};
use std::io;
use std::time::Instant;
use tracing::{debug, warn};

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
        let more = cqueue::more(flags);
        if result >= 0 {
            self.accepting = if more {
                Accepting::Armed
            } else {
                Accepting::Rearm // the kernel stopped it (a full completion queue): again
            };
            return self.on_peer_connected(result as u32);
        }
        let err = io::Error::from_raw_os_error(-result);
        self.accepting = if net::is_transient_accept_error(&err) || result == -libc::ECANCELED {
            Accepting::Rearm
        } else {
            // ENFILE: the file table is full (and the connection that found it full was closed
            // by the kernel). EMFILE, ENOMEM, ENOBUFS: the system is short of something. Wait
            // for a free slot and a back-off before trying again: retrying at once would spin.
            warn!(
                "accept failed: {err}; accepting again once a slot is free ({} of {} in use)",
                self.conns.len(),
                self.capacity
            );
            Accepting::Paused
        };
    }

    /// A connection was accepted into `slot`: tell the Hub, and arm its receive.
    fn on_peer_connected(&mut self, slot: u32) {
        let id = self.hub.connect(Instant::now(), &mut self.outbox);
        let conn = Conn::new(
            slot,
            self.args.decoder(),
            Outgoing::new(self.args.max_backlog),
        );
        self.conns.insert(id, conn);
        self.arm_receive(id);
        debug!("{id} connected (slot {slot}, {} open)", self.conns.len());
    }

    /// Submits `id`'s multishot receive: one submission for as long as it keeps reading, each
    /// completion in a buffer the kernel takes from the pool when data has arrived.
    pub(crate) fn arm_receive(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.receiving = true;
        let entry = opcode::RecvMulti::new(types::Fixed(conn.slot), buffers::GROUP)
            .build()
            .user_data(Token::Recv(id).encode());
        // SAFETY: a receive from the pool points at no memory of ours but the pool, which
        // outlives the ring.
        unsafe { self.ring.push(entry) };
    }

    /// A completion of `id`'s receive: `result` bytes in the buffer named in `flags`, EOF (0),
    /// or an error.
    pub(crate) fn on_received(&mut self, id: ConnId, result: i32, flags: u32) {
        let buffer = cqueue::buffer_select(flags);
        let Some(conn) = self.conns.get_mut(&id) else {
            // A late completion for a connection that is gone: only its buffer matters.
            if let Some(bid) = buffer {
                self.buffers.give_back(bid);
            }
            return;
        };
        if !cqueue::more(flags) {
            conn.receiving = false;
        }
        if result > 0 && conn.is_open() {
            if let Some(bid) = buffer {
                // One buffer may hold half a line or fifty: the decoder sorts that out, copying
                // only an unfinished line, so the buffer can go back at once.
                let data = self.buffers.data(bid, result as usize);
                self.lines.extend(conn.decoder.feed(data));
            }
        }
        if let Some(bid) = buffer {
            self.buffers.give_back(bid);
        }
        if conn.state == ConnState::Closing {
            return self.release(id);
        }
        if !conn.receiving {
            self.to_rearm.push(id);
        }
        match result {
            1.. => self.hand_lines_to_hub(id),
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

    /// Gives each line of the last receive to the Hub, and carries out what it asks before the
    /// next line: a member that overflowed its backlog just now has left the room for the next.
    fn hand_lines_to_hub(&mut self, id: ConnId) {
        let now = Instant::now();
        let mut lines = std::mem::take(&mut self.lines);
        for inbound in lines.drain(..) {
            self.hub.handle(id, inbound, now, &mut self.outbox);
            // This only queues frames; the writes are submitted at the end of the turn.
            self.carry_out();
        }
        self.lines = lines;
    }

    /// `id`'s write completed: the kernel took `result` bytes (maybe fewer than we gave it), or
    /// it failed. Its frames are ours again.
    pub(crate) fn on_written(&mut self, id: ConnId, result: i32) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if result <= 0 || conn.state == ConnState::Closing {
            conn.output.abandon();
            if conn.state == ConnState::Closing {
                return self.release(id);
            }
            if result < 0 {
                debug!(
                    "{id} write error: {}",
                    io::Error::from_raw_os_error(-result)
                );
            }
            return self.close_peer(id);
        }
        if conn.output.complete(result as usize) {
            self.stats.short_writes += 1;
        }
        // More frames may be waiting (or the rest of a short write), or a closing connection's
        // output is now all written: the end of the turn takes care of both.
        self.mark_dirty(id);
    }

    /// Our FIN went out (`shutdown(SHUT_WR)` completed).
    pub(crate) fn on_shut_down(&mut self, id: ConnId, result: i32) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.shutting_down = false;
        if conn.state == ConnState::Closing {
            self.release(id);
        } else if result < 0 {
            self.close_peer(id);
        }
    }

    /// The slot of `id` was closed: the kernel has freed it, and the connection is gone.
    pub(crate) fn on_closed(&mut self, id: ConnId, result: i32) {
        if result < 0 {
            warn!(
                "closing {id}'s slot failed: {}",
                io::Error::from_raw_os_error(-result)
            );
        }
        self.conns.remove(&id);
        debug!("{id} closed ({} open)", self.conns.len());
    }

    /// The eventfd read completed: the signal thread woke us (`on_tick` sees the flag). Read
    /// again, for the next signal.
    pub(crate) fn on_woken(&mut self, result: i32) {
        if result < 0 {
            // Not re-armed, so a failing read cannot spin: SIGTERM is then seen at the next
            // timer instead of at once.
            warn!(
                "the wake-up read failed: {}",
                io::Error::from_raw_os_error(-result)
            );
            return;
        }
        self.arm_wake();
    }

    /// Closes a slot no connection owns (a socket accepted while shutting down).
    fn close_slot(&mut self, slot: u32) {
        let entry = opcode::Close::new(types::Fixed(slot))
            .build()
            .user_data(Token::Discard.encode());
        // SAFETY: a close points at no memory.
        unsafe { self.ring.push(entry) };
    }
}

/// The result of an operation whose completion we do not act on (a cancellation, a close of an
/// unowned slot): cancellations that found nothing left to cancel are expected.
pub fn log_discarded(result: i32) {
    if result < 0 && result != -libc::ENOENT && result != -libc::EALREADY {
        debug!(
            "a cancellation or close failed: {}",
            io::Error::from_raw_os_error(-result)
        );
    }
}
