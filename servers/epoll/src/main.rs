//! # chat-epoll: one thread, every socket, epoll(7), level- or edge-triggered
//!
//! The same server as chat-poll, with the readiness call that scales. One thread, non-blocking
//! sockets, the [`Hub`] owned by the loop (no lock). The callbacks (`callbacks.rs`) and the
//! per-connection state (`peer.rs`) are byte-identical to chat-poll's; only this file differs,
//! so `diff servers/poll/src/main.rs servers/epoll/src/main.rs` *is* the lesson.
//!
//! ## One turn of the loop ([`Server::run`])
//! 1. `epoll_wait`, with a timeout that ends at the next timer: the Hub's next idle deadline
//!    ([`Hub::tick`]), a closing peer's linger deadline, the shutdown deadline.
//! 2. Call `on_listener_ready`, `on_peer_ready_recv`, `on_peer_ready_send` for each ready socket.
//! 3. `on_tick`: idle timeouts, lingering closes, the start of a shutdown.
//! 4. `write_out`: carry out what the Hub asked (frames into each peer's `SendQueue`), then
//!    flush every peer that got frames *once*: all the frames of the turn in one `writev`.
//!
//! There is no step "build the interest set": the kernel keeps it. A socket is registered once
//! (`epoll_ctl(ADD)` in `watch_peer`), changed only when what we want from it changes
//! (`epoll_ctl(MOD)`: output became pending, or was all written), and forgotten when closed.
//!
//! ## The cost model: O(ready) per call
//! poll(2) and select(2) take the whole set on every call and the kernel checks every socket:
//! O(n) per call, so 10,000 quiet connections make every message expensive. An epoll instance
//! is a set kept in the kernel plus a *ready list*: when data arrives on a socket, the kernel
//! puts that socket on the list, and `epoll_wait` just copies the list out. A wait costs
//! O(ready); a change of interest costs one `epoll_ctl` (O(log n): the set is a red-black tree).
//! No FD_SETSIZE either: any descriptor number works.
//!
//! ## Level- vs edge-triggered (`--trigger`)
//! - **level** (the default, and what poll/select do): a socket is reported by every
//!   `epoll_wait` for as long as it is readable. Read one chunk; if more is waiting you will be
//!   told again. Forgiving, and fair for free.
//! - **edge** (`EPOLLET`): a socket is reported when it *becomes* readable (new bytes, EOF, an
//!   error). Read only part of what arrived and no new event comes until the client sends
//!   *more*; if it is waiting for our reply, both sides wait forever. So in edge mode the loop
//!   reads, and accepts, **until EAGAIN**. Done naively, one peer that never stops sending would
//!   monopolise the loop, so a peer gets [`EDGE_READ_BUDGET`] reads per event and, if it still
//!   had data, goes on the `unfinished` list, served next turn without sleeping.
//!
//! What edge saves is wake-ups for sockets we choose not to serve right now (a level-triggered
//! socket left unread is reported by every wait). This loop always serves what it is told
//! about, and asks for write readiness only while output is pending, so the two modes cost
//! about the same here; edge mode costs a final read that returns EAGAIN. `tests/burst.rs`
//! catches an edge reader that stops early: it hangs on a burst of large frames.
//!
//! Write interest (`EPOLLOUT`) is on only while a peer's queue holds bytes the kernel refused,
//! in both modes: an idle socket is always writable, so level-triggered it would wake the loop
//! every turn. `epoll_ctl(MOD)` also re-arms an edge-triggered socket (if it is ready at that
//! moment an event is reported), so changing the interest never loses an edge.
//!
//! ## One write per peer per turn
//! The Hub's frames for a peer are queued during the turn and written once, at its end, with
//! one `writev` for all of them (`--flush per-turn`, the default). `--flush per-frame` writes
//! each frame as soon as it is queued, to show the difference. Fan-out is where it matters: a
//! member of a busy room gets several broadcasts per turn.
//!
//! Measured once on the course's shared 2-core machine (release builds, `loadgen run --conns
//! 1000 --room-size 10`, server write calls counted from `syscw` in `/proc/PID/io`):
//!
//! | load | `--flush` | frames/s | writes/s | frames per write | server CPU | p99 round trip |
//! |---|---|---|---|---|---|---|
//! | `--rate 5` | per-turn | 50,000 | 17,800 | 2.8 | 15% | 77 ms |
//! | `--rate 5` | per-frame | 50,000 | 57,400 | 0.9 | 32% | 1.9 s |
//! | `--rate 20` | per-turn | 199,500 | 32,400 | 6.2 | 29% | 146 ms |
//! | `--rate 20` | per-frame | 98,500 | 74,500 | 1.3 | 29% | 10 s, messages lost |
//!
//! Per frame, every broadcast becomes its own system call *and* its own TCP segment, which the
//! clients' kernel and process must handle one by one too: three times the writes, twice the
//! CPU, and at 200,000 frames/s the clients fall behind (half the rate acknowledged). The
//! busier the loop, the bigger the batches per turn: the batching scales with the load.
//! (More than one frame per write even per frame: a peer whose socket is full gets its queue
//! written in one `writev` when it drains.) To reproduce: start the server with either flag,
//! run the load, and read `grep syscw /proc/$(pgrep chat-epoll)/io` before and after (or
//! `strace -c -f -e trace=writev -p PID`, which slows the server down but counts the same).
//!
//! ## Running out of descriptors
//! `accept` failing with EMFILE leaves the connection in the listen backlog, so the listener
//! stays readable: level-triggered, a naive loop spins a core at 100%. We keep a spare
//! descriptor (`/dev/null`): on EMFILE we close it, accept, send `server_full`, close, and
//! reopen it (`os.rs`). If even that fails, accepting pauses for 100 ms.
//!
//! ## Run it, poke it, watch it
//! ```text
//! cargo run -p chat-epoll -- --addr 127.0.0.1:8888 --trigger edge
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! {"type":"message","content":"hello"}
//! ```
//! - `strace -f -c -p $(pgrep chat-epoll)`, then Ctrl-C: a table of system calls
//!   (`epoll_wait`, `epoll_ctl`, `recvfrom` (std's `read`), `writev`, `accept4`). Compare with
//!   chat-poll under the same load: no `poll` over the whole set, a few `epoll_ctl` instead.
//! - `strace -e trace=epoll_wait,epoll_ctl -p $(pgrep chat-epoll)`: each wait returns only the
//!   ready sockets; `EPOLL_CTL_MOD` appears when a slow reader's queue fills and drains.
//! - `ls -l /proc/$(pgrep chat-epoll)/fd | grep eventpoll`, then `cat
//!   /proc/$(pgrep chat-epoll)/fdinfo/FD`: the kernel's interest set, one line per socket.
//! - `ss -tn state established '( sport = :8888 )'`: the connections. `RUST_LOG=debug` logs
//!   every connect and close.
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | this loop: epoll_wait, epoll_ctl, level vs edge (what differs from chat-poll) |
//! | `../../poll/src/callbacks.rs` | what to do with a ready socket (chat-poll's very file) |
//! | `../../poll/src/peer.rs` | the state of one connection (chat-poll's very file) |
//! | `sys.rs` | the `unsafe` calls: epoll_create1, epoll_ctl, epoll_wait |
//! | `../../poll/src/os.rs` | the self-pipe and the spare descriptor for EMFILE |
//!
//! Why the system calls directly rather than the `polling` crate (whose `PollMode::Edge` would
//! do): the lesson is these three calls and their flags. A wrapper would hide `EPOLLET`, the
//! token in `epoll_event.u64` and the `MOD` that re-arms, which are what a student must see.

