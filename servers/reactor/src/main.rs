//! # chat-reactor: event loops own the sockets, a worker pool does the thinking
//!
//! chat-epoll does everything on one thread: wait for readiness, read, parse, run the chat
//! rules, write. However many cores the machine has, it uses one. This server has the shape of
//! Netty, of nginx with thread pools, of Redis 6 with I/O threads: two kinds of threads.
//!
//! - `--io-threads` **reactors** (`reactor.rs`): each a mio `Poll` (epoll underneath) with its
//!   own listening socket and the peers it accepted. They move bytes: accept, read until
//!   `WouldBlock`, write what is queued. Same callbacks as chat-epoll.
//! - `--workers` **workers** (a rayon pool, `worker.rs`): the CPU side. A reactor hands a loop
//!   turn's input to the pool; a worker splits it into lines, parses the JSON and runs the Hub;
//!   the Hub's frames go back to whichever reactors own the recipients, through a channel and a
//!   `mio::Waker` (`shared.rs`).
//!
//! ```text
//!  reactor k: epoll_wait, read ──▶ Batch{bytes, decoder} ──▶ worker: parse ──▶ lock the Hub:
//!                                                                      handle, route, post ─┐
//!  reactor j: carry_out ◀── mailbox j (channel + Waker) ◀── orders, in lock order ◀─────────┘
//!             write_out: one writev per peer per turn
//! ```
//!
//! ## The guarantees of `PROTOCOL.md`, across threads (the details are in `shared.rs`)
//! 1. *Replies in request order*: one batch per connection in flight at a time. The peer's
//!    `LineDecoder` travels with the batch, so there is none to give a second worker.
//! 2. *One order per room*: orders are routed and posted *under the Hub lock* into FIFO
//!    mailboxes, so every reactor receives them in the order the Hub decided them.
//! 3. *Nothing lost*: a connection's route exists from `connect` until the Hub forgets it.
//! 4. *Bounded backlog*: the reactor that owns a socket knows what it refused; past
//!    `--max-backlog` it cuts the connection and tells the Hub, and its room hears `left`.
//!
//! ## mio is edge-triggered
//! An event says a socket *became* ready. So: read until `WouldBlock`, or remember that we
//! stopped early (`Peer::unread`: its buffer is full while its batch is on a worker) and come
//! back on our own, since no new event will; accept until `WouldBlock`; ask for WRITABLE only
//! while output is pending. Out of descriptors (EMFILE), the listener is deregistered for 100 ms
//! instead of being retried in a loop that would spin a core.
//!
//! ## Several loops on one port
//! Each loop has its own listening socket with SO_REUSEPORT, and the kernel spreads new
//! connections over them ([`bind_listeners`] says why rather than one acceptor). A room's
//! members may live on different loops: a broadcast then costs a wake-up of each loop involved.
//!
//! ## What the hand-off costs, and when it pays
//! - **The cost.** A hand-off wakes a sleeping worker (a `futex` call, a context switch), and
//!   the replies come back through a channel and an eventfd write that wakes the loop. Worse,
//!   rayon's workers *spin* (`sched_yield`) for a while before sleeping: built for bursts of
//!   data-parallel work, they burn a core between a server's sporadic jobs. At light load that
//!   is paid per message; under load, one hand-off per *loop turn* carries hundreds of
//!   requests and its cost per message nearly vanishes.
//! - **When it pays.** When a loop thread is the bottleneck and other cores are idle, the work
//!   that grows with the requests (splitting and parsing large lines) moves off the loop and
//!   runs in parallel. Hence `--offload-min-bytes` (default 64 KiB): a turn that read less is
//!   handled by the loop itself; only a turn with that much input, which is what falling behind
//!   looks like, is worth a hand-off.
//! - **When it loses: tiny requests on few cores.** With no idle core (on a 2-core machine the
//!   load generator takes one), every thread we add only adds synchronisation, and a broadcast
//!   to members on two loops wakes both. The defaults (a loop and a worker per core) are for a
//!   machine with cores to spare.
//!
//! Lesson 06 measures all of this (throughput and CPU per message against chat-epoll and
//! chat-async, and the context switches a hand-off costs, counted with `perf stat`); the
//! C10K comparison in `benches/results/` has the figures at 100 to 10,000 connections.
//!
//! ## Run it, poke it
//! ```text
//! cargo run --release -p chat-reactor -- --addr 127.0.0.1:8888 --io-threads 2 --workers 2
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! ```
//! - `top -H -p $(pgrep chat-reactor)`: threads `reactor-N` and `worker-N`; under load, see
//!   which ones are busy as `--offload-min-bytes` changes.
//! - `perf stat -e context-switches,syscalls:sys_enter_sched_yield -p $(pgrep chat-reactor)`
//!   during a `loadgen run`: the price of the hand-off, counted.
//! - `ss -ltn 'sport = :8888'`: one listening socket per loop, all on one port.
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | flags, SO_REUSEPORT listeners, starting the threads |
//! | `reactor.rs` | one event loop: the turn, the timers, shutdown |
//! | `reactor/callbacks.rs` | its callbacks: accept, read, hand off, carry out the Hub's orders, write |
//! | `peer.rs` | one connection as a loop sees it |
//! | `worker.rs` | the hand-off and the CPU side: parse, run the Hub |
//! | `shared.rs` | the Hub behind a lock, the routes, the mailboxes: the guarantees |

mod peer;
mod reactor;
mod shared;
mod worker;

use chat_core::{net, Hub, ServerArgs, Shutdown};
use clap::Parser;
use reactor::Reactor;
use shared::Shared;
use std::io;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "chat-reactor",
    about = "Chat server: mio event loops for the sockets, a rayon pool for the chat rules"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Event loops (threads doing socket I/O), each with its own SO_REUSEPORT listener; 1 to 64.
    /// Default: one per core.
    #[arg(long, default_value_t = net::cores())]
    io_threads: usize,

    /// Worker threads running the CPU side (parsing, chat rules); 0 = the event loops do it
    /// themselves, without a hand-off. Default: one per core.
    #[arg(long, default_value_t = net::cores())]
    workers: usize,

    /// A loop turn that read fewer bytes than this handles them itself instead of handing them
    /// to the workers (the hand-off costs more than parsing a few small requests). 0 = always
    /// hand off.
    #[arg(long, default_value_t = 64 * 1024)]
    offload_min_bytes: usize,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    if !(1..=64).contains(&args.io_threads) {
        return Err(io::Error::other("--io-threads must be between 1 and 64"));
    }
    let fd_limit = net::raise_fd_limit()?;
    let listeners = bind_listeners(&args)?;
    tracing::debug!("open-file limit: {fd_limit}");
    serve(args, listeners)
}

/// One listening socket per event loop, all on the same port (SO_REUSEPORT): the kernel spreads
/// incoming connections over them by a hash of the addresses.
///
/// The alternative is one acceptor handing sockets to the loops round-robin through their
/// mailboxes. SO_REUSEPORT needs no hand-off and no extra thread, and each loop accepts at its
/// own pace, so a busy loop takes fewer new connections from its queue... but it is the kernel
/// that chooses, not us: a loop stuck on something keeps receiving its share of new
/// connections. For identical loops that is the right trade.
fn bind_listeners(args: &Args) -> io::Result<Vec<std::net::TcpListener>> {
    let mut options = args.server.socket.clone();
    options.reuse_port |= args.io_threads > 1;
    let first = net::bind_listener(args.server.addr, &options)?;
    // With `--addr 127.0.0.1:0` the kernel picked a port: the others must join *that* one.
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..args.io_threads {
        listeners.push(net::bind_listener(addr, &options)?);
    }
    for listener in &listeners {
        listener.set_nonblocking(true)?;
    }
    Ok(listeners)
}

/// Builds the pool, the reactors and the shared state, announces the address, and runs until
/// SIGINT/SIGTERM.
fn serve(args: Args, listeners: Vec<std::net::TcpListener>) -> io::Result<()> {
    let addr = listeners[0].local_addr()?;
    let pool = match args.workers {
        0 => None,
        n => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("worker-{i}"))
                // rayon aborts the process when a job panics, unless told otherwise. A bug in
                // one request must not take every connection down: log it and go on.
                .panic_handler(|_| tracing::error!("a worker job panicked"))
                .build()
                .map_err(io::Error::other)?,
        ),
    };

    // Each reactor's poll and waker first: the shared state holds every reactor's mailbox.
    let mut seeds = Vec::new();
    let mut mailboxes = Vec::new();
    for listener in listeners {
        let (seed, mailbox) = reactor::seed(listener)?;
        seeds.push(seed);
        mailboxes.push(mailbox);
    }
    let hub = Hub::new(args.server.hub_config());
    let shared = Arc::new(Shared::new(hub, mailboxes, pool));

    // The signal thread only sets a flag and wakes every loop; each loop then stops itself.
    let shutdown = Shutdown::on_signal({
        let shared = Arc::clone(&shared);
        move || shared.wake_all()
    })?;
    // Announced once the signal handler is in place, so a SIGTERM right after the line is
    // handled gracefully, never by the default action.
    net::announce(addr);

    let mut threads = Vec::new();
    for (index, seed) in seeds.into_iter().enumerate() {
        let reactor = Reactor::new(
            index,
            seed,
            Arc::clone(&shared),
            args.server.clone(),
            args.offload_min_bytes,
        );
        let shutdown = shutdown.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("reactor-{index}"))
                .spawn(move || reactor.run(&shutdown))?,
        );
    }
    for thread in threads {
        if thread.join().is_err() {
            tracing::error!("a reactor panicked");
        }
    }
    tracing::info!("stopped");
    Ok(())
}
