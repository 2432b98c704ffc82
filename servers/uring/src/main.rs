//! # chat-uring: one thread, every socket, io_uring: completion, not readiness
//!
//! Every server so far asks the kernel *when* it may act (is this socket readable? writable?),
//! then acts itself: one `read` or `writev` system call per socket per turn. io_uring turns that
//! around. We hand the kernel the operations themselves ("receive on this socket", "write these
//! three frames to that one") through a queue in memory we share with it, and the kernel tells
//! us, through a second queue, when each one is **done** and how it went. The [`Hub`] and the
//! chat rules are chat-epoll's; this file and its neighbours differ only in how bytes move.
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
//! 2. Take every completion and handle it by its token (`token.rs`, `completions.rs`): a new
//!    connection, input (decoded and given to the Hub), a finished write, a fired timer.
//! 3. `on_tick`: idle timeouts, lingering closes, the start of a shutdown.
//! 4. `write_out`: carry out what the Hub asked (frames into each connection's `Outgoing`) and
//!    submit one write per connection that got frames and has no write in flight.
//! 5. Give the turn's receive buffers back to the kernel, re-arm receives that ran out of them,
//!    set the timer for the earliest deadline. Nothing of this is a system call: it all leaves
//!    with step 1 of the next turn.
//!
//! ## What io_uring does here that epoll cannot
//! - **Multishot accept** (`Accepting`): one submission accepts every connection for the
//!   server's whole life, one completion each, instead of an `accept4` call per connection.
//! - **Registered files** (`conn.rs`): each accepted socket goes straight into a slot of a file
//!   table registered with the ring; it never gets a descriptor number. Every operation names
//!   it by slot (`types::Fixed`), which spares the kernel looking the descriptor up (and taking
//!   a reference to it) on each operation. The table's size is the open-file limit.
//! - **Multishot receive into provided buffers** (`buffers.rs`): one receive submission per
//!   connection for its whole life; the kernel takes a buffer from a shared pool only when data
//!   has arrived, so idle connections cost no buffer. `-ENOBUFS` when the pool is empty.
//! - **Batched submission**: the turn's writes, re-armed receives and timer moves leave together
//!   in the one `io_uring_enter`.
//! - **Timeouts in the ring** (`timer.rs`): the loop's timer is one timeout operation, moved
//!   only when an earlier deadline appears; the accept back-off is a timeout *linked* in front
//!   of the accept it delays.
//!
//! ## Honest about ownership
//! A readiness server's buffers are its own at every moment: `read` and `writev` return before
//! the loop goes on. Here a submitted operation keeps using our memory until its completion:
//! the bytes and `iovec`s of a write (`outgoing.rs` keeps the `Bytes` alive until then), the
//! 8 bytes an eventfd read fills (`wake.rs`), the pool of receive buffers. Each is owned by a
//! struct that outlives the operation, and [`Server`] drops the ring before all of them. The
//! `unsafe` blocks say, each time, what keeps the memory alive. Closing a connection is two
//! steps for the same reason (`conn.rs`): cancel its operations, wait for their completions,
//! then close its slot.
//!
//! ## Running out of slots
//! The accepted socket needs a free slot in the file table. The kernel accepts *first* and
//! looks for a slot *second*: when the table is full, that one connection is accepted and closed
//! at once (the client sees the connection closed, without `server_full`), and the multishot
//! accept ends with `-ENFILE`. The loop then stops accepting until a slot is free again and a
//! back-off has passed; the waiting clients stay in the listen backlog. No spin, no crash, and
//! the clients it has are served throughout. (`--max-conns` below the table's size keeps the
//! polite `server_full` for everyone: the Hub refuses before the table fills.)
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
//! | `buffers.rs` | the provided buffer ring the kernel receives into |
//! | `conn.rs`, `outgoing.rs` | one connection: its state, its writes owned by the kernel |
//! | `completions.rs` | what to do with each completion |
//! | `lifecycle.rs` | carrying out the Hub's actions, closing, timers, shutdown |
//! | `timer.rs`, `wake.rs` | the loop's timer, and the eventfd SIGTERM wakes it with |

mod buffers;
mod completions;
mod conn;
mod lifecycle;
mod outgoing;
mod ring;
mod timer;
mod token;
mod wake;

use buffers::BufferRing;
use chat_core::{net, ConnId, Hub, Inbound, Outbox, ServerArgs, Shutdown};
use clap::Parser;
use conn::Conn;
use ring::{Completion, Ring};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Instant;
use timer::LoopTimer;
use token::Token;
use tracing::{error, info, warn};
use wake::WakeFd;

