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
//!
//! Nor is the waking under the lock. A push hands back the wake-up its queue's task is owed
//! (`outbound.rs`); the sink keeps them, and `Shared::locked` gives them after the lock is
//! released. Waking a task may wake a sleeping runtime thread, a system call; a broadcast owes up
//! to one wake-up per member, and under the lock every other task would wait for all of them.

use crate::outbound::OutQueue;
use chat_core::sync::lock;
use chat_core::{
    carry_out, handle_lines, BacklogFull, CloseReason, ConnId, ConnIdMap, Frame, Hub, InboundRef,
    Outbox, Sink,
};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::Waker;
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
struct Peers {
    queues: ConnIdMap<Arc<OutQueue>>,
    /// The wakers of parked tasks whose queues got work, woken once the lock is released.
    owed: Vec<Waker>,
}

impl Sink for Peers {
    /// A push into the queue: no I/O here, and no wake-up yet.
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        if let Some(peer) = self.queues.get(&to) {
            self.owed.extend(peer.push(frame)?.into_waker());
        } // else gone already
        Ok(())
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        if let Some(peer) = self.queues.remove(&conn) {
            self.owed.extend(peer.close_after_flush().into_waker());
        }
    }

    /// Out of the table at once, so none of its later frames is queued after a gap.
    fn cut(&mut self, conn: ConnId) {
        if let Some(peer) = self.queues.remove(&conn) {
            self.owed.extend(peer.abort().into_waker());
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

    /// Runs `f` on the Hub and the queues under the lock, with an Outbox for the Hub's actions;
    /// then, with the lock released, wakes the tasks that got work.
    fn locked<T>(&self, f: impl FnOnce(&mut Hub, &mut Outbox, &mut Peers) -> T) -> T {
        let mut out = Outbox::new();
        let mut state = lock(&self.state);
        let State { hub, peers } = &mut *state;
        let result = f(hub, &mut out, peers);
        let owed = std::mem::take(&mut peers.owed);
        drop(state);
        owed.into_iter().for_each(Waker::wake);
        result
    }

    /// A connection from `ip` was accepted; `outbound` is where its frames go.
    pub fn connect(&self, outbound: Arc<OutQueue>, ip: IpAddr, now: Instant) -> ConnId {
        self.locked(|hub, out, peers| {
            let id = hub.connect_from(now, ip, out);
            // In the table before the actions run: a `server_full` refusal is a frame for it.
            peers.queues.insert(id, outbound);
            carry_out(hub, out, peers);
            id
        })
    }

    /// One read's worth of lines from `id`, parsed already (outside the lock), each request's
    /// actions carried out before the next (chat-core's rule).
    pub fn handle(&self, id: ConnId, lines: Vec<InboundRef<'_>>, now: Instant) {
        self.locked(|hub, out, peers| handle_lines(hub, id, lines, now, out, peers));
    }

    /// The peer hung up or failed. A no-op when the Hub already closed it.
    pub fn disconnect(&self, id: ConnId) {
        self.locked(|hub, out, peers| {
            if peers.queues.remove(&id).is_some() {
                hub.disconnect(id, out);
                carry_out(hub, out, peers);
            }
        });
    }

    /// Enforces the idle timeout; returns when to call again.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        self.locked(|hub, out, peers| {
            let next = hub.tick(now, out);
            carry_out(hub, out, peers);
            next
        })
    }

    /// Everybody gets `shutting_down`, then their connection closes.
    pub fn shutdown(&self) {
        self.locked(|hub, out, peers| {
            hub.shutdown(out);
            carry_out(hub, out, peers);
        });
    }
}
