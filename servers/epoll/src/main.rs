//! # chat-epoll: one thread, every socket, epoll(7), level- or edge-triggered
//!
//! The same server as chat-poll, with the readiness call that scales. The loop, its callbacks
//! and the per-connection state are `chat-readiness` (shared with chat-poll); this file is the
//! one thing that makes it chat-epoll: [`Epoll`], an implementation of the `Readiness` trait
//! with epoll(7). `diff` it with chat-poll's `main.rs`: what differs is the I/O model.
//!
//! ## What epoll costs: O(ready) per wait
//! An epoll instance is an interest set kept *in the kernel* plus a *ready list*: when data
//! arrives on a socket, the kernel puts that socket on the list, and `epoll_wait` only copies
//! the list out. So there is no interest set in this file: a socket is registered once
//! (`epoll_ctl(ADD)`), changed only when what we want from it changes (`epoll_ctl(MOD)`), and
//! forgotten when it is closed. The `Readiness` trait's docs compare that with poll call by
//! call; lesson 05 measures it.
//!
//! ## Level- vs edge-triggered (`--trigger`)
//! - **level** (the default, and what poll/select do): a socket is reported by every
//!   `epoll_wait` for as long as it is readable.
//! - **edge** (`EPOLLET`): a socket is reported when it *becomes* readable. Read only part of
//!   what arrived and no new event comes until the client sends *more*. The loop therefore
//!   reads until `EAGAIN` (up to a budget per event) and comes back by itself to what it left
//!   (chat-readiness' `Trigger`). `tests/burst.rs` catches a reader that stops early.
//!
//! Edge-triggered, a peer is registered once, for input *and* output (`EPOLLIN | EPOLLOUT |
//! EPOLLRDHUP | EPOLLET`), and never changed: an edge is reported only when something changes,
//! so watching output costs nothing while the socket stays writable (measured against watching
//! it only while refused: benches/results/2026-12-04-16-cores, "EPOLLOUT"), and a socket that
//! refused bytes reports the moment it has room again. Level-triggered, an always-on `EPOLLOUT`
//! would be reported by every wait, so there the loop turns it on (`epoll_ctl(MOD)`) only while
//! the kernel refuses bytes. One system call fewer each time a slow reader's queue fills and
//! drains, and one fewer read per event too: with `EPOLLRDHUP` the event says when an EOF waits
//! behind the data, so the loop can stop at a short read instead of reading again to hear
//! `EAGAIN` (chat-readiness' `on_peer_ready_recv`).
//!
//! ## Run it, poke it, watch it
//! ```text
//! cargo run -p chat-epoll -- --addr 127.0.0.1:8888 --trigger edge
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! ```
//! - `strace -e trace=epoll_wait,epoll_ctl -p $(pgrep chat-epoll)`: each wait returns only the
//!   ready sockets; level-triggered, `EPOLL_CTL_MOD` appears when a slow reader's queue fills
//!   and drains (edge-triggered, never: `EPOLL_CTL_ADD` says why).
//! - `cat /proc/$(pgrep chat-epoll)/fdinfo/FD` (FD: the `eventpoll` one in `ls -l
//!   /proc/$(pgrep chat-epoll)/fd`): the kernel's interest set, one line per socket.
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | epoll_ctl, epoll_wait, level vs edge: the readiness API (what differs from chat-poll) |
//! | `sys.rs` | the `unsafe` calls: epoll_create1, epoll_ctl, epoll_wait |
//! | chat-readiness | the loop, the callbacks, the peers (shared with chat-poll) |
//!
//! Why the system calls directly rather than the `polling` crate (whose `PollMode::Edge` would
//! do): the lesson is these three calls and their flags. A wrapper would hide `EPOLLET`, the
//! token in `epoll_event.u64` and the `MOD` that re-arms, which are what a student must see.

mod sys;

use chat_core::{net, ConnId};
use chat_readiness::{Interest, LoopArgs, Readiness, Ready, Token, Trigger};
use clap::Parser;
use std::io;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::time::Duration;
use sys::{EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP};

/// A chat server on one thread, with epoll(7).
#[derive(Parser, Debug)]
#[command(name = "chat-epoll", version)]
struct Args {
    #[command(flatten)]
    common: LoopArgs,

