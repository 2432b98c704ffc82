//! What every thread shares: the Hub (behind one lock), the routing table that says which
//! reactor owns which connection, and one mailbox per reactor.
//!
//! This file is where the spec's guarantees survive the jump to many threads:
//!
//! - **One order per room** (2). Every Hub call happens under the `chat` lock, and its actions
//!   are *routed and posted under that same lock*. A mailbox is a FIFO channel, so each reactor
//!   receives orders in lock order: if broadcast A was decided before broadcast B, every member
//!   gets A before B, whichever reactor owns it.
//! - **Replies in request order** (1). A connection has at most one batch of lines on a worker
//!   at a time (its decoder travels with the batch, see `worker.rs`), so its lines reach the Hub
//!   in the order they were read, and their replies are posted in that order.
//! - **Nothing lost** (3). A frame is addressed by connection id and routed to the reactor that
//!   owns the socket; the route exists from `connect` until the Hub forgets the connection.
//! - **Bounded backlog** (4). Each route counts the bytes routed to its connection and not yet
//!   written (`unsent`: in the mailbox or in the `SendQueue`); the reactor subtracts what it
//!   writes. The limit is checked here, under the lock, when the frame is routed: the connection
//!   is cut and the Hub told *before the next request is handled*, exactly as a single-threaded
//!   loop would, so its room hears `left` at a deterministic point.

use chat_core::{Action, ConnId, Frame, Hub, Inbound, LineDecoder, Outbox};
use mio::{Token, Waker};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Everything the reactors and the workers share (behind an `Arc`).
pub struct Shared {
    /// The chat state. One lock for the whole Hub: a chat request is tiny (a few hash-map
    /// operations and one JSON encode), so the lock is held for microseconds, and one lock is
    /// what makes "one order per room" easy to argue. (Sharding rooms across locks would scale
    /// further, but `private` and `join_room` touch two rooms: a lesson for another day.)
    chat: Mutex<Chat>,
    /// One mailbox per reactor, indexed like the reactors.
    mailboxes: Vec<Mailbox>,
    /// The worker pool; `None` with `--workers 0`: each reactor then runs the batches itself
    /// (the baseline that shows what the hand-off costs).
    pub pool: Option<rayon::ThreadPool>,
}

/// The state behind the lock.
struct Chat {
    hub: Hub,
    /// Which reactor owns each connection the Hub knows.
    routes: HashMap<ConnId, Route>,
    /// `--max-backlog`.
    max_backlog: usize,
    /// Set by the first reactor that saw SIGINT/SIGTERM. A connection accepted by another
    /// reactor a moment later must still be told `shutting_down`.
    stopped: bool,
}

/// Where a connection lives, and how much output it has not taken yet.
struct Route {
    reactor: usize,
    token: Token,
    /// Bytes routed to it and not yet written; shared with its reactor's `Peer`.
    unsent: Arc<AtomicUsize>,
}

/// What a reactor is asked to do to one of its peers.
pub enum Order {
    /// Queue this frame (its bytes are already counted in `unsent`).
    Send(Frame),
    /// Write what is queued, then close (the Hub's `Close`: quit, idle timeout, ...).
    Close,
    /// Close at once, dropping what is queued: its backlog went over `--max-backlog`.
    Cut,
}

/// What a reactor finds in its mailbox.
pub enum Mail {
    /// Orders for this reactor's peers, in the order the Hub decided them. The token says which
    /// slab slot; the id guards against a slot since reused by a newer peer.
    Orders(Vec<(Token, ConnId, Order)>),
    /// A worker finished a job: each peer's decoder comes back, and the reactor may send that
    /// peer's next bytes.
    BatchesDone(Vec<(Token, ConnId, LineDecoder)>),
}

/// The way into one reactor: a channel, plus a [`Waker`] because the reactor sleeps in
/// `epoll_wait`, not on the channel.
pub struct Mailbox {
    sender: Sender<Mail>,
    waker: Waker,
    /// Whether a wake-up is already on its way. A wake is a system call (a write to an
    /// eventfd); a hundred batches finishing while the reactor is busy need only one.
    wake_pending: AtomicBool,
}

impl Mailbox {
    pub fn new(sender: Sender<Mail>, waker: Waker) -> Self {
        Mailbox {
            sender,
            waker,
            wake_pending: AtomicBool::new(false),
        }
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                tracing::error!("cannot wake a reactor: {e}");
            }
        }
    }
}

/// Orders gathered under the lock, one list per reactor, posted in one go.
struct Posting {
    per_reactor: Vec<Vec<(Token, ConnId, Order)>>,
}

impl Shared {
    pub fn new(
        hub: Hub,
        max_backlog: usize,
        mailboxes: Vec<Mailbox>,
        pool: Option<rayon::ThreadPool>,
    ) -> Self {
        Shared {
            chat: Mutex::new(Chat {
                hub,
                routes: HashMap::new(),
                max_backlog,
                stopped: false,
            }),
            mailboxes,
            pool,
        }
    }

    /// A reactor accepted a socket and put it in slot `token`. Returns the Hub's id for it and
    /// its `unsent` counter.
    pub fn connect(
        &self,
        reactor: usize,
        token: Token,
        now: Instant,
    ) -> (ConnId, Arc<AtomicUsize>) {
        let unsent = Arc::new(AtomicUsize::new(0));
        let route = Route {
            reactor,
            token,
            unsent: Arc::clone(&unsent),
        };
        let id = self.call(|chat, out| {
            let id = chat.hub.connect(now, out);
            // The route goes in before the actions are routed: a `server_full` refusal is a
            // frame for this very connection.
            chat.routes.insert(id, route);
            if chat.stopped {
                // Shutdown already ran: this one (the only connection the Hub still knows) is
                // told `shutting_down` like everybody else.
                chat.hub.shutdown(out);
            }
            id
        });
        (id, unsent)
    }

