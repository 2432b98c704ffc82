//! Carrying out what the Hub asked, the end of each turn, and the end of each connection.
//!
//! The steps are chat-epoll's (`servers/poll/src/callbacks.rs`): the Hub's frames are queued
//! during the turn and written once at its end, a closing connection is flushed, half-closed
//! and given [`CLOSE_LINGER`] to hang up, and a shutdown gives everyone `shutting_down` and
//! [`SHUTDOWN_FLUSH`] to receive it. What differs is that "write" and "half-close" are
//! submissions whose completions come later, and that closing must wait for the kernel to hand
//! back every operation on the connection (`conn.rs`).

use crate::conn::ConnState;
use crate::token::Token;
use crate::{Accepting, Server};
use chat_core::{Action, ConnId, Frame};
use io_uring::{opcode, squeue, types};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// How long a closing connection may take to read its last frames and hang up before we drop it.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// After SIGTERM, how long we keep flushing `shutting_down` before exiting anyway (the spec
/// gives 2 s in all; the rest is margin for the process to exit).
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(1500);

/// How long accepting pauses after running out of slots or memory. A `static`: the kernel reads
/// the timeout's duration from our memory when it takes the submission, and a static is at the
/// same address for the whole run.
static ACCEPT_BACKOFF: types::Timespec = types::Timespec::new().nsec(100_000_000);

impl Server {
    /// Does what the Hub asked, in order. Closing a connection whose backlog overflowed makes
    /// the Hub tell its room `left`, which adds actions: hence the loop.
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

