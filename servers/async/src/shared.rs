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
//! sharding the state or a dedicated task owning the Hub, not an async mutex.)
//!
//! Why the frames are pushed *under* the lock: it keeps the spec's guarantee 2. Two broadcasts
//! to a room are decided in lock order, and pushed into every member's queue before the lock is
//! released, so every member's queue has them in the same order. What is *not* under the lock is
//! the writing: each connection's writer task drains its own queue into its own socket, so a slow
//! socket costs the lock nothing (the tokio chat example holds its lock across the whole
//! broadcast loop of writes; that is the mistake we avoid).

use crate::outbound::Outbound;
use chat_core::{Action, ConnId, Hub, Inbound, Outbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Shared by the accept loop, every connection's tasks and the idle-timeout ticker.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    hub: Hub,
    /// The outbound side of every connection the Hub knows. An entry leaves when the Hub
    /// forgets the connection (its `Close`, a disconnect, a backlog overflow), so "is it still
    /// here?" tells whether `hub.disconnect` is still due.
    peers: HashMap<ConnId, Arc<Outbound>>,
}

impl Shared {
    pub fn new(hub: Hub) -> Self {
        Shared {
            state: Mutex::new(State {
                hub,
                peers: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection was accepted; `outbound` is where its frames go.
    pub fn connect(&self, outbound: Arc<Outbound>, now: Instant) -> ConnId {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let id = state.hub.connect(now, &mut out);
        // In the table before the actions run: a `server_full` refusal is a frame for it.
        state.peers.insert(id, outbound);
        state.carry_out(&mut out);
        id
    }

    /// One read's worth of lines from `id`, parsed already (outside the lock).
    pub fn handle(&self, id: ConnId, lines: Vec<Inbound>, now: Instant) {
        let mut out = Outbox::new();
        let mut state = self.lock();
        for line in lines {
            state.hub.handle(id, line, now, &mut out);
            // Carried out after each request, not after the read: a member cut off by this
            // request's broadcast has left the room before the next request is handled.
            state.carry_out(&mut out);
        }
    }

    /// The peer hung up or failed. A no-op when the Hub already closed it.
    pub fn disconnect(&self, id: ConnId) {
        let mut out = Outbox::new();
        let mut state = self.lock();
        if state.peers.remove(&id).is_some() {
            state.hub.disconnect(id, &mut out);
            state.carry_out(&mut out);
        }
    }

    /// Enforces the idle timeout; returns when to call again.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        let mut out = Outbox::new();
        let mut state = self.lock();
        let next = state.hub.tick(now, &mut out);
        state.carry_out(&mut out);
        next
    }

    /// Everybody gets `shutting_down`, then their connection closes.
    pub fn shut_down(&self) {
        let mut out = Outbox::new();
        let mut state = self.lock();
        state.hub.shutdown(&mut out);
        state.carry_out(&mut out);
    }
}

impl State {
    /// Carries out the Hub's actions: queue frames, mark connections closing. No I/O happens
    /// here, only pushes into queues and wake-ups of writer tasks.
    fn carry_out(&mut self, out: &mut Outbox) {
        loop {
            let mut overflowed = Vec::new();
            for action in out.drain() {
                match action {
                    Action::Send { to, frame } => {
                        let full = match self.peers.get(&to) {
                            Some(peer) => peer.push(frame).is_err(),
                            None => false,
                        };
                        if full {
                            // Out of the table at once, so none of its later frames is queued
                            // after a gap.
                            if let Some(peer) = self.peers.remove(&to) {
                                peer.abort();
                            }
                            overflowed.push(to);
                        }
                    }
                    Action::Close { conn, .. } => {
                        if let Some(peer) = self.peers.remove(&conn) {
                            peer.close_after_flush();
                        }
                    }
                }
            }
            if overflowed.is_empty() {
                return;
            }
            // Guarantee 4: a reader too slow for its room is disconnected, and its room is told
            // it left (which queues more frames: hence the loop).
            for id in overflowed {
                tracing::info!("{id}: backlog over --max-backlog; disconnecting");
                self.hub.disconnect(id, out);
            }
        }
    }
}