    /// The lines of several peers, parsed already: the chat rules run under the lock, all in
    /// one go (one lock, one post per reactor, however many peers and lines).
    pub fn handle(&self, parsed: Vec<(ConnId, Vec<Inbound>)>, now: Instant) {
        let mut out = Outbox::new();
        let mut posting = self.posting();
        let mut chat = self.lock();
        for (id, lines) in parsed {
            for line in lines {
                chat.hub.handle(id, line, now, &mut out);
                // Routed after each request, not after the batch: a member cut off by this
                // request's broadcast has left the room before the next request is handled.
                chat.route(&mut out, &mut posting);
            }
        }
        self.post(posting);
        drop(chat);
    }

    /// The peer is gone (EOF, error): its room is told `left`. A no-op if the Hub already
    /// forgot it.
    pub fn disconnect(&self, id: ConnId) {
        self.call(|chat, out| {
            if chat.routes.remove(&id).is_some() {
                chat.hub.disconnect(id, out);
            }
        });
    }

    /// Enforces the idle timeout; returns when to call again.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        self.call(|chat, out| chat.hub.tick(now, out))
    }

    /// SIGINT/SIGTERM: every connection gets `shutting_down` and a close. Every reactor calls
    /// it; the first one does it.
    pub fn shut_down(&self) {
        self.call(|chat, out| {
            if !chat.stopped {
                chat.stopped = true;
                chat.hub.shutdown(out);
            }
        });
    }

    /// Sends one mail to a reactor, outside the lock (its order against the Hub's orders is
    /// already fixed: the same thread posted those first).
    pub fn mail(&self, reactor: usize, mail: Mail) {
        let mailbox = &self.mailboxes[reactor];
        // An error means the reactor has exited (we are stopping): nothing to deliver.
        let _ = mailbox.sender.send(mail);
        mailbox.wake();
    }

    /// Called by a reactor *before* it drains its channel: mail sent from now on wakes it
    /// again, mail sent before is drained now. No wake-up is lost.
    pub fn rearm(&self, reactor: usize) {
        self.mailboxes[reactor]
            .wake_pending
            .store(false, Ordering::SeqCst);
    }

    /// Wakes every reactor (the SIGINT/SIGTERM callback).
    pub fn wake_all(&self) {
        for mailbox in &self.mailboxes {
            mailbox.wake();
        }
    }

    // ---- under the lock -------------------------------------------------------------------

    /// Takes the chat lock. A thread that panicked while holding it left the Hub in some state;
    /// we keep serving rather than take every other connection down with it.
    fn lock(&self) -> MutexGuard<'_, Chat> {
        self.chat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One Hub call under the lock, its actions routed and posted before the lock is released.
    fn call<R>(&self, hub_call: impl FnOnce(&mut Chat, &mut Outbox) -> R) -> R {
        let mut out = Outbox::new();
        let mut posting = self.posting();
        let mut chat = self.lock();
        let result = hub_call(&mut chat, &mut out);
        chat.route(&mut out, &mut posting);
        self.post(posting);
        drop(chat);
        result
    }

    fn posting(&self) -> Posting {
        Posting {
            per_reactor: (0..self.mailboxes.len()).map(|_| Vec::new()).collect(),
        }
    }

    /// Sends each reactor its orders. Called *under the lock*: that is what makes every
    /// reactor receive the Hub's decisions in the order they were made. (Waking is a syscall
    /// at most, and usually only an atomic swap.)
    fn post(&self, posting: Posting) {
        for (reactor, orders) in posting.per_reactor.into_iter().enumerate() {
            if !orders.is_empty() {
                // An error means the reactor has exited (we are stopping).
                let _ = self.mailboxes[reactor].sender.send(Mail::Orders(orders));
                self.mailboxes[reactor].wake();
            }
        }
    }
}

impl Chat {
    /// Turns the Hub's actions into orders for the reactors that own their connections, and
    /// enforces `--max-backlog` on the way. Cutting a connection makes the Hub tell its room
    /// `left`, which adds actions: hence the loop.
    fn route(&mut self, out: &mut Outbox, posting: &mut Posting) {
        while !out.is_empty() {
            let mut batch = std::mem::take(out);
            for action in batch.drain() {
                match action {
                    Action::Send { to, frame } => {
                        let Some(route) = self.routes.get(&to) else {
                            continue; // a connection we already dropped
                        };
                        let unsent = route.unsent.fetch_add(frame.len(), Ordering::SeqCst);
                        if unsent + frame.len() <= self.max_backlog {
                            posting.per_reactor[route.reactor].push((
                                route.token,
                                to,
                                Order::Send(frame),
                            ));
                            continue;
                        }
                        // Guarantee 4: a reader too slow for its room is cut off, unsent output
                        // and all, and nobody waits for it.
                        tracing::info!("{to}: backlog over --max-backlog; disconnecting");
                        if let Some(route) = self.routes.remove(&to) {
                            posting.per_reactor[route.reactor].push((route.token, to, Order::Cut));
                        }
                        self.hub.disconnect(to, out);
                    }
                    Action::Close { conn, .. } => {
                        // The Hub has forgotten it; so do we.
                        if let Some(route) = self.routes.remove(&conn) {
                            posting.per_reactor[route.reactor].push((
                                route.token,
                                conn,
                                Order::Close,
                            ));
                        }
                    }
                }
            }
        }
    }
}