    /// Submits one write for each connection whose output changed this turn and has no write
    /// in flight: all the frames it got this turn leave in one `writev`. Closing connections
    /// here can produce new actions: loop until quiet.
    pub(crate) fn write_out(&mut self) {
        loop {
            self.carry_out();
            if self.dirty.is_empty() {
                return;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            for id in dirty.drain(..) {
                self.start_write(id);
            }
            self.dirty = dirty;
        }
    }

    fn start_write(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.dirty = false;
        if conn.state == ConnState::Closing {
            return;
        }
        if let Some((iovecs, count)) = conn.output.start_write() {
            let entry = opcode::Writev::new(types::Fixed(conn.slot), iovecs, count)
                .build()
                .user_data(Token::Write(id).encode());
            // SAFETY: the iovecs and the frames they point at stay in `conn.output` until this
            // write's completion (`on_written`); the connection is removed only after it
            // (`release`), and the ring is dropped before the connections.
            unsafe { self.ring.push(entry) };
        } else if conn.output.is_idle() && conn.state == ConnState::Flushing {
            self.finish_close(id);
        }
        // Otherwise a write is in flight: its completion marks the connection dirty again.
    }

    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn queue_frame(&mut self, id: ConnId, frame: Frame) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return; // gone already
        };
        if conn.state == ConnState::Closing {
            return;
        }
        if conn.output.push(frame).is_err() {
            // Guarantee 4: a reader this far behind is dropped, nobody waits for it.
            debug!("{id} is over --max-backlog: closing it");
            return self.close_peer(id);
        }
        self.mark_dirty(id);
    }

    /// The Hub closed `id`: flush its output, then half-close (see `ConnState`).
    fn begin_close(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state != ConnState::Open {
            return;
        }
        conn.state = ConnState::Flushing;
        self.lingering
            .push_back((Instant::now() + CLOSE_LINGER, id));
        self.mark_dirty(id);
    }

    /// The output of a closing connection is all written: send our FIN (it already hung up:
    /// close it now).
    fn finish_close(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.hung_up {
            return self.close_peer(id);
        }
        conn.state = ConnState::Lingering;
        conn.shutting_down = true;
        let entry = opcode::Shutdown::new(types::Fixed(conn.slot), libc::SHUT_WR)
            .build()
            .user_data(Token::Shutdown(id).encode());
        // SAFETY: a shutdown points at no memory.
        unsafe { self.ring.push(entry) };
    }

    /// The client sent EOF (its FIN). It leaves the Hub at once; if frames are still queued for
    /// it (a client may half-close after its last request and wait for the replies), it gets
    /// them before we close.
    pub(crate) fn on_peer_hung_up(&mut self, id: ConnId) {
        self.carry_out(); // whatever the Hub had for it is in its output now
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        debug!("{id} hung up");
        conn.hung_up = true;
        if conn.output.is_idle() || conn.state == ConnState::Lingering {
            return self.close_peer(id); // nothing left to send: free the slot now
        }
        if conn.is_open() {
            self.hub.disconnect(id, &mut self.outbox);
        }
        self.begin_close(id);
    }

    /// Closes `id`: it leaves the Hub (its room gets `left`), its operations in flight are
    /// cancelled, and its slot is closed once the last of them has completed (`release`).
    pub(crate) fn close_peer(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state == ConnState::Closing {
            return;
        }
        if conn.is_open() {
            self.hub.disconnect(id, &mut self.outbox);
        }
        conn.state = ConnState::Closing;
        if conn.has_ops_in_flight() {
            // Every operation on this slot: the receive, a write waiting for room, a shutdown.
            // Each one completes (with -ECANCELED, or its result if it was finishing anyway).
            let cancel = types::CancelBuilder::fd(types::Fixed(conn.slot)).all();
            let entry = opcode::AsyncCancel2::new(cancel)
                .build()
                .user_data(Token::Discard.encode());
            // SAFETY: a cancellation points at no memory.
            unsafe { self.ring.push(entry) };
        }
        self.release(id);
    }

    /// A closing connection whose operations have all completed: close its slot. Until now the
    /// kernel could still be writing our frames or receiving into the pool for it; from now on
    /// nothing refers to it, and the slot may go to the next connection.
    pub(crate) fn release(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state != ConnState::Closing || conn.has_ops_in_flight() || conn.close_submitted {
            return;
        }
        conn.close_submitted = true;
        let entry = opcode::Close::new(types::Fixed(conn.slot))
            .build()
            .user_data(Token::Close(id).encode());
        // SAFETY: a close points at no memory.
        unsafe { self.ring.push(entry) };
    }

    /// Arms again the receives that ended this turn (out of buffers, or stopped by the kernel),
    /// for connections still reading. The turn's buffers are back in the pool by now.
    pub(crate) fn rearm_receives(&mut self) {
        let mut ids = std::mem::take(&mut self.to_rearm);
        for id in ids.drain(..) {
            if self.conns.get(&id).is_some_and(|conn| conn.wants_receive()) {
                self.arm_receive(id);
            }
        }
        self.to_rearm = ids;
    }

    /// Submits the multishot accept again if it ended: at once after an error about one
    /// connection; after an error about resources, once a slot is free, behind a timeout the
    /// accept is *linked* to. The kernel then waits out the back-off and starts the accept by
    /// itself, with no turn of ours in between. (`IORING_TIMEOUT_ETIME_SUCCESS`: a timeout
    /// normally "fails" with `-ETIME` and would cancel what is linked to it.)
    pub(crate) fn resume_accepting(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let backoff = match self.accepting {
            Accepting::Rearm => false,
            Accepting::Paused if self.conns.len() < self.capacity as usize => true,
            _ => return,
        };
        let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .allocate_file_index(true)
            .build()
            .user_data(Token::Accept.encode());
        if backoff {
            let wait = opcode::Timeout::new(&ACCEPT_BACKOFF)
                .flags(types::TimeoutFlags::ETIME_SUCCESS)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(Token::AcceptBackoff.encode());
            // SAFETY: the timeout's duration is a static.
            unsafe { self.ring.push(wait) };
        }
        // SAFETY: a multishot accept into the file table points at no memory of ours.
        unsafe { self.ring.push(accept) };
        self.accepting = if backoff {
            Accepting::BackingOff
        } else {
            Accepting::Armed
        };
    }

    /// SIGINT/SIGTERM: stop accepting, say `shutting_down` to everyone, and give the flush
    /// [`SHUTDOWN_FLUSH`] before the loop ends.
    fn begin_shutdown(&mut self, now: Instant) {
        info!("shutting down: {} connections to close", self.conns.len());
        // Cancel the accept (or the back-off in front of a re-armed one). Dropping the listener
        // alone would not do: the accept in flight holds the socket open until it ends.
        for token in [Token::Accept, Token::AcceptBackoff] {
            let cancel = types::CancelBuilder::user_data(token.encode()).all();
            let entry = opcode::AsyncCancel2::new(cancel)
                .build()
                .user_data(Token::Discard.encode());
            // SAFETY: a cancellation points at no memory.
            unsafe { self.ring.push(entry) };
        }
        self.accepting = Accepting::Stopped;
        self.listener = None;
        self.hub.shutdown(&mut self.outbox);
        self.stop_deadline = Some(now + SHUTDOWN_FLUSH);
    }

    /// Time passed: enforce the idle timeout, drop closing connections that lingered too long,
    /// and start the shutdown once it is requested.
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
            let state = self.conns.get(&id).map(|conn| conn.state);
            if matches!(state, Some(ConnState::Flushing | ConnState::Lingering)) {
                debug!("{id} did not finish closing in {CLOSE_LINGER:?}: dropped");
                self.close_peer(id);
            }
        }
    }

    /// Sets (or moves) the loop's timer for the earliest deadline.
    pub(crate) fn set_timer(&mut self, now: Instant) {
        let earliest = [
            self.hub_deadline,
            self.lingering.front().map(|&(deadline, _)| deadline),
            self.stop_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(entry) = self.timer.set(earliest, now) {
            // SAFETY: the kernel copies the timer's duration when it takes the submission, and
            // the `LoopTimer` keeps it boxed until then (and longer).
            unsafe { self.ring.push(entry) };
        }
    }

    /// Whether the loop is done: shutting down, and every connection has been flushed and its
    /// FIN sent (or the time is up). What is left in flight ends with the ring.
    pub(crate) fn finished(&self, now: Instant) -> bool {
        let Some(deadline) = self.stop_deadline else {
            return false;
        };
        let all_flushed = self.conns.values().all(|conn| {
            conn.state == ConnState::Closing
                || (conn.state == ConnState::Lingering && !conn.shutting_down)
        });
        now >= deadline || all_flushed
    }
}
