//! The state every thread shares: the [`Hub`] and each connection's [`Outbound`] queue, behind
//! *one* lock.
//!
//! Why one lock around both? Guarantee 2 of the spec: every member of a room receives the room's
//! broadcasts in the same order. The Hub produces that order; it survives only if the frames
//! reach each connection's queue in the same order, so "run the request through the Hub" and
//! "queue its frames" must be one step that no other thread can interleave with. Inside the lock
//! we only touch memory (queueing a frame copies a pointer); every call returns the queues it
//! touched, and the caller sends them *after* releasing the lock (`flush_all`), so no socket is
//! ever written with the lock held.
//!
//! The cost is lock contention: every request of every client passes through this one lock, so
//! with thousands of busy clients the threads wait for it (and the kernel switches between
//! them). Parsing happens before the lock is taken and writing after it is released; what
//! remains inside is short.
//!
//! chat-pool uses this file unchanged (see `servers/pool/src/main.rs`).

use crate::outbound::{lock, Outbound};
use chat_core::{error_frame, Action, ConnId, ErrorCode, Hub, HubConfig, Inbound, Outbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The queues one call touched: to flush once the lock is released.
pub type Touched = Vec<Arc<Outbound>>;

/// The Hub and where its frames go. Always used behind a `Mutex`.
#[derive(Debug)]
pub struct Chat {
    /// The chat rules (rooms, nicknames, broadcast, idle timeout).
    hub: Hub,
    /// Each open connection's queue, by the id the Hub gave it. A connection is removed when the
    /// Hub closes it or its client goes away, so a `Send` to an id not here is dropped.
    outbound: HashMap<ConnId, Arc<Outbound>>,
    /// Set by [`Chat::shutdown`]: a connection that a thread registers afterwards (it was
    /// accepted just before the signal) is told `shutting_down` at once.
    stopping: bool,
}

impl Chat {
    pub fn new(config: HubConfig) -> Self {
        Chat {
            hub: Hub::new(config),
            outbound: HashMap::new(),
            stopping: false,
        }
    }

    /// A connection's thread starts serving it: the Hub gives it an id, or refuses it with
    /// `server_full` past `--max-conns` (then the id is `None` and the refusal is queued).
    pub fn register(&mut self, outbound: &Arc<Outbound>) -> (Option<ConnId>, Touched) {
        if self.stopping {
            let frame = error_frame(ErrorCode::ShuttingDown, "the server is shutting down");
            let _ = outbound.push(frame);
            outbound.close();
            return (None, vec![Arc::clone(outbound)]);
        }
        let mut out = Outbox::new();
        let id = self.hub.connect(Instant::now(), &mut out);
        self.outbound.insert(id, Arc::clone(outbound));
        let touched = self.carry_out(&mut out);
        ((!outbound.is_closed()).then_some(id), touched)
    }

    /// The lines one `read` brought from `id`, decoded (outside the lock) by its reader thread.
    pub fn handle(&mut self, id: ConnId, lines: Vec<Inbound>, now: Instant) -> Touched {
        let mut out = Outbox::new();
        for line in lines {
            self.hub.handle(id, line, now, &mut out);
        }
        self.carry_out(&mut out)
    }

    /// The client of `id` went away (EOF or error): its room hears `left`, and what is still
    /// queued for it is sent before hanging up. Harmless if the Hub closed `id` already.
    pub fn leave(&mut self, id: ConnId) -> Touched {
        let mut out = Outbox::new();
        self.hub.disconnect(id, &mut out);
        let mut touched = self.carry_out(&mut out);
        if let Some(outbound) = self.outbound.remove(&id) {
            outbound.close();
            touched.push(outbound);
        }
        touched
    }

    /// Enforces the idle timeout; also returns when to call again (see [`idle_timer`]).
    pub fn tick(&mut self, now: Instant) -> (Option<Instant>, Touched) {
        let mut out = Outbox::new();
        let next = self.hub.tick(now, &mut out);
        (next, self.carry_out(&mut out))
    }

    /// SIGINT/SIGTERM: every connection gets `shutting_down` and is closed.
    pub fn shutdown(&mut self) -> Touched {
        self.stopping = true;
        let mut out = Outbox::new();
        self.hub.shutdown(&mut out);
        self.carry_out(&mut out)
    }

    /// Carries out the Hub's actions, in order, while the caller still holds the lock: each
    /// frame goes to the end of its connection's queue, so every queue receives frames in the
    /// order the Hub made them. Memory only: the caller sends the returned queues afterwards.
    fn carry_out(&mut self, out: &mut Outbox) -> Touched {
        let mut touched = Vec::new();
        // Overflowing a queue disconnects that client, which makes the Hub tell its room `left`:
        // more actions, so loop until none are left.
        while !out.is_empty() {
            let mut overflowed = Vec::new();
            for action in out.drain() {
                match action {
                    Action::Send { to, frame } => {
                        let Some(outbound) = self.outbound.get(&to) else {
                            continue; // gone already
                        };
                        if outbound.push(frame).is_ok() {
                            touched.push(Arc::clone(outbound));
                        } else {
                            tracing::info!(conn = %to, "over --max-backlog; disconnecting");
                            outbound.abort();
                            self.outbound.remove(&to);
                            overflowed.push(to);
                        }
                    }
                    Action::Close { conn, reason } => {
                        tracing::debug!(%conn, ?reason, "closing");
                        if let Some(outbound) = self.outbound.remove(&conn) {
                            outbound.close(); // its last frames go out, then it hangs up
                            touched.push(outbound);
                        }
                    }
                }
            }
            for id in overflowed {
                self.hub.disconnect(id, out);
            }
        }
        touched
    }
}

/// The idle-timeout thread: calls [`Hub::tick`] when its returned deadline comes, and sleeps in
/// between. With no deadline pending it sleeps one `period`: a connection registered meanwhile
/// cannot time out sooner than that.
pub fn idle_timer(chat: &Mutex<Chat>, period: Duration) {
    loop {
        let now = Instant::now();
        let (next, touched) = {
            let mut chat = lock(chat);
            if chat.stopping {
                return;
            }
            chat.tick(now)
        };
        crate::outbound::flush_all(&touched);
        let wake_at = next.unwrap_or(now + period);
        std::thread::sleep(wake_at.saturating_duration_since(Instant::now()));
    }
}
