//! The Hub's side of the loop: carrying out what it asked, connections leaving it, accepting,
//! time, and the shutdown.
//!
//! The steps are chat-epoll's (chat-readiness' `callbacks.rs`), with the same names: the
//! Outbox is carried out by chat-core's executor after each request, into [`Peers`] as the
//! [`Sink`](chat_core::Sink); frames are written once at the end of the turn; a closing
//! connection is flushed, half-closed and given `CLOSE_LINGER` to hang up; a shutdown gives
//! everyone `shutting_down` and [`STOP_GRACE`] to receive it. What differs is that "write",
//! "half-close" and "close" are submissions whose completions come later (`peers.rs`).
//!
//! [`Peers`]: crate::peers::Peers

use crate::peers::PeerState;
use crate::token::Token;
use crate::{Accepting, Server};
use chat_core::shutdown::STOP_GRACE;
use chat_core::{time, ConnId};
use io_uring::{opcode, squeue, types};
use std::os::fd::AsRawFd;
use std::time::Instant;
use tracing::{debug, info};

impl Server {
    /// Does what the Hub asked, in order (chat-core's executor, with the peers as its sink).
    pub(crate) fn carry_out(&mut self) {
        chat_core::carry_out(&mut self.hub, &mut self.outbox, &mut self.peers);
    }

    /// Closes `id` now: it is torn down (its operations cancelled, its slot closed after their
    /// completions), and an open peer's departure is reported to the Hub (its room gets `left`).
    pub(crate) fn close_peer(&mut self, id: ConnId) {
        let was_open = self.peers.get(id).is_some_and(|peer| peer.is_open());
        self.peers.tear_down(id);
        if was_open {
            self.hub.disconnect(id, &mut self.outbox);
            self.carry_out();
        }
    }

    /// The client sent EOF (its FIN). It leaves the Hub at once; if frames are still queued for
    /// it (a client may half-close after its last request and wait for the replies), it gets
    /// them before we close (PROTOCOL.md, guarantee 7).
    pub(crate) fn on_peer_hung_up(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        debug!("{id} hung up");
        if peer.queue.is_empty() || peer.state == PeerState::Lingering {
            return self.close_peer(id); // nothing left to send: free the slot now
        }
        let was_open = peer.is_open();
        peer.hung_up = true;
        if was_open {
            self.hub.disconnect(id, &mut self.outbox);
            self.carry_out();
        }
        self.peers.begin_close(id, Instant::now());
    }

    /// Submits the multishot accept again if it ended: at once after an error about one
    /// connection; after running out of slots or memory, once a slot is free, behind a timeout
    /// of [`ACCEPT_PAUSE`](chat_core::net::ACCEPT_PAUSE) the accept is *linked* to. The kernel
    /// then waits out the pause and starts the accept by itself, with no turn of ours in
    /// between. (`IORING_TIMEOUT_ETIME_SUCCESS`: a timeout normally "fails" with `-ETIME` and
    /// would cancel what is linked to it.)
    pub(crate) fn resume_accepting(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let asking = self.peer_names.as_ref().map_or(0, |names| names.len());
        let in_use = self.peers.len() + asking;
        let pause = match self.accepting {
            Accepting::Rearm => false,
            Accepting::Paused if in_use < self.capacity as usize => true,
            _ => return,
        };
        let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .allocate_file_index(true)
            .build()
            .user_data(Token::Accept.encode());
        if pause {
            let wait = opcode::Timeout::new(&*self.accept_pause)
                .flags(types::TimeoutFlags::ETIME_SUCCESS)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(Token::AcceptPause.encode());
            // SAFETY: the timeout's duration is boxed in `self`, which outlives the ring.
            unsafe { self.peers.ring.push(wait) };
        }
        // SAFETY: a multishot accept into the file table points at no memory of ours.
        unsafe { self.peers.ring.push(accept) };
        self.accepting = match pause {
            true => Accepting::Resuming,
            false => Accepting::Armed,
        };
    }

    /// SIGINT/SIGTERM: stop accepting, say `shutting_down` to everyone, and give the flush
    /// [`STOP_GRACE`] before the loop ends.
    fn begin_shutdown(&mut self, now: Instant) {
        info!("shutting down: {} connections to close", self.peers.len());
        // Cancel the accept (or the pause in front of a re-armed one). Dropping the listener
        // alone would not do: the accept in flight holds the socket open until it ends.
        for token in [Token::Accept, Token::AcceptPause] {
            let cancel = types::CancelBuilder::user_data(token.encode()).all();
            let entry = opcode::AsyncCancel2::new(cancel)
                .build()
                .user_data(Token::Discard.encode());
            // SAFETY: a cancellation points at no memory.
            unsafe { self.peers.ring.push(entry) };
        }
        self.accepting = Accepting::Stopped;
        self.listener = None;
        self.hub.shutdown(&mut self.outbox);
        self.carry_out();
        self.stop_deadline = Some(now + STOP_GRACE);
    }

    /// Time passed: enforce the idle timeout, drop closing connections that lingered too long,
    /// and start the shutdown once it is requested.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        if self.shutdown.is_requested() && self.stop_deadline.is_none() {
            self.begin_shutdown(now);
        }
        self.hub_deadline = self.hub.tick(now, &mut self.outbox);
        self.carry_out();
        self.peers.drop_lingering(now);
    }

    /// Sets (or moves) the loop's timer for the earliest deadline: the Hub's next idle
    /// deadline, a closing peer's linger deadline, the shutdown deadline.
    pub(crate) fn set_timer(&mut self, now: Instant) {
        let timeout = time::until_earliest(
            now,
            [
                self.hub_deadline,
                self.peers.next_linger_deadline(),
                self.stop_deadline,
            ],
        );
        if let Some(entry) = self.timer.set(timeout, now) {
            // SAFETY: the kernel copies the timer's duration when it takes the submission, and
            // the `LoopTimer` keeps it boxed until then (and longer).
            unsafe { self.peers.ring.push(entry) };
        }
    }

    /// Whether the loop is done: shutting down, and every connection has been flushed and sent
    /// its FIN (or the time is up).
    pub(crate) fn finished(&self, now: Instant) -> bool {
        let Some(deadline) = self.stop_deadline else {
            return false;
        };
        now >= deadline || self.peers.all_flushed()
    }
}