// What to do with a ready socket does not depend on *how* we learned it is ready, so chat-epoll
// compiles chat-poll's files for the callbacks, the peer state and the OS helpers: the two
// servers share that code literally, and differ only in this file and `sys.rs`.
#[path = "../../poll/src/callbacks.rs"]
mod callbacks;
#[path = "../../poll/src/os.rs"]
mod os;
#[path = "../../poll/src/peer.rs"]
mod peer;
mod sys;

use callbacks::{FlushPolicy, Progress};
use chat_core::{net, ConnId, Frame, Hub, Inbound, Outbox, ServerArgs, Shutdown};
use clap::Parser;
use os::{SpareFd, WakePipe};
use peer::Peer;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use sys::{Epoll, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT};
use tracing::{error, info, warn};

/// Bytes taken from a socket per `read`. One buffer serves every peer: one thread reads one
/// socket at a time, and each peer keeps only its unfinished line (in its decoder).
const READ_BUFFER: usize = 64 * 1024;

/// Edge-triggered: reads per readiness event before we move on to other peers. We must read
/// until EAGAIN, but not all at once: a peer that sends without pause would starve the others.
/// A peer stopped at this budget goes on the `unfinished` list and is read again next turn.
const EDGE_READ_BUDGET: usize = 16;

/// The epoll tokens of the two sockets that are not peers (peers use their `ConnId`).
const LISTENER_TOKEN: u64 = u64::MAX;
const WAKE_TOKEN: u64 = u64::MAX - 1;

