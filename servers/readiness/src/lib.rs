//! # chat-readiness: the event loop that chat-poll and chat-epoll share
//!
//! One thread, every socket non-blocking, and one system call that sleeps until some of them
//! are ready; then, for each ready socket, only what can be done without waiting. chat-poll and
//! chat-epoll are that loop with two different ways of *learning* which sockets are ready, so
//! the loop is written once, here, against the [`Readiness`] trait, and each server's `main.rs`
//! is its implementation of the trait and nothing else: `diff` the two and you see only the
//! I/O model.
//!
//! Why a crate of its own rather than a module of chat-core: chat-core is the chat without the
//! I/O (the Hub never touches a socket, so it serves a blocking server and a tokio runtime
//! alike), and this loop *is* I/O: it reads, writes, accepts and sleeps. The thread servers,
//! the reactor and the async server have loops of their own shape; only the two single-threaded
//! readiness servers share this one.
//!
//! | file | concept |
//! |---|---|
//! | `readiness.rs` | the [`Readiness`] trait: what each call costs with poll, select and epoll; level and edge |
//! | `event_loop.rs` | [`EventLoop`]: what the loop owns, and one turn: wait, dispatch, tick, write out |
//! | `callbacks.rs` | what to do with a ready socket: `on_listener_ready`, `on_peer_ready_recv`, ... |
//! | `peers.rs` | one connection's state ([`Peer`]), and the table of them, which is the Hub's [`Sink`](chat_core::Sink) |
//! | `os.rs` | the self-pipe that wakes the loop, and the spare descriptor for EMFILE |

mod callbacks;
mod event_loop;
mod os;
mod peers;
mod readiness;
#[cfg(test)]
mod tests;

pub use callbacks::ACCEPT_BATCH;
pub use event_loop::{EventLoop, Progress};
pub use os::{SpareFd, WakePipe};
pub use peers::{FlushPolicy, Peer, PeerState, Peers};
pub use readiness::{Interest, Readiness, Ready, Token, Trigger, EDGE_READ_BUDGET};

use chat_core::{net, ServerArgs, Shutdown};
use std::io;

/// The flags of both readiness servers: the common ones, and when frames are written.
#[derive(clap::Args, Debug, Clone)]
pub struct LoopArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// When queued frames are written: once per loop turn (one writev carries all of a peer's
    /// frames) or right after each frame (one write per frame, to measure the difference).
    #[arg(long, value_enum, default_value_t = FlushPolicy::PerTurn)]
    pub flush: FlushPolicy,
}

/// Runs a chat server on `readiness` until SIGINT/SIGTERM, in the startup order every server
/// follows: raise the fd limit, bind, install the signal handler (it writes into the loop's wake
/// pipe), announce `listening on`, serve.
pub fn serve<R: Readiness>(args: LoopArgs, readiness: R) -> io::Result<()> {
    let fd_limit = net::raise_fd_limit()?;
    let listener = net::bind_listener(args.server.addr, &args.server.socket)?;
    let addr = listener.local_addr()?;
    // Everything that can fail at start happens before we announce: once `listening on` is
    // printed, a SIGTERM must find its handler in place.
    let wake = WakePipe::new()?;
    let shutdown = Shutdown::on_signal(wake.waker()?)?;
    let event_loop = EventLoop::new(args, listener, readiness, wake, shutdown)?;
    net::announce(addr);
    tracing::info!(%addr, fd_limit, "serving, one thread");
    event_loop.run()
}
