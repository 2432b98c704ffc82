//! The state every task shares: the Hub, and each connection's outbound queue, behind one
//! *std* `Mutex`.
//!
//! Why `std::sync::Mutex` and not `tokio::sync::Mutex` (the argument of mini-redis's `db.rs`):
//! an async mutex is for a lock that must be held *across* an `.await`; it costs more to take,
//! and holding a lock across an `.await` is exactly what we must not do here (a task parked in
//! the middle of a broadcast would stall every other connection). Our critical sections are
//! short, synchronous and never `.await`: run a few Hub calls, push the resulting frames into
//! queues. A std mutex, taken briefly, simply blocks the worker thread for those microseconds,
//! which is cheaper than any alternative. (If it were contended enough to hurt, the fix would be
//! sharding the state or a dedicated task owning the Hub, not an async mutex. Given eight cores,
//! chat traffic does contend it: benches/results/2026-12-04-16-cores and lesson 07.)
//!
//! Why the frames are pushed *under* the lock: it keeps guarantee 2 of `PROTOCOL.md`. Two broadcasts
//! to a room are decided in lock order, and pushed into every member's queue before the lock is
//! released, so every member's queue has them in the same order. What is *not* under the lock is
//! the writing: each connection's task drains its own queue into its own socket, so a slow
//! socket costs the lock nothing (the tokio chat example holds its lock across the whole
//! broadcast loop of writes; that is the mistake we avoid).

use crate::outbound::OutQueue;
use chat_core::sync::lock;
use chat_core::{
    carry_out, handle_lines, BacklogFull, CloseReason, ConnId, ConnIdMap, Frame, Hub, InboundRef,
    Outbox, Sink,
};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Shared by the accept loop, every connection's tasks and the idle-timeout ticker.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The chat rules.
    hub: Hub,
    /// Where the Hub's frames go.
    peers: Peers,
}

/// The outbound queue of every connection the Hub knows: the executor's sink. An entry leaves
/// when the Hub forgets the connection (its `Close`, a disconnect, a backlog overflow), so "is
/// it still here?" tells whether `hub.disconnect` is still due.
#[derive(Debug, Default)]
struct Peers(ConnIdMap<Arc<OutQueue>>);

impl Sink for Peers {
    /// A push into the queue (and a wake-up of the connection's task if it is waiting for
    /// frames): no I/O here.
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        match self.0.get(&to) {
            Some(peer) => peer.push(frame),
            None => Ok(()), // gone already
        }
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        if let Some(peer) = self.0.remove(&conn) {
            peer.close_after_flush();
        }
    }

    /// Out of the table at once, so none of its later frames is queued after a gap.
    fn cut(&mut self, conn: ConnId) {
        if let Some(peer) = self.0.remove(&conn) {
            peer.abort();
        }
    }
}

impl Shared {
    pub fn new(hub: Hub) -> Self {
        Shared {
            state: Mutex::new(State {
                hub,
                peers: Peers::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A connection from `ip` was accepted; `outbound` is where its frames go.
    pub fn connect(&self, outbound: Arc<OutQueue>, ip: IpAddr, now: Instant) -> ConnId {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let State { hub, peers } = &mut *state;
        let id = hub.connect_from(now, ip, &mut out);
        // In the table before the actions run: a `server_full` refusal is a frame for it.
        peers.0.insert(id, outbound);
        carry_out(hub, &mut out, peers);
        id
    }

    /// One read's worth of lines from `id`, parsed already (outside the lock), each request's
    /// actions carried out before the next (chat-core's rule).
    pub fn handle(&self, id: ConnId, lines: Vec<InboundRef<'_>>, now: Instant) {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let State { hub, peers } = &mut *state;
        handle_lines(hub, id, lines, now, &mut out, peers);
    }

    /// The peer hung up or failed. A no-op when the Hub already closed it.
    pub fn disconnect(&self, id: ConnId) {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let State { hub, peers } = &mut *state;
        if peers.0.remove(&id).is_some() {
            hub.disconnect(id, &mut out);
            carry_out(hub, &mut out, peers);
        }
    }

    /// Enforces the idle timeout; returns when to call again.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let State { hub, peers } = &mut *state;
        let next = hub.tick(now, &mut out);
        carry_out(hub, &mut out, peers);
        next
    }

    /// Everybody gets `shutting_down`, then their connection closes.
    pub fn shutdown(&self) {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let State { hub, peers } = &mut *state;
        hub.shutdown(&mut out);
        carry_out(hub, &mut out, peers);
    }
}