#[derive(Parser, Debug)]
#[command(
    name = "chat-epoll",
    version,
    about = "Chat server: one thread, epoll(7), level- or edge-triggered"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Level-triggered (told while a socket is ready) or edge-triggered (told when it becomes
    /// ready, once: the loop must then read and accept until EAGAIN).
    #[arg(long, value_enum, default_value_t = Trigger::Level)]
    trigger: Trigger,

    /// When queued frames are written: once per loop turn (one writev carries all of a peer's
    /// frames) or right after each frame (one write per frame, to measure the difference).
    #[arg(long, value_enum, default_value_t = FlushPolicy::PerTurn)]
    flush: FlushPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Trigger {
    Level,
    Edge,
}

impl Trigger {
    /// The bit that makes a registration edge-triggered (level is epoll's default).
    fn flag(self) -> u32 {
        match self {
            Trigger::Level => 0,
            Trigger::Edge => EPOLLET as u32,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    net::init_logging();
    match net::raise_fd_limit() {
        Ok(limit) => info!("open-file limit: {limit}"),
        Err(e) => warn!("cannot raise the open-file limit: {e}"),
    }
    let listener = match net::bind_listener(args.server.addr, &args.server.socket) {
        Ok(listener) => listener,
        Err(e) => {
            error!("cannot listen on {}: {e}", args.server.addr);
            return ExitCode::FAILURE;
        }
    };
    // Everything that can fail at start (the pipe, the signal thread) happens before we
    // announce: once `listening on` is printed, a SIGTERM must find its handler in place.
    let started = listener
        .local_addr()
        .and_then(|addr| Ok((addr, Server::new(args, listener)?)));
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

/// What a readiness event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Listener,
    Wake,
    Peer(ConnId),
}

/// One ready socket, as found by the last wait.
#[derive(Debug, Clone, Copy)]
struct Ready {
    token: Token,
    /// Data, EOF, or an error (read to find out which).
    readable: bool,
    writable: bool,
}

/// Everything the loop owns. It runs on one thread, so nothing here needs a lock.
struct Server {
    args: ServerArgs,
    /// The chat: nicknames, rooms, idle deadlines. Owned by the loop, not shared.
    hub: Hub,
    /// What the Hub asked for, carried out after each request and at the end of each turn
    /// (frames go into the peers' queues; the writes wait for the end of the turn).
    outbox: Outbox,
    /// `None` once shutting down (dropping it closes it: the kernel refuses newcomers).
    listener: Option<TcpListener>,
    /// Every connection, by the Hub's id (`peer.rs` says why not by descriptor).
    peers: HashMap<ConnId, Peer>,
    /// Peers whose queue got frames this turn, each once: flushed at the end of the turn.
    dirty: Vec<ConnId>,
    /// Closing peers and when they are dropped anyway. Every close gets the same delay, so
    /// the queue is in deadline order: a FIFO is a timer queue here.
    lingering: VecDeque<(Instant, ConnId)>,
    /// When [`Hub::tick`] next has work (the earliest idle deadline).
    hub_deadline: Option<Instant>,
    /// While out of descriptors, accepting pauses until then.
    accept_paused_until: Option<Instant>,
    /// Set by SIGINT/SIGTERM: the loop ends then, or once every peer has been flushed.
    stop_deadline: Option<Instant>,
    shutdown: Shutdown,
    wake: WakePipe,
    spare: SpareFd,
    read_buf: Vec<u8>,
    /// The lines of one read, between the decoder and the Hub (kept to reuse its allocation).
    lines: Vec<Inbound>,
    /// Reads per readiness event: level-triggered, one is enough (we will be told again);
    /// edge-triggered, until EAGAIN (up to [`EDGE_READ_BUDGET`]).
    reads_per_event: usize,
    flush: FlushPolicy,

    // ---- the readiness API: epoll(7) ----
    trigger: Trigger,
    /// The interest set, kept by the kernel: changed by `epoll_ctl` when a peer's interest
    /// changes, never rebuilt.
    epoll: Epoll,
    /// Room for what one `epoll_wait` returns.
    events: Vec<sys::epoll_event>,
    /// Edge-triggered only: sockets a callback left before EAGAIN (at its budget). The kernel
    /// will not report them again (no new edge), so the loop must come back by itself.
    unfinished: Vec<Token>,
    /// The ready sockets found by the last wait.
    ready: Vec<Ready>,
}

impl Server {
    fn new(args: Args, listener: TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let wake = WakePipe::new()?;
        let shutdown = Shutdown::on_signal(wake.waker()?)?;
        let epoll = Epoll::new()?;
        let read_interest = EPOLLIN as u32 | args.trigger.flag();
        epoll.add(listener.as_raw_fd(), read_interest, LISTENER_TOKEN)?;
        epoll.add(wake.fd(), read_interest, WAKE_TOKEN)?;
        Ok(Server {
            hub: Hub::new(args.server.hub_config()),
            args: args.server,
            outbox: Outbox::new(),
            listener: Some(listener),
            peers: HashMap::new(),
            dirty: Vec::new(),
            lingering: VecDeque::new(),
            hub_deadline: None,
            accept_paused_until: None,
            stop_deadline: None,
            shutdown,
            wake,
            spare: SpareFd::new()?,
            read_buf: vec![0; READ_BUFFER],
            lines: Vec::new(),
            reads_per_event: match args.trigger {
                Trigger::Level => 1,
                Trigger::Edge => EDGE_READ_BUDGET,
            },
            flush: args.flush,
            trigger: args.trigger,
            epoll,
            events: Vec::with_capacity(sys::MAX_EVENTS),
            unfinished: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// The event loop.
    fn run(mut self) -> io::Result<()> {
        info!(
            "serving with epoll, {:?}-triggered, one thread",
            self.trigger
        );
        loop {
            let timeout = self.next_timeout(Instant::now());
            self.wait(timeout)?;
            self.dispatch();
            self.on_tick(Instant::now());
            self.write_out();
            if self.finished(Instant::now()) {
                self.close_all();
                info!("stopped");
                return Ok(());
            }
        }
    }

    /// Sleeps until a watched socket is ready or `timeout` passes; fills `self.ready`.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ready.clear();
        // Sockets left unfinished will not be reported again: do not sleep, serve them now.
        let timeout = match self.unfinished.is_empty() {
            true => timeout,
            false => Some(Duration::ZERO),
        };
        // Only the ready sockets come back: O(ready), whatever the number of connections.
        self.epoll.wait(&mut self.events, timeout)?;
        for event in &self.events {
            let (flags, token) = (event.events, event.u64); // copies: the struct is packed
            self.ready.push(Ready {
                token: match token {
                    LISTENER_TOKEN => Token::Listener,
                    WAKE_TOKEN => Token::Wake,
                    id => Token::Peer(ConnId(id)),
                },
                readable: flags & (EPOLLIN | EPOLLHUP | EPOLLERR) as u32 != 0,
                writable: flags & EPOLLOUT as u32 != 0,
            });
        }
        for token in self.unfinished.drain(..) {
            self.ready.push(Ready {
                token,
                readable: true,
                writable: false,
            });
        }
        Ok(())
    }

    /// Calls the callback for each ready socket. Peers first, new connections last: under
    /// load the clients we have come first, and the hang-ups of this turn free descriptors
    /// before we accept.
    fn dispatch(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        let mut listener_ready = false;
        for event in ready.drain(..) {
            match event.token {
                Token::Listener => listener_ready = true,
                // The byte only woke us; `on_tick` sees the shutdown flag.
                Token::Wake => self.wake.drain(),
                Token::Peer(id) => {
                    if event.readable && self.on_peer_ready_recv(id) == Progress::MoreLeft {
                        self.come_back_to(Token::Peer(id));
                    }
                    if event.writable {
                        self.on_peer_ready_send(id);
                    }
                }
            }
        }
        self.ready = ready;
        if listener_ready && self.on_listener_ready() == Progress::MoreLeft {
            self.come_back_to(Token::Listener);
        }
    }

    /// A callback stopped at its budget with work left. Level-triggered, the kernel reports the
    /// socket again; edge-triggered, it will not (nothing *changed*), so we remember it.
    fn come_back_to(&mut self, token: Token) {
        if self.trigger == Trigger::Edge {
            self.unfinished.push(token);
        }
    }

    // ---- registering interest: what the callbacks ask of the readiness API ----------------

    /// The refusal for a descriptor this loop cannot watch: none, epoll takes any descriptor.
    fn beyond_watch_limit(&self, _fd: RawFd) -> Option<Frame> {
        None
    }

    /// A new peer: register it with the kernel, for input.
    fn watch_peer(&mut self, id: ConnId) -> io::Result<()> {
        let Some(peer) = self.peers.get(&id) else {
            return Ok(());
        };
        let events = self.interest(peer);
        self.epoll.add(peer.socket.as_raw_fd(), events, id.0)
    }

    /// A peer's interest changed (output pending or not, hung up): tell the kernel.
    fn update_interest(&mut self, id: ConnId) -> io::Result<()> {
        let Some(peer) = self.peers.get(&id) else {
            return Ok(());
        };
        let events = self.interest(peer);
        self.epoll.modify(peer.socket.as_raw_fd(), events, id.0)
    }

    /// Accepting paused or resumed: remove the listener from the set, or put it back (which,
    /// edge-triggered, reports the connections that queued up meanwhile).
    fn watch_listener(&mut self, on: bool) {
        let Some(listener) = &self.listener else {
            return;
        };
        let fd = listener.as_raw_fd();
        let interest = EPOLLIN as u32 | self.trigger.flag();
        let done = if on {
            self.epoll.add(fd, interest, LISTENER_TOKEN)
        } else {
            self.epoll.delete(fd)
        };
        if let Err(e) = done {
            warn!("epoll_ctl on the listener: {e}");
        }
    }

    /// The events to watch on a peer: input until it hangs up, output only while some is
    /// pending (an idle socket is always writable: level-triggered, it would wake us every turn).
    fn interest(&self, peer: &Peer) -> u32 {
        let mut events = self.trigger.flag();
        if peer.wants_read() {
            events |= EPOLLIN as u32;
        }
        if peer.write_interest {
            events |= EPOLLOUT as u32;
        }
        events
    }
}
