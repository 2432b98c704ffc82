//! What every thread shares: the Hub (behind one lock), the routing table that says which
//! reactor owns which connection, and one mailbox per reactor.
//!
//! This file is where the guarantees of `PROTOCOL.md` survive the jump to many threads:
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
//! - **Bounded backlog** (4). `--max-backlog` bounds the bytes a socket *refused*, and only the
//!   reactor that owns the socket knows what it refused: its peer's `SendQueue` refuses a frame,
//!   or a write leaves too much behind, and the reactor cuts the connection and tells the Hub
//!   ([`Shared::disconnect`]). The router does not count: bytes still on their way to the
//!   reactor have not been tried yet, and counting them cut off members that read at full speed
//!   whenever a burst was in flight.
//!
//! The Hub's actions go through chat-core's executor, with the [`Router`] as its sink: after
//! each request, under the lock.

use chat_core::sync::lock;
use chat_core::{
    carry_out, handle_lines, BacklogFull, CloseReason, ConnId, ConnIdMap, Frame, Hub, InboundRef,
    LineDecoder, Outbox, Sink,
};
use mio::{Token, Waker};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};
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
    /// The chat rules.
    hub: Hub,
    /// Which reactor owns each connection the Hub knows.
    routes: ConnIdMap<Route>,
    /// Set by the first reactor that saw SIGINT/SIGTERM. A connection accepted by another
    /// reactor a moment later must still be told `shutting_down`.
    stopped: bool,
}

/// Where a connection lives.
struct Route {
    /// The reactor that owns its socket.
    reactor: usize,
    /// Its slot in that reactor's slab.
    token: Token,
}

/// What a reactor is asked to do to one of its peers.
pub enum Order {
    /// Queue this frame.
    Send(Frame),
    /// Write what is queued, then close (the Hub's `Close`: quit, idle timeout, ...).
    Close,
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

    /// Makes sure reactor `reactor` (this mailbox's) reads its mail soon. Only the first post
    /// since it last read its mail does anything; and when the poster is that very reactor
    /// (it handled a turn's input itself, or the Hub answered one of its calls), it reads its
    /// mailbox before it next sleeps (`Reactor::next_timeout` checks `wake_pending`), so a
    /// write to its own eventfd would only buy a system call and a turn with nothing to do.
    fn wake(&self, reactor: usize) {
        if self.wake_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        if RUNNING_REACTOR.get() == Some(reactor) {
            return;
        }
        if let Err(e) = self.waker.wake() {
            tracing::error!("cannot wake a reactor: {e}");
        }
    }
}

thread_local! {
    /// The index of the reactor this thread runs, if it runs one (set by [`enter_reactor`]).
    static RUNNING_REACTOR: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the calling thread as reactor `index`'s (at the start of its loop).
pub fn enter_reactor(index: usize) {
    RUNNING_REACTOR.set(Some(index));
}

/// Orders gathered under the lock, one list per reactor, posted in one go.
struct Posting {
    /// Indexed like the reactors.
    per_reactor: Vec<Vec<(Token, ConnId, Order)>>,
}

/// The executor's sink here: turns the Hub's actions into orders for the reactors that own
/// their connections, in the Hub's order.
struct Router<'a> {
    routes: &'a mut ConnIdMap<Route>,
    posting: &'a mut Posting,
}

impl Sink for Router<'_> {
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        if let Some(route) = self.routes.get(&to) {
            let orders = &mut self.posting.per_reactor[route.reactor];
            orders.push((route.token, to, Order::Send(frame)));
        } // else: a connection we already dropped
        Ok(()) // never full here: the owning reactor judges the backlog
    }

    fn close(&mut self, conn: ConnId, _reason: CloseReason) {
        // The Hub has forgotten it; so do we.
        if let Some(route) = self.routes.remove(&conn) {
            let orders = &mut self.posting.per_reactor[route.reactor];
            orders.push((route.token, conn, Order::Close));
        }
    }

    fn cut(&mut self, conn: ConnId) {
        self.routes.remove(&conn); // (never called: `send` never refuses)
    }
}

impl Shared {
    pub fn new(hub: Hub, mailboxes: Vec<Mailbox>, pool: Option<rayon::ThreadPool>) -> Self {
        Shared {
            chat: Mutex::new(Chat {
                hub,
                routes: ConnIdMap::default(),
                stopped: false,
            }),
            mailboxes,
            pool,
        }
    }

    /// A reactor accepted a socket from `ip` and put it in slot `token`. Returns the Hub's id
    /// for it.
    pub fn connect(&self, reactor: usize, token: Token, ip: IpAddr, now: Instant) -> ConnId {
        self.call(|chat, out| {
            let id = chat.hub.connect_from(now, ip, out);
            // The route goes in before the actions are routed: a `server_full` refusal is a
            // frame for this very connection.
            chat.routes.insert(id, Route { reactor, token });
            if chat.stopped {
                // Shutdown already ran: this one (the only connection the Hub still knows) is
                // told `shutting_down` like everybody else.
                chat.hub.shutdown(out);
            }
            id
        })
    }

    /// The lines of several peers, parsed already: the chat rules run under the lock, all in
    /// one go (one lock, one post per reactor, however many peers and lines).
    pub fn handle(&self, parsed: Vec<(ConnId, Vec<InboundRef<'_>>)>, now: Instant) {
        let mut out = Outbox::new();
        let mut posting = self.posting();
        let mut chat = self.lock();
        let Chat { hub, routes, .. } = &mut *chat;
        let mut router = Router {
            routes,
            posting: &mut posting,
        };
        for (id, lines) in parsed {
            // Each request's actions are routed before the next request (chat-core's rule).
            handle_lines(hub, id, lines, now, &mut out, &mut router);
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
    pub fn shutdown(&self) {
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
        mailbox.wake(reactor);
    }

    /// Called by a reactor *before* it drains its channel: mail sent from now on wakes it
    /// again, mail sent before is drained now. No wake-up is lost.
    pub fn rearm(&self, reactor: usize) {
        self.mailboxes[reactor]
            .wake_pending
            .store(false, Ordering::SeqCst);
    }

    /// Whether mail was posted to `reactor` since it last read its mailbox.
    pub fn mail_pending(&self, reactor: usize) -> bool {
        self.mailboxes[reactor].wake_pending.load(Ordering::SeqCst)
    }

    /// Wakes every reactor (the SIGINT/SIGTERM callback).
    pub fn wake_all(&self) {
        for (reactor, mailbox) in self.mailboxes.iter().enumerate() {
            mailbox.wake(reactor);
        }
    }

    // ---- under the lock -------------------------------------------------------------------

    /// Takes the chat lock (even after a panic: chat-core's `sync::lock`).
    fn lock(&self) -> MutexGuard<'_, Chat> {
        lock(&self.chat)
    }

    /// One Hub call under the lock, its actions routed and posted before the lock is released.
    fn call<R>(&self, hub_call: impl FnOnce(&mut Chat, &mut Outbox) -> R) -> R {
        let mut out = Outbox::new();
        let mut posting = self.posting();
        let mut chat = self.lock();
        let result = hub_call(&mut chat, &mut out);
        let Chat { hub, routes, .. } = &mut *chat;
        let mut router = Router {
            routes,
            posting: &mut posting,
        };
        carry_out(hub, &mut out, &mut router);
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
                self.mailboxes[reactor].wake(reactor);
            }
        }
    }
}
