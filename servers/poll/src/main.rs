//! # chat-poll: one thread, every socket, poll(2) or select(2)
//!
//! The first server of the course that serves thousands of clients with **one thread**. Every
//! socket is non-blocking. The thread sleeps in a single system call that watches *all* of them
//! and returns when some are ready; then, for each ready socket, it does only what can be done
//! without waiting (the callbacks of `callbacks.rs`), and goes back to sleep. The [`Hub`]
//! belongs to that thread: no lock, no channel (the signal thread only writes a byte into a
//! pipe to wake it).
//!
//! ## One turn of the loop ([`Server::run`])
//! 1. Build the interest set from scratch: the listener, the wake pipe, and every peer, for
//!    reading (until it hangs up) and for writing *only while its queue holds bytes the kernel
//!    refused*. An idle socket is always writable: watching it for writes would wake the loop
//!    at once, every turn, for nothing.
//! 2. `poll(2)` (or `select(2)`), with a timeout that ends at the next timer: the Hub's next
//!    idle deadline ([`Hub::tick`]), a closing peer's linger deadline, the shutdown deadline.
//! 3. Scan the answer; call `on_listener_ready`, `on_peer_ready_recv`, `on_peer_ready_send`.
//! 4. `on_tick`: idle timeouts, lingering closes, the start of a shutdown.
//! 5. `write_out`: carry out what the Hub asked (frames into each peer's `SendQueue`), then
//!    flush every peer that got frames *once*: all the frames of the turn in one `writev`.
//!    (`--flush per-frame` writes each frame at once instead: with `loadgen run --conns 1000
//!    --room-size 10 --rate 5` that took 53,000 writes/s for 50,000 frames/s, against 12,900
//!    per turn, 3.9 frames per write; chat-epoll's docs have the full measurement.)
//!
//! ## The cost model: O(n) per call
//! poll and select are stateless: the kernel remembers nothing between two calls. So every call
//! copies the whole interest set into the kernel, the kernel checks every socket (and hooks
//! itself onto each one's wait queue, then unhooks), and we scan every answer to find the
//! ready few. With 10,000 quiet connections and one chatty one, *each* message costs a
//! 10,000-entry array walked three times. chat-epoll removes that: the interest set lives in
//! the kernel, and a wait costs O(ready).
//!
//! `select` is poll with a worse interface. Its set is a bitmap (`fd_set`) of FD_SETSIZE = 1024
//! bits, so it cannot watch descriptor 1024 or above *at all*, and a server with 1,100
//! connections has such descriptors. With `--backend select` those connections get
//! `server_full` and are closed; they are never written into an `fd_set` (in C, `FD_SET(1500,
//! &set)` writes past the end of the struct: a stack overflow). The kernel also scans bits
//! `0..=max_fd`, so select's cost grows with the *highest* descriptor, not the number watched.
//!
//! ## Level-triggered
//! poll and select report a socket on every call for as long as it is readable (or writable).
//! That is forgiving: read one chunk, and if more is waiting the next call says so again. So
//! `on_peer_ready_recv` reads once per event. (chat-epoll can also be edge-triggered: told once
//! per change, which obliges the reader to drain the socket.)
//!
//! ## Running out of descriptors
//! `accept` failing with EMFILE leaves the connection in the listen backlog, so the listener
//! stays readable and a naive loop spins a core at 100%. We keep a spare descriptor
//! (`/dev/null`): on EMFILE we close it, accept, send `server_full`, close, and reopen it
//! (`os.rs`). If even that fails, the listener leaves the interest set for 100 ms.
//!
//! ## Run it, poke it, watch it
//! ```text
//! cargo run -p chat-poll -- --addr 127.0.0.1:8888                  # or --backend select
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! {"type":"message","content":"hello"}
//! ```
//! - `strace -f -c -p $(pgrep chat-poll)`, then Ctrl-C: a table of system calls (`poll` or
//!   `select`, `recvfrom` (std's `read`), `writev`, `accept4`). Run a load against it and
//!   compare with chat-epoll.
//! - `strace -e trace=poll -p $(pgrep chat-poll)`: each call shows its whole array; watch it
//!   grow with every client you connect.
//! - `ss -tn state established '( sport = :8888 )'`: the connections; `ls /proc/$(pgrep
//!   chat-poll)/fd | wc -l`: the descriptors (sockets, the listener, the wake pipe, the spare).
//! - `RUST_LOG=debug` logs every connect and close.
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | this loop: the interest set, poll and select (what differs from chat-epoll) |
//! | `callbacks.rs` | what to do with a ready socket (compiled by chat-epoll too) |
//! | `peer.rs` | the state of one connection (compiled by chat-epoll too) |
//! | `sys.rs` | the `unsafe` calls: poll(2), select(2) and `fd_set` |
//! | `os.rs` | the self-pipe and the spare descriptor for EMFILE |

mod callbacks;
mod os;
mod peer;
mod sys;

use callbacks::FlushPolicy;
use chat_core::{
    error_frame, net, ConnId, ErrorCode, Frame, Hub, Inbound, Outbox, ServerArgs, Shutdown,
};
use clap::Parser;
use os::{SpareFd, WakePipe};
use peer::Peer;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use sys::{FdSet, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};
use tracing::{error, info, warn};