#[derive(Parser, Debug)]
#[command(
    name = "chat-uring",
    version,
    about = "Chat server: one thread, io_uring (completion-based I/O)"
)]
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
    let args = Args::parse();
    if args.probe {
        let (report, usable) = ring::probe_report();
        print!("{report}");
        return if usable {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    net::init_logging();
    match net::raise_fd_limit() {
        Ok(limit) => info!("open-file limit: {limit}"),
        Err(e) => warn!("cannot raise the open-file limit: {e}"),
    }
    // First of all: can this kernel do it? Say so clearly, before anything listens.
    let ring = match Ring::new() {
        Ok(ring) => ring,
        Err(reason) => {
            error!("io_uring is not available here: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match listen(&args.server) {
        Ok(listener) => listener,
        Err(e) => {
            error!("cannot listen on {}: {e}", args.server.addr);
            return ExitCode::FAILURE;
        }
    };
    // Everything that can fail at start happens before we announce: once `listening on` is
    // printed, a SIGTERM must find its handler in place.
    let started = listener
        .local_addr()
        .and_then(|addr| Ok((addr, Server::new(args, listener, ring)?)));
    let (addr, server) = match started {
        Ok(started) => started,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    net::announce(addr);
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("the event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The listening socket, with the per-connection socket options set on it: accepted sockets
/// inherit them (see the module docs).
fn listen(args: &ServerArgs) -> io::Result<TcpListener> {
    let listener = net::bind_listener(args.addr, &args.socket)?;
    net::configure_accepted(&listener, &args.socket)?;
    Ok(listener)
}

/// Whether the multishot accept is in flight, and if not, why and what brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// In flight: each new connection posts a completion.
    Armed,
    /// It ended on an error about one connection only: submit it again at the end of the turn.
    Rearm,
    /// It ended because slots (or kernel memory) ran out: submit it again behind a back-off,
    /// once a slot is free.
    Paused,
    /// The back-off timeout, and the accept linked behind it, are in flight.
    BackingOff,
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
    /// The io_uring instance. Declared first, so dropped first: the kernel must be done with
    /// the memory it was lent (receive buffers, write `iovec`s and frames, the timer's duration,
    /// the eventfd's read buffer) before that memory is freed.
    ring: Ring,
    /// The pool of buffers the kernel receives into, shared by every connection.
    buffers: BufferRing,
    /// The loop's timer in the ring.
    timer: LoopTimer,
    /// The eventfd the signal thread wakes the loop with.
    wake: WakeFd,
    /// `None` once shutting down.
    listener: Option<TcpListener>,
    accepting: Accepting,
    /// Slots in the ring's file table: the most sockets the kernel holds for us at once.
    capacity: u32,
    /// Connections whose multishot receive ended (out of buffers, or stopped by the kernel):
    /// armed again at the end of the turn, after the turn's buffers went back to the pool.
    to_rearm: Vec<ConnId>,
    /// The completions of this turn (kept to reuse the allocation).
    completions: Vec<Completion>,
    stats: Stats,

    // ---- the chat: the same as chat-epoll ----
    args: ServerArgs,
    /// The chat: nicknames, rooms, idle deadlines. Owned by the loop, not shared.
    hub: Hub,
    /// What the Hub asked for, carried out after each request and at the end of each turn.
    outbox: Outbox,
    /// Every connection, by the Hub's id: the token table (`token.rs` says why not by slot).
    conns: HashMap<ConnId, Conn>,
    /// Connections whose output changed this turn, each once: written at the end of the turn.
    dirty: Vec<ConnId>,
    /// Closing connections and when they are dropped anyway. Every close gets the same delay,
    /// so the queue is in deadline order: a FIFO is a timer queue here.
    lingering: VecDeque<(Instant, ConnId)>,
    /// When [`Hub::tick`] next has work (the earliest idle deadline).
    hub_deadline: Option<Instant>,
    /// Set by SIGINT/SIGTERM: the loop ends then, or once every connection has been flushed.
    stop_deadline: Option<Instant>,
    shutdown: Shutdown,
    /// The lines of one receive, between the decoder and the Hub (kept to reuse the allocation).
    lines: Vec<Inbound>,
}

impl Server {
    fn new(args: Args, listener: TcpListener, ring: Ring) -> io::Result<Server> {
        let capacity = ring.register_file_table()?;
        let buffers = BufferRing::new(args.buffers, args.buffer_size)?;
        buffers.register(&ring.submitter())?;
        let wake = WakeFd::new()?;
        let shutdown = Shutdown::on_signal(wake.waker()?)?;
        let mut server = Server {
            ring,
            buffers,
            timer: LoopTimer::new(),
            wake,
            listener: Some(listener),
            accepting: Accepting::Rearm,
            capacity,
            to_rearm: Vec::new(),
            completions: Vec::new(),
            stats: Stats::default(),
            hub: Hub::new(args.server.hub_config()),
            args: args.server,
            outbox: Outbox::new(),
            conns: HashMap::new(),
            dirty: Vec::new(),
            lingering: VecDeque::new(),
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

    /// The event loop.
    fn run(mut self) -> io::Result<()> {
        info!(
            "serving with io_uring: {} file slots, {} receive buffers of {} bytes, one thread",
            self.capacity,
            self.buffers.count(),
            self.buffers.size()
        );
        loop {
            // The one system call of the turn: submit, then sleep until a completion.
            self.ring.submit_and_wait()?;
            self.stats.turns += 1;
            self.ring.take_completions(&mut self.completions);
            self.dispatch();
            self.on_tick(Instant::now());
            self.write_out();
            // Queued for the next `io_uring_enter`, not system calls of their own:
            self.buffers.publish();
            self.rearm_receives();
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
    /// counts only bytes behind a write the kernel has *not* completed, so before any frame is
    /// queued this turn, every write the kernel finished must be known.
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
                Some(Token::AcceptBackoff) => {} // the back-off is over; the accept follows
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
        unsafe { self.ring.push(entry) };
    }

    fn log_stats(&self) {
        let rings = self.ring.stats;
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
