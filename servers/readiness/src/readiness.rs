//! The readiness API as one interface: what chat-poll and chat-epoll implement, and the only
//! thing in which they differ.
//!
//! An event loop asks the kernel one question, *which of my sockets can I use now without
//! waiting?*, and the [`Readiness`] trait is that question split into the calls every readiness
//! API has: say what to watch ([`watch`](Readiness::watch),
//! [`set_interest`](Readiness::set_interest), [`unwatch`](Readiness::unwatch),
//! [`forget`](Readiness::forget)), then sleep until something is ready
//! ([`wait`](Readiness::wait)). What the APIs differ in is *where the interest set lives*, and
//! so what each call costs:
//!
//! | call | poll(2) / select(2): the set lives in our process | epoll(7): the set lives in the kernel |
//! |---|---|---|
//! | `watch` | an entry in our table: no system call | `epoll_ctl(ADD)`: O(log n) in the kernel's red-black tree, once per socket |
//! | `set_interest` | the entry changes: no system call | `epoll_ctl(MOD)`, only when the interest changes |
//! | `unwatch` / `forget` | the entry goes | `epoll_ctl(DEL)` for `unwatch`; nothing for `forget`: closing the descriptor removes it |
//! | `wait` | the *whole* table is copied into the kernel, which checks every socket and hooks onto each one's wait queue, then copies all of it back, and we scan all of it: O(n) per call, however few are ready | `epoll_wait` copies out the kernel's ready list, which sockets fill themselves when data arrives: O(ready) per call |
//! | `refuse_fd` | select only: `fd_set` is a bitmap of FD_SETSIZE = 1024 bits, so descriptor 1024 and above cannot be watched at all | never: any descriptor number works |
//!
//! So with 10,000 quiet connections and one chatty one, every message costs poll a
//! 10,000-entry walk three times (our copy in, the kernel's check, our scan), and costs epoll one
//! ready entry. Lessons 04 and 05 measure the difference; the figures live there, not here.
//!
//! ## Level- and edge-triggered ([`Trigger`])
//! poll and select are *level-triggered*: a socket is reported by every wait for as long as it
//! is readable. Read one chunk and, if more is waiting, the next wait says so again. epoll can
//! also be *edge-triggered* (`EPOLLET`): a socket is reported when it *becomes* readable, once.
//! The loop must then read until `EAGAIN`, or remember by itself to come back: no event will
//! remind it. The loop reads [`Trigger::reads_per_event`] times per event and keeps the sockets
//! it left unfinished (see `EventLoop::wait` in `event_loop.rs`).
//!
//! ## Write interest
//! A socket is writable almost always (its kernel send buffer has room), so a loop that asked
//! to hear about writability all the time would be woken at once, every turn, for nothing. The
//! loop asks for it only while a peer's queue holds bytes the kernel refused, and stops as soon
//! as they are written.

use chat_core::ConnId;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// What a readiness event is about: the loop's name for a watched descriptor. Peers are named by
/// the Hub's `ConnId`, never by descriptor number: a number is reused as soon as a socket is
/// closed, and a stale event for it could reach the new connection; an id never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Token {
    /// The listening socket: connections are waiting to be accepted.
    Listener,
    /// The read end of the wake pipe: another thread wants the loop's attention.
    Wake,
    /// A client's socket.
    Peer(ConnId),
}

/// What to be told about one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Tell me when a read will not block (data, EOF, an error, or a connection to accept).
    pub read: bool,
    /// Tell me when a write will not block (room in the kernel's send buffer).
    pub write: bool,
}

impl Interest {
    /// Reading only: a listener, the wake pipe, a peer with nothing waiting to be written.
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
}

/// One ready descriptor, as found by a [`Readiness::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub token: Token,
    /// Data, EOF, or an error is waiting (a read finds out which).
    pub readable: bool,
    /// The kernel's send buffer has room.
    pub writable: bool,
    /// The client has shut down its sending side, or the connection is gone (`EPOLLRDHUP`,
    /// `POLLHUP`): an EOF waits behind whatever data came with it. Edge-triggered, that EOF
    /// brings no event of its own, so the loop reads on until it (see `on_peer_ready_recv`).
    pub read_closed: bool,
}

/// Level- or edge-triggered readiness (`--trigger` of chat-epoll; poll and select are always
/// level-triggered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trigger {
    /// Reported by every wait while ready: forgiving, fair for free.
    Level,
    /// Reported once per change: read until `EAGAIN`, or come back by yourself.
    Edge,
}

/// Edge-triggered: reads per readiness event before the loop moves on to other peers. It must
/// read until `EAGAIN`, but not all at once: a peer that sends without pause would starve the
/// others. A peer stopped at this budget is served again on the next turn, without sleeping.
pub const EDGE_READ_BUDGET: usize = 16;

impl Trigger {
    /// Reads per readiness event: level-triggered, one is enough (we will be told again);
    /// edge-triggered, until `EAGAIN`, up to [`EDGE_READ_BUDGET`].
    pub fn reads_per_event(self) -> usize {
        match self {
            Trigger::Level => 1,
            Trigger::Edge => EDGE_READ_BUDGET,
        }
    }
}

/// A readiness API: poll(2), select(2), epoll(7) (see the module docs for what each call costs
/// in each of them). The loop in `event_loop.rs` and the callbacks in `callbacks.rs` are written
/// against this trait only.
pub trait Readiness {
    /// How it reports readiness (the loop reads and comes back accordingly).
    fn trigger(&self) -> Trigger;

    /// Starts watching `fd` for `interest`; its events come back as `token`.
    fn watch(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Changes what `fd` is watched for (output pending or all written; input over after EOF).
    fn set_interest(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`, which stays open (the listener, while accepting is paused).
    fn unwatch(&mut self, fd: RawFd, token: Token) -> io::Result<()>;

    /// `token`'s descriptor is about to be closed: forget it.
    fn forget(&mut self, token: Token);

    /// Sleeps until a watched descriptor is ready or `timeout` passes (`None`: no timeout), and
    /// appends what is ready to `ready`. A signal interrupting the sleep is not an error: it
    /// returns with nothing ready.
    fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()>;

    /// Why this API cannot watch descriptor `fd` at all, if it cannot (select's FD_SETSIZE):
    /// the loop then answers that client `server_full` instead of watching it.
    fn refuse_fd(&self, fd: RawFd) -> Option<String>;
}
