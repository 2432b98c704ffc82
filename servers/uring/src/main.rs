//! # chat-uring: one thread, every socket, io_uring: completion, not readiness
//!
//! Every server so far asks the kernel *when* it may act (is this socket readable? writable?),
//! then acts itself: one `read` or `writev` system call per socket per turn. io_uring turns that
//! around. We hand the kernel the operations themselves ("receive on this socket", "write these
//! three frames to that one") through a queue in memory we share with it, and the kernel tells
//! us, through a second queue, when each one is **done** and how it went. The [`Hub`], the
//! executor that carries out its actions (chat-core's [`Sink`](chat_core::Sink), here
//! `Peers`) and the life of a connection are chat-epoll's; this file and its neighbours differ
//! only in how bytes move.
//!
//! ## The two rings (`ring.rs`)
//! ```text
//!   this process                     shared memory                       kernel
//!   push SQE: "recv on slot 12" ──▶ [ submission queue ] ─┐
//!   push SQE: "writev slot 40"  ──▶ [                  ] ─┴─ io_uring_enter ─▶ does them
//!   take CQE: "slot 12: 87 bytes,◀── [ completion queue ] ◀────────────────── posts results
//!             in buffer 5"
//! ```
//! Writing a submission (SQE) or reading a completion (CQE) is plain memory access, no system
//! call. One `io_uring_enter` per turn hands the kernel everything the turn queued *and* waits
//! for the next completion. A receive, a write, a timer and an accept are all just operations
//! in the same two queues.
//!
//! ## One turn of the loop ([`Server::run`])
//! 1. `io_uring_enter`: submit this turn's SQEs, sleep until at least one completion is there.
//!    The loop's timer is an operation too (`timer.rs`), so time passing is a completion.
//! 2. [`dispatch`](Server::dispatch) every completion by its token (`token.rs`) to its handler
//!    (`completions.rs`): a new connection, input (each request given to the Hub, and its
//!    actions carried out, before the next), a finished write, a fired timer.
//! 3. `on_tick`: idle timeouts, lingering closes, the start of a shutdown.
//! 4. `write_out`: one write per connection that got frames this turn and has no write in
//!    flight.
//! 5. Give the turn's receive buffers back to the kernel, re-arm receives that ran out of them,
//!    set the timer for the earliest deadline. Nothing of this is a system call: it all leaves
//!    with step 1 of the next turn.
//!
//! ## What io_uring does here that epoll cannot
//! - **Multishot accept** (`Accepting`): one submission accepts every connection for the
//!   server's whole life, one completion each, instead of an `accept4` call per connection.
//! - **Registered files** (`peers.rs`): each accepted socket goes straight into a slot of a
//!   file table registered with the ring; it never gets a descriptor number. Every operation
//!   names it by slot (`types::Fixed`), which spares the kernel looking the descriptor up (and
//!   taking a reference to it) on each operation. The table's size is the open-file limit.
//!   Even its address is asked through the ring (`peer_name.rs`, for `--max-conns-per-ip`).
//! - **Multishot receive into provided buffers** (`buffers.rs`): one receive submission per
//!   connection for its whole life; the kernel takes a buffer from a shared pool only when data
//!   has arrived, so idle connections cost no buffer. `-ENOBUFS` when the pool is empty.
//! - **Batched submission**: the turn's writes, re-armed receives and timer moves leave together
//!   in the one `io_uring_enter`.
//! - **Timeouts in the ring** (`timer.rs`): the loop's timer is one timeout operation, moved
//!   only when an earlier deadline appears; the accept pause is a timeout *linked* in front of
//!   the accept it delays.
//!
//! ## Honest about ownership
//! A readiness server's buffers are its own at every moment: `read` and `writev` return before
//! the loop goes on. Here a submitted operation keeps using our memory until its completion:
//! the bytes and `iovec`s of a write (`outgoing.rs` keeps the `Bytes` alive until then), the
//! 8 bytes an eventfd read fills (`wake.rs`), the address a new connection's question fills
//! (`peer_name.rs`), the pool of receive buffers. Each is owned by a struct that outlives the
//! operation, and [`Server`] drops the ring before all of them. The `unsafe` blocks say, each
//! time, what keeps the memory alive. Closing a connection is two steps for the same reason
//! (`peers.rs`): cancel its operations, wait for their completions, then close its slot.
//!
//! ## Running out of slots
//! The accepted socket needs a free slot in the file table. The kernel accepts *first* and
//! looks for a slot *second*: when the table is full, that one connection is accepted and closed
//! at once (the client sees the connection closed, without `server_full`), and the multishot
//! accept ends with `-ENFILE`. The loop then stops accepting until a slot is free again and
//! [`ACCEPT_PAUSE`] has passed; the waiting clients stay in the listen backlog. No spin, no
//! crash, and the clients it has are served throughout. (`--max-conns` below the table's size
//! keeps the polite `server_full` for everyone: the Hub refuses before the table fills.)
//!
//! Socket options (`--nodelay`, `--keepalive`, buffers, `--linger`) are set on the *listener*:
//! Linux copies them into each socket it accepts, so no `setsockopt` per connection is needed
//! (and there is no descriptor to call it on).
//!
//! ## Run it, poke it, watch it
//! ```text
//! chat-uring --probe                        # what this kernel's io_uring offers
//! cargo run -p chat-uring -- --addr 127.0.0.1:8888
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! ```
//! - `strace -f -c -p $(pgrep chat-uring)` under load: nearly every system call is
//!   `io_uring_enter`; no `accept4`, `recvfrom`, `writev`.
//! - `ls /proc/$(pgrep chat-uring)/fd`: a handful of descriptors, however many clients are
//!   connected (the sockets live in the ring's file table), and `anon_inode:[io_uring]`.
//! - `RUST_LOG=debug` logs every connect, close and receive that ran out of buffers; at exit
//!   the server logs its turns, `io_uring_enter` calls and completions.
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | this loop, the flags, the start |
//! | `ring.rs` | setting up the rings, the probe, submitting and taking completions |
//! | `token.rs` | what a completion is about: the `user_data` of each operation |
//! | `completions.rs` | what to do with each completion: `on_accepted`, `on_received`, `on_written`... |
//! | `lifecycle.rs` | the Hub's side: carrying out its actions, closing, accepting, timers, shutdown |
//! | `peers.rs` | one connection's state, and the table of them: the Hub's sink, writes and closes |
//! | `outgoing.rs` | one connection's frames and its write in flight, owned by the kernel |
//! | `buffers.rs` | the provided buffer ring the kernel receives into |
//! | `peer_name.rs` | a new connection's address, asked through the ring |
//! | `timer.rs`, `wake.rs` | the loop's timer, and the eventfd SIGTERM wakes it with |
//!
//! [`ACCEPT_PAUSE`]: chat_core::net::ACCEPT_PAUSE

mod buffers;
mod completions;
mod lifecycle;
mod outgoing;
mod peer_name;
mod peers;
mod ring;
mod timer;
mod token;
mod wake;

use buffers::BufferRing;
use chat_core::{net, Hub, Inbound, Outbox, ServerArgs, Shutdown};
use clap::Parser;
use io_uring::types;
use peer_name::PeerNames;
use peers::Peers;
use ring::{Completion, Ring};
use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Instant;
use timer::LoopTimer;
use token::Token;
use tracing::{info, warn};
use wake::WakeFd;

/// A chat server on one thread, with io_uring (completion-based I/O).
#[derive(Parser, Debug)]
#[command(name = "chat-uring", version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Receive buffers in the pool the kernel receives into, shared by every connection
    /// (a power of two, at most 32768).
    #[arg(long, default_value_t = 1024)]
    buffers: u16,

    /// Bytes per receive buffer.
    #[arg(long, default_value_t = 2048)]
    buffer_size: u32,

    /// Print what this kernel's io_uring offers and whether chat-uring can run here, then
    /// exit (0: it can).
    #[arg(long)]
    probe: bool,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    if args.probe {
        let (report, usable) = ring::probe_report();
        print!("{report}");
        return match usable {
            true => Ok(()),
            false => Err(io::Error::other("io_uring is not usable here")),
        };
    }
    serve(args)
}

/// Runs the server until SIGINT/SIGTERM, in the startup order every server follows: raise the
/// fd limit, set up the I/O model (here: can this kernel do it? say so before anything
/// listens), bind, install the signal handler (it wakes the loop through the ring), announce
/// `listening on`, serve.
fn serve(args: Args) -> io::Result<()> {
    let fd_limit = net::raise_fd_limit()?;
    let unavailable =
        |reason| io::Error::other(format!("io_uring is not available here: {reason}"));
    let mut ring = Ring::new().map_err(unavailable)?;
    if args.server.max_conns_per_ip > 0 {
        ring.socket_commands().map_err(unavailable)?;
    }
    let listener = net::bind_listener(args.server.addr, &args.server.socket)?;
    // Set on the listener, inherited by every socket it accepts (see the module docs).
    net::configure_accepted(&listener, &args.server.socket)?;
    let addr = listener.local_addr()?;
    // Everything that can fail at start happens before we announce: once `listening on` is
    // printed, a SIGTERM must find its handler in place.
    let server = Server::new(args, listener, ring, fd_limit)?;
    net::announce(addr);
    server.run()
}

/// Whether the multishot accept is in flight, and if not, why and what brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// In flight: each new connection posts a completion.
    Armed,
    /// It ended on an error about one connection only: submit it again at the end of the turn.
    Rearm,
    /// It ended because slots (or kernel memory) ran out: submit it again behind a pause, once a
    /// slot is free.
    Paused,
    /// The pause (a timeout) and the accept linked behind it are in flight.
    Resuming,
    /// Shutting down: no more connections.
    Stopped,
}

/// What the loop counts besides the rings' own counters (logged when it stops).
#[derive(Debug, Default)]
struct Stats {
    /// Turns of the loop (each one `io_uring_enter`, plus any extra for a full queue).
    turns: u64,
    /// Receives that found the buffer pool empty (`-ENOBUFS`) and were armed again.
    out_of_buffers: u64,
    /// Writes the kernel completed short (the rest was written next).
    short_writes: u64,
}

/// Everything the loop owns. It runs on one thread, so nothing here needs a lock.
struct Server {
    // ---- the completion API: io_uring ----
    /// The connections, and the ring every operation goes through. Declared first, so dropped
    /// first: the ring must be gone (the kernel done with the memory it was lent: receive
    /// buffers, write `iovec`s and frames, the timer's duration, the eventfd's read buffer, the
    /// addresses being asked for) before that memory is freed.
    peers: Peers,
    /// The pool of buffers the kernel receives into, shared by every connection.
    buffers: BufferRing,
    /// The loop's timer in the ring.
    timer: LoopTimer,
    /// The eventfd the signal thread wakes the loop with.
    wake: WakeFd,
    /// New connections whose address is being asked for; `None` without `--max-conns-per-ip`
    /// (nobody needs the address then).
    peer_names: Option<PeerNames>,
    /// [`ACCEPT_PAUSE`](net::ACCEPT_PAUSE) as the kernel reads it, boxed at a stable address:
    /// the kernel reads a timeout's duration from our memory when it takes the submission.
    accept_pause: Box<types::Timespec>,
    /// `None` once shutting down.
    listener: Option<TcpListener>,
    /// Whether the multishot accept is in flight.
    accepting: Accepting,
    /// Slots in the ring's file table: the most sockets the kernel holds for us at once.
    capacity: u32,
    /// The completions of this turn (kept to reuse the allocation).
    completions: Vec<Completion>,
    /// Counters for the log line at exit.
    stats: Stats,

    // ---- the chat: the same as chat-epoll ----
    /// The limits: each new connection's decoder and queue are made from them.
    args: ServerArgs,
    /// The chat: nicknames, rooms, idle deadlines. Owned by the loop, not shared.
    hub: Hub,
    /// What the Hub asked for, carried out after each request (its allocation is reused).
    outbox: Outbox,
    /// When [`Hub::tick`] next has work (the earliest idle deadline).
    hub_deadline: Option<Instant>,
    /// Set by SIGINT/SIGTERM: the loop ends then, or once every connection has been flushed.
    stop_deadline: Option<Instant>,
    /// Whether SIGINT/SIGTERM arrived (set by the signal thread, read every turn).
    shutdown: Shutdown,
    /// The lines of one receive, between the decoder and the Hub (kept to reuse the allocation).
    lines: Vec<Inbound>,
}

impl Server {
    fn new(args: Args, listener: TcpListener, ring: Ring, fd_limit: u64) -> io::Result<Server> {
        let capacity = ring.register_file_table(fd_limit)?;
        let buffers = BufferRing::new(args.buffers, args.buffer_size)?;
        buffers.register(&ring.submitter())?;
        let wake = WakeFd::new()?;
        let shutdown = Shutdown::on_signal(wake.waker()?)?;
        let peer_names =
            (args.server.max_conns_per_ip > 0).then(|| PeerNames::new(args.server.addr));
        let mut server = Server {
            peers: Peers::new(ring, args.server.socket.aborts_on_close()),
            buffers,
            timer: LoopTimer::new(),
            wake,
            peer_names,
            accept_pause: Box::new(types::Timespec::from(net::ACCEPT_PAUSE)),
            listener: Some(listener),
            accepting: Accepting::Rearm,
            capacity,
            completions: Vec::new(),
            stats: Stats::default(),
            hub: Hub::new(args.server.hub_config()),
            args: args.server,
            outbox: Outbox::new(),
            hub_deadline: None,
            stop_deadline: None,
            shutdown,
            lines: Vec::new(),
        };
        // The first submissions, in flight from the first turn on: accept connections, and a
        // read on the eventfd for the signal thread.
        server.resume_accepting();
        server.arm_wake();
        Ok(server)
    }

    /// The event loop: turns until a shutdown has flushed every connection (or ran out of
    /// time).
    fn run(mut self) -> io::Result<()> {
        info!(
            "serving with io_uring: {} file slots, {} receive buffers of {} bytes, one thread",
            self.capacity,
            self.buffers.count(),
            self.buffers.size()
        );
        loop {
            // The one system call of the turn: submit, then sleep until a completion.
            self.peers.ring.submit_and_wait()?;
            self.stats.turns += 1;
            self.peers.ring.take_completions(&mut self.completions);
            self.dispatch();
            self.on_tick(Instant::now());
            self.peers.write_out();
            // Queued for the next `io_uring_enter`, not system calls of their own:
            self.buffers.publish();
            self.peers.rearm_receives();
            self.resume_accepting();
            let now = Instant::now();
            if self.finished(now) {
                self.log_stats();
                return Ok(());
            }
            self.set_timer(now);
        }
    }

    /// Hands each completion to its handler. Writes first: the backlog rule (`outgoing.rs`)
    /// reads a write still in flight as one the socket refused, so before any frame is queued
    /// this turn, every write the kernel finished must be known.
    fn dispatch(&mut self) {
        let batch = std::mem::take(&mut self.completions);
        for c in &batch {
            if let Some(Token::Write(id)) = Token::decode(c.user_data) {
                self.on_written(id, c.result);
            }
        }
        for c in &batch {
            match Token::decode(c.user_data) {
                Some(Token::Write(_)) => {} // done above
                Some(Token::Recv(id)) => self.on_received(id, c.result, c.flags),
                Some(Token::Accept) => self.on_accepted(c.result, c.flags),
                Some(Token::PeerName(slot)) => self.on_peer_named(slot, c.result),
                Some(Token::AcceptPause) => {} // the pause is over; the accept follows
                Some(Token::Timer) => self.timer.on_fired(),
                Some(Token::TimerUpdate) => self.timer.on_update_failed(),
                Some(Token::Wake) => self.on_woken(c.result),
                Some(Token::Shutdown(id)) => self.on_shut_down(id, c.result),
                Some(Token::Close(id)) => self.on_closed(id, c.result),
                Some(Token::Discard) => completions::log_discarded(c.result),
                None => warn!("a completion with unknown user_data {:#x}", c.user_data),
            }
        }
        let mut batch = batch;
        batch.clear();
        self.completions = batch;
    }

    /// The read on the eventfd, submitted at start and after each wake-up.
    fn arm_wake(&mut self) {
        let entry = self.wake.read();
        // SAFETY: the read fills `self.wake`'s boxed counter, which lives as long as the
        // server, and the ring is dropped before it.
        unsafe { self.peers.ring.push(entry) };
    }

    fn log_stats(&self) {
        let rings = self.peers.ring.stats;
        info!(
            "stopped after {} turns: {} io_uring_enter calls, {} submissions, {} completions \
             ({:.1} per turn), {} receives out of buffers, {} short writes",
            self.stats.turns,
            rings.enters,
            rings.submitted,
            rings.completions,
            rings.completions as f64 / self.stats.turns.max(1) as f64,
            self.stats.out_of_buffers,
            self.stats.short_writes
        );
    }
}