    /// Level-triggered (told while a socket is ready) or edge-triggered (told when it becomes
    /// ready, once: the loop must then read and accept until EAGAIN).
    #[arg(long, value_enum, default_value_t = Trigger::Level)]
    trigger: Trigger,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    tracing::info!("readiness: epoll, {:?}-triggered", args.trigger);
    chat_readiness::serve(args.common, Epoll::new(args.trigger)?)
}

/// The epoll token of the listener (peers use their `ConnId`, which never gets this high).
const LISTENER_TOKEN: u64 = u64::MAX;
/// The epoll token of the wake pipe.
const WAKE_TOKEN: u64 = u64::MAX - 1;

// ---- the readiness API: epoll(7) --------------------------------------------------------------

/// An epoll instance: the interest set lives in the kernel.
struct Epoll {
    /// The instance (its descriptor).
    epoll: sys::Epoll,
    /// `--trigger`: every registration carries `EPOLLET` in edge mode.
    trigger: Trigger,
    /// Room for what one `epoll_wait` returns.
    events: Vec<sys::epoll_event>,
}

impl Readiness for Epoll {
    fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// `epoll_ctl(ADD)`: once per socket.
    fn watch(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.epoll
            .add(fd, self.flags(token, interest), encode(token))
    }

    /// `epoll_ctl(MOD)`: only when the interest changes, and level-triggered only: an
    /// edge-triggered peer watches everything from the start (see `flags`).
    fn set_interest(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if self.trigger == Trigger::Edge && matches!(token, Token::Peer(_)) {
            return Ok(());
        }
        self.epoll
            .modify(fd, self.flags(token, interest), encode(token))
    }

    /// `epoll_ctl(DEL)`: the listener, while accepting is paused.
    fn unwatch(&mut self, fd: RawFd, _token: Token) -> io::Result<()> {
        self.epoll.delete(fd)
    }

    /// Nothing to do: closing a descriptor takes it out of every epoll set.
    fn forget(&mut self, _token: Token) {}

    /// Only the ready sockets come back: O(ready), whatever the number of connections.
    fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.epoll.wait(&mut self.events, timeout)?;
        for event in &self.events {
            let (flags, token) = (event.events, event.u64); // copies: the struct is packed
            ready.push(Ready {
                token: decode(token),
                readable: flags & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR) as u32 != 0,
                writable: flags & EPOLLOUT as u32 != 0,
                read_closed: flags & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) as u32 != 0,
            });
        }
        Ok(())
    }

    /// epoll takes any descriptor number.
    fn refuse_fd(&self, _fd: RawFd) -> Option<String> {
        None
    }
}

impl Epoll {
    fn new(trigger: Trigger) -> io::Result<Self> {
        Ok(Epoll {
            epoll: sys::Epoll::new()?,
            trigger,
            events: Vec::with_capacity(sys::MAX_EVENTS),
        })
    }

    /// The events to register for `interest`, with `EPOLLET` when edge-triggered (level is
    /// epoll's default). An edge-triggered peer is watched for input, output and the client's
    /// FIN (`EPOLLRDHUP`) whatever `interest` says: see the module docs.
    fn flags(&self, token: Token, interest: Interest) -> u32 {
        if self.trigger == Trigger::Edge && matches!(token, Token::Peer(_)) {
            return (EPOLLET | EPOLLIN | EPOLLOUT | EPOLLRDHUP) as u32;
        }
        let mut flags = match self.trigger {
            Trigger::Level => 0,
            Trigger::Edge => EPOLLET as u32,
        };
        if interest.read {
            flags |= EPOLLIN as u32;
        }
        if interest.write {
            flags |= EPOLLOUT as u32;
        }
        flags
    }
}

/// The token a registration carries, in the `u64` that `epoll_wait` hands back with each event.
fn encode(token: Token) -> u64 {
    match token {
        Token::Listener => LISTENER_TOKEN,
        Token::Wake => WAKE_TOKEN,
        Token::Peer(id) => id.0,
    }
}

fn decode(token: u64) -> Token {
    match token {
        LISTENER_TOKEN => Token::Listener,
        WAKE_TOKEN => Token::Wake,
        id => Token::Peer(ConnId(id)),
    }
}
