//! The state every thread shares: the [`Hub`] and each connection's [`Outbound`] queue, behind
//! *one* lock.
//!
//! Why one lock around both? Guarantee 2 of `PROTOCOL.md`: every member of a room receives the
//! room's broadcasts in the same order. The Hub produces that order; it survives only if the
//! frames reach each connection's queue in the same order, so "run the request through the Hub"
//! and "queue its frames" must be one step that no other thread can interleave with. Inside the
//! lock we only touch memory (queueing a frame copies a pointer): chat-core's executor carries
//! out the Outbox after each request into [`Outbounds`], the sink, which remembers the queues it
//! touched; the caller sends them *after* releasing the lock
//! ([`flush_all`](crate::outbound::flush_all)), so no socket is ever written with the lock held.
//!
//! The cost is lock contention: every request of every client passes through this one lock, so
//! with thousands of busy clients the threads wait for it (and the kernel switches between
//! them). Parsing happens before the lock is taken and writing after it is released; what
//! remains inside is short.

use crate::outbound::Outbound;
use chat_core::sync::lock;
use chat_core::{
    carry_out, error_frame, handle_lines, BacklogFull, CloseReason, ConnId, ConnIdMap, ErrorCode,
    Frame, Hub, HubConfig, Inbound, Outbox, Sink,
};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The queues one call touched: to flush once the lock is released.
pub type Touched = Vec<Arc<Outbound>>;

/// The Hub and where its frames go. Always used behind a `Mutex`.
#[derive(Debug)]
pub struct Chat {
    /// The chat rules (rooms, nicknames, broadcast, idle timeout).
    hub: Hub,
    /// Where the Hub's frames go: every open connection's queue.
    outbounds: Outbounds,
    /// Set by [`Chat::shutdown`]: a connection that a thread registers afterwards (it was
    /// accepted just before the signal) is told `shutting_down` at once.
    stopping: bool,
}

/// Every open connection's queue, by the id the Hub gave it: the [`Sink`] of this server.
#[derive(Debug, Default)]
pub struct Outbounds {
    /// A connection leaves when the Hub closes it, it overflows, or its client goes away, so a
    /// `Send` to an id not here is dropped.
    by_id: ConnIdMap<Arc<Outbound>>,
    /// The queues that got frames or a close since the last [`Outbounds::take_touched`].
    touched: Touched,
}

impl Outbounds {
    fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// No more frames for `id`: what is queued still goes out, then it hangs up.
    fn hang_up(&mut self, id: ConnId) {
        if let Some(outbound) = self.by_id.remove(&id) {
            outbound.close();
            self.touched.push(outbound);
        }
    }
}

impl Sink for Outbounds {
    /// Memory only: the frame goes to the end of the queue, in Hub order.
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        let Some(outbound) = self.by_id.get(&to) else {
            return Ok(()); // gone already
        };
        outbound.push(frame)?;
        self.touched.push(Arc::clone(outbound));
        Ok(())
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        self.hang_up(conn);
    }

    /// Hung up at once; its reader thread wakes with EOF and ends.
    fn cut(&mut self, conn: ConnId) {
        if let Some(outbound) = self.by_id.remove(&conn) {
            outbound.abort();
        }
    }
}

impl Chat {
    pub fn new(config: HubConfig) -> Self {
        Chat {
            hub: Hub::new(config),
            outbounds: Outbounds::default(),
            stopping: false,
        }
    }

    /// A connection's thread starts serving it: the Hub gives it an id, or refuses it with
    /// `server_full` past `--max-conns` or `--max-conns-per-ip` (then the id is `None` and the
    /// refusal is queued).
    pub fn connect(&mut self, outbound: &Arc<Outbound>, ip: IpAddr) -> (Option<ConnId>, Touched) {
        if self.stopping {
            let frame = error_frame(ErrorCode::ShuttingDown, "the server is shutting down");
            let _ = outbound.push(frame);
            outbound.close();
            return (None, vec![Arc::clone(outbound)]);
        }
        let mut out = Outbox::new();
        let id = self.hub.connect_from(Instant::now(), ip, &mut out);
        self.outbounds.by_id.insert(id, Arc::clone(outbound));
        carry_out(&mut self.hub, &mut out, &mut self.outbounds);
        let accepted = (!outbound.is_closed()).then_some(id);
        (accepted, self.outbounds.take_touched())
    }

    /// The lines one `read` brought from `id`, decoded (outside the lock) by its reader thread,
    /// each request's actions carried out before the next (chat-core's rule).
    pub fn handle(&mut self, id: ConnId, lines: Vec<Inbound>, now: Instant) -> Touched {
        let mut out = Outbox::new();
        handle_lines(&mut self.hub, id, lines, now, &mut out, &mut self.outbounds);
        self.outbounds.take_touched()
    }

    /// The client of `id` went away (EOF or error): its room hears `left`, and what is still
    /// queued for it is sent before hanging up. Harmless if the Hub closed `id` already.
    pub fn disconnect(&mut self, id: ConnId) -> Touched {
        let mut out = Outbox::new();
        self.hub.disconnect(id, &mut out);
        carry_out(&mut self.hub, &mut out, &mut self.outbounds);
        self.outbounds.hang_up(id);
        self.outbounds.take_touched()
    }

    /// Enforces the idle timeout; also returns when to call again (see [`idle_timer`]).
    pub fn tick(&mut self, now: Instant) -> (Option<Instant>, Touched) {
        let mut out = Outbox::new();
        let next = self.hub.tick(now, &mut out);
        carry_out(&mut self.hub, &mut out, &mut self.outbounds);
        (next, self.outbounds.take_touched())
    }

    /// SIGINT/SIGTERM: every connection gets `shutting_down` and is closed.
    pub fn shutdown(&mut self) -> Touched {
        self.stopping = true;
        let mut out = Outbox::new();
        self.hub.shutdown(&mut out);
        carry_out(&mut self.hub, &mut out, &mut self.outbounds);
        self.outbounds.take_touched()
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