/// Bytes taken from a socket per `read`. One buffer serves every peer: one thread reads one
/// socket at a time, and each peer keeps only its unfinished line (in its decoder).
const READ_BUFFER: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "chat-poll",
    version,
    about = "Chat server: one thread, poll(2) or select(2)"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// The readiness system call: poll(2), or select(2) with its 1024-descriptor limit.
    #[arg(long, value_enum, default_value_t = Backend::Poll)]
    backend: Backend,

    /// When queued frames are written: once per loop turn (one writev carries all of a peer's
    /// frames) or right after each frame (one write per frame, to measure the difference).
    #[arg(long, value_enum, default_value_t = FlushPolicy::PerTurn)]
    flush: FlushPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Poll,
    Select,
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
    /// Reads per readiness event: level-triggered, one is enough (we will be told again).
    reads_per_event: usize,
    flush: FlushPolicy,

    // ---- the readiness API: poll(2) / select(2) ----
    backend: Backend,
    /// The interest set, rebuilt every turn: poll(2) takes it whole on every call.
    pollfds: Vec<sys::pollfd>,
    /// Who each entry is for: `pollfds[i]` watches `tokens[i]`.
    tokens: Vec<Token>,
    /// The ready sockets found by the last wait.
    ready: Vec<Ready>,
}

impl Server {
    fn new(args: Args, listener: TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let wake = WakePipe::new()?;
        let shutdown = Shutdown::on_signal(wake.waker()?)?;
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
            reads_per_event: 1,
            flush: args.flush,
            backend: args.backend,
            pollfds: Vec::new(),
            tokens: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// The event loop.
    fn run(mut self) -> io::Result<()> {
        info!("serving with {:?}, one thread", self.backend);
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
        self.build_interest_set();
        self.ready.clear();
        match self.backend {
            Backend::Poll => self.wait_poll(timeout),
            Backend::Select => self.wait_select(timeout),
        }
    }

    /// The whole interest set, from scratch: the kernel kept nothing from the last call.
    fn build_interest_set(&mut self) {
        self.pollfds.clear();
        self.tokens.clear();
        let mut watch = |fd: RawFd, events: i16, token: Token| {
            self.pollfds.push(sys::pollfd {
                fd,
                events,
                revents: 0,
            });
            self.tokens.push(token);
        };
        if let (Some(listener), None) = (&self.listener, self.accept_paused_until) {
            watch(listener.as_raw_fd(), POLLIN, Token::Listener);
        }
        watch(self.wake.fd(), POLLIN, Token::Wake);
        for (&id, peer) in &self.peers {
            let mut events = 0;
            if peer.wants_read() {
                events |= POLLIN;
            }
            if peer.write_interest {
                events |= POLLOUT;
            }
            watch(peer.socket.as_raw_fd(), events, Token::Peer(id));
        }
    }

    fn wait_poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // The kernel walks all n entries...
        if sys::poll(&mut self.pollfds, timeout)? == 0 {
            return Ok(());
        }
        // ...and so do we, to find the few that are ready.
        for (pollfd, &token) in self.pollfds.iter().zip(&self.tokens) {
            if pollfd.revents != 0 {
                self.ready.push(Ready {
                    token,
                    readable: pollfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL) != 0,
                    writable: pollfd.revents & POLLOUT != 0,
                });
            }
        }
        Ok(())
    }

    fn wait_select(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // The same interest set, as two bitmaps. Every descriptor here is below FD_SETSIZE:
        // `beyond_watch_limit` refused the others when they connected.
        let (mut readable, mut writable) = (FdSet::new(), FdSet::new());
        let mut max_fd = 0;
        for pollfd in &self.pollfds {
            if pollfd.events & POLLIN != 0 {
                readable.insert(pollfd.fd);
            }
            if pollfd.events & POLLOUT != 0 {
                writable.insert(pollfd.fd);
            }
            max_fd = max_fd.max(pollfd.fd);
        }
        if sys::select(max_fd, &mut readable, &mut writable, timeout)? == 0 {
            return Ok(());
        }
        for (pollfd, &token) in self.pollfds.iter().zip(&self.tokens) {
            let ready = Ready {
                token,
                readable: readable.contains(pollfd.fd),
                writable: writable.contains(pollfd.fd),
            };
            if ready.readable || ready.writable {
                self.ready.push(ready);
            }
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
                    if event.readable {
                        self.on_peer_ready_recv(id);
                    }
                    if event.writable {
                        self.on_peer_ready_send(id);
                    }
                }
            }
        }
        self.ready = ready;
        if listener_ready {
            self.on_listener_ready();
        }
    }

    // ---- registering interest: what the callbacks ask of the readiness API ----------------

    /// The refusal for a descriptor this loop cannot watch: select's FD_SETSIZE limit.
    fn beyond_watch_limit(&self, fd: RawFd) -> Option<Frame> {
        let refuse = self.backend == Backend::Select && !sys::fits(fd);
        refuse.then(|| {
            let message = format!(
                "select() cannot watch descriptor {fd} (FD_SETSIZE is {}); try --backend poll",
                sys::FD_SETSIZE
            );
            error_frame(ErrorCode::ServerFull, &message)
        })
    }

    /// A new peer: nothing to register, the interest set is rebuilt every turn.
    fn watch_peer(&mut self, _id: ConnId) -> io::Result<()> {
        Ok(())
    }

    /// A peer's interest changed: nothing to tell the kernel, the next turn rebuilds the set.
    fn update_interest(&mut self, _id: ConnId) -> io::Result<()> {
        Ok(())
    }

    /// Accepting paused or resumed: the next set includes the listener only when accepting.
    fn watch_listener(&mut self, _on: bool) {}
}
