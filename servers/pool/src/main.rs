//! # chat-pool: a fixed pool of worker threads
//!
//! chat-threads creates a thread for every connection; this server creates its workers once, at
//! start: `--workers N` of them. The accept loop puts each new connection in a bounded waiting
//! room (`--queue`, see `waiting.rs`); a free worker takes the oldest one and serves it with
//! exactly the blocking code of chat-threads ([`handle_connection`] is the same function) until
//! the client leaves. Then it takes the next one.
//!
//! Everything about the chat itself lives in `chat-core`; this file only moves bytes. Compare it
//! with `servers/threads`: the two differ only in who runs `handle_connection` (a new thread per
//! connection there, a pool worker here). The shared Hub, the outbound path and the thread
//! accounting are chat-threads' own files, used unchanged (`chat.rs`, `outbound.rs`,
//! `spawn.rs`).
//!
//! ## The lesson: a worker is held for a whole session
//! A pool is made for short jobs, like an HTTP request. A chat session is long and mostly
//! silent, and a worker blocked in `read` on a silent client can do nothing else. So this
//! server serves at most N clients at once: client N+1 connects, its `join` sits unread in its
//! socket, and it gets no reply at all (head-of-line blocking) until a served client leaves.
//! A client that just stays silent holds its worker until `--idle-timeout` closes it: the idle
//! timeout is what frees workers. Beyond the N served and the `--queue` waiting, clients get
//! `server_full` at once. (The waiting ones are not in the Hub yet, so `--max-conns` and the
//! idle timeout only apply to the N being served.)
//!
//! ## Choosing N: `--workers 128`
//! Each worker is one client being served, so N is "how many people chat at once", not "how
//! many cores": the CPU-bound rule N = cores would make a two-person chat of this 2-core
//! machine. 128 serves a classroom or a team, and stays cheap and bounded: at the release
//! default of 128 KiB, 128 workers reserve 16 MiB of stack, of which a few MiB are ever touched,
//! and no burst of connections can make the server create more, which is what a pool is for.
//! Raise it to serve more people at once; as N grows the pool becomes chat-threads with a cap.
//! `--queue 256`: a waiting connection costs only a socket, but its client hears nothing until
//! a worker frees up, which in a chat can take minutes, so an honest `server_full` beats a long
//! queue.
//!
//! ## Writers are not pool workers
//! The outbound side is chat-threads': the thread that handles a request writes the frames it
//! produced to every recipient's socket without blocking, and a recipient that lags behind gets
//! a writer thread of its own until it catches up. That writer is a separate thread, never a
//! pool worker. If writing were a job for the pool, a lagging client would occupy a worker
//! while it waits to be written to; N lagging clients, or N workers all blocked reading their
//! silent clients, would leave no worker to write anyone's replies, and every reply would wait
//! for a worker that never comes free: the pool would deadlock on itself. A writer that only
//! waits on one client's socket cannot be starved by the readers, and cannot starve them.
//!
//! ## What it costs
//! The same as chat-threads per connection (a stack per thread, a context switch per request,
//! one lock for every request), but bounded: the server has N + 3 threads, plus one writer per
//! lagging client, so memory does not grow with the number of clients. What grows instead is
//! the *wait*: the fixed pool turns overload into latency (and then `server_full`) instead of
//! into threads.
//!
//! ## Run it and poke it
//! ```text
//! cargo run --release -p chat-pool -- --workers 2 --idle-timeout 30
//! nc 127.0.0.1 8888         # three terminals, each sends {"type":"join","nickname":"..."}:
//!                           # the third gets no answer until one of the first two sends
//!                           # {"type":"quit"} or stays silent for 30 s
//! cargo run -p chat-client -- --nick carol              # a friendlier client
//! cargo run -p loadgen -- check --addr 127.0.0.1:8888    # grade it against the protocol
//! ```
//! `loadgen check` passes every scenario when the pool has more workers than the checker has
//! clients at once (the default does; `cargo test -p chat-pool` runs it with `--workers 64`).
//! Run it against `--workers 2 --idle-timeout 2` (and tell the checker those limits) and the
//! scenarios that need three clients at once fail, 8 of them: each third client is answered
//! only when the idle timeout has dropped one of the first two, too late and into a room that
//! is not what the scenario set up; `limits.server_full` fails too, because client 33 waits in
//! the queue instead of reaching the Hub's `--max-conns`. Those failures are the lesson.

// The shared state, the outbound path and thread accounting are chat-threads' files, unchanged.
#[path = "../../threads/src/chat.rs"]
mod chat;
#[path = "../../threads/src/outbound.rs"]
mod outbound;
#[path = "../../threads/src/spawn.rs"]
mod spawn;
mod waiting;

use chat::{idle_timer, Chat};
use chat_core::net::{
    announce, bind_listener, configure_accepted, init_logging, is_fd_exhaustion,
    is_transient_accept_error, raise_fd_limit,
};
use chat_core::shutdown::SHUTDOWN_DEADLINE;
use chat_core::{error_frame, ErrorCode, Inbound, ServerArgs, Shutdown};
use clap::Parser;
use outbound::{flush_all, lock, Outbound};
use std::io::{self, Read, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use waiting::WaitingRoom;

/// A chat server with a fixed pool of worker threads, blocking I/O, and the Hub behind a lock.
#[derive(Parser, Debug)]
#[command(name = "chat-pool", version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Worker threads: how many clients are served at once (see the module docs).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    workers: u64,

    /// Connections that may wait for a free worker; more get `server_full`.
    #[arg(long, default_value_t = 256)]
    queue: usize,

    /// Stack size of each worker (and of a lagging client's writer thread), in KiB.
    #[arg(long, default_value_t = DEFAULT_STACK_KIB, value_parser = clap::value_parser!(u64).range(16..))]
    stack_size: u64,

    /// Most threads at once; a client that would need one more gets `server_full`
    /// (default: what `vm.max_map_count` allows, see `spawn.rs`).
    #[arg(long)]
    max_threads: Option<usize>,
}

/// Default `--stack-size` in KiB: twice what a reader needs at worst (parsing JSON nested 128
/// levels deep, see chat-threads' docs); debug builds need four times more than release builds.
const DEFAULT_STACK_KIB: u64 = if cfg!(debug_assertions) { 512 } else { 128 };

/// Bytes one `read` asks for. On the thread's stack: with 10,000 threads, every KiB here is
/// 10 MiB of memory. Longer lines simply take several reads.
const READ_BUFFER: usize = 4096;

/// How long to pause when `accept` fails for lack of file descriptors (see `serve`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every thread of the server shares.
struct Server {
    /// The Hub and every connection's outbound queue, behind the one lock (see `chat.rs`).
    chat: Mutex<Chat>,
    /// The limits: each new connection's decoder and queue are made from them.
    args: ServerArgs,
    /// `--stack-size`, in bytes.
    stack_size: usize,
    /// Accepted connections waiting for a free worker.
    waiting: WaitingRoom,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let fd_limit = raise_fd_limit()?;
    let listener = bind_listener(args.server.addr, &args.server.socket)?;
    let addr = listener.local_addr()?;

    // SIGINT/SIGTERM arrive while the main thread sits in `accept`: the watcher thread wakes it
    // by connecting to our own listener. (Threads blocked in `read` are woken when their
    // connection is hung up, see `stop`.)
    let shutdown = Shutdown::on_signal(move || {
        let _ = TcpStream::connect_timeout(&loopback(addr), Duration::from_secs(1));
    })?;

    let max_threads = spawn::set_limit(args.max_threads);
    let server = Arc::new(Server {
        chat: Mutex::new(Chat::new(args.server.hub_config())),
        args: args.server,
        stack_size: usize::try_from(args.stack_size.saturating_mul(1024)).unwrap_or(usize::MAX),
        waiting: WaitingRoom::new(args.queue),
    });
    // The pool: every worker thread is created now, once.
    for i in 0..args.workers {
        let server = Arc::clone(&server);
        spawn::spawn(format!("worker-{i}"), server.stack_size, move || {
            worker_loop(&server);
        })?;
    }
    if let Some(period) = server.args.idle_timeout() {
        let server = Arc::clone(&server);
        spawn::spawn("idle-timer".into(), server.stack_size, move || {
            idle_timer(&server.chat, period);
        })?;
    }
    // Ready: the one line on stdout (scripts and tests wait for it).
    announce(addr);
    tracing::info!(
        %addr, fd_limit, workers = args.workers, queue = args.queue, max_threads,
        "thread pool"
    );
    serve(&listener, &server, &shutdown);
    drop(listener); // stop accepting: clients still in the backlog are refused by the kernel
    stop(&server);
    tracing::info!("stopped");
    Ok(())
}

/// The accept loop: put each new connection in the waiting room, until SIGINT/SIGTERM.
fn serve(listener: &TcpListener, server: &Arc<Server>, shutdown: &Shutdown) {
    let mut out_of_fds = false;
    while !shutdown.is_requested() {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(e) if is_fd_exhaustion(&e) => {
                // Out of descriptors. The pending client stays in the backlog; retrying at once
                // would spin. Pause, then try again (the clients we have are served meanwhile).
                if !out_of_fds {
                    tracing::warn!("accept: {e}; backing off");
                    out_of_fds = true;
                }
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) if is_transient_accept_error(&e) => continue,
            Err(e) => {
                tracing::error!("accept: {e}");
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        out_of_fds = false;
        if shutdown.is_requested() {
            // The watcher waking us, or a client arriving with the signal.
            refuse(
                &stream,
                ErrorCode::ShuttingDown,
                "the server is shutting down",
            );
            break;
        }
        if let Err(e) = configure_accepted(&stream, &server.args.socket) {
            tracing::debug!("socket options: {e}");
        }
        admit(stream, server);
    }
}

/// Lets a new connection wait for a free worker: the whole model in one call. When `--queue`
/// connections are already waiting, the client is answered `server_full`.
fn admit(stream: TcpStream, server: &Server) {
    if let Err(stream) = server.waiting.enter(stream) {
        refuse(
            &stream,
            ErrorCode::ServerFull,
            "every worker is busy and the queue is full",
        );
    }
}

/// A pool worker: takes waiting connections one after another and serves each until it leaves.
/// While it serves one, the others wait: that is head-of-line blocking.
fn worker_loop(server: &Server) {
    while let Some(stream) = server.waiting.take() {
        handle_connection(Arc::new(stream), server);
    }
}

/// Serves one client until it leaves or is closed: reads with blocking `read`s, and writes what
/// each request produced, for this client and for others, without blocking (see `outbound.rs`).
fn handle_connection(stream: Arc<TcpStream>, server: &Server) {
    // A client that reads nothing for the idle timeout is as gone as one that says nothing: this
    // bounds how long a writer thread may wait for it.
    let _ = stream.set_write_timeout(server.args.idle_timeout());
    let outbound = Arc::new(Outbound::new(
        Arc::clone(&stream),
        server.args.max_backlog,
        server.stack_size,
    ));

    // 1. The Hub gives it an id, or refuses it (`--max-conns`).
    let (id, touched) = lock(&server.chat).register(&outbound);
    flush_all(&touched);
    let Some(id) = id else {
        return;
    };
    tracing::debug!(conn = %id, "connected");

    // 2. Read until the client hangs up, or someone closes the connection (the Hub, the idle
    //    timer, a shutdown: the hang-up's `shutdown(2)` makes `read` return 0).
    let mut decoder = server.args.decoder();
    let mut buf = [0u8; READ_BUFFER];
    loop {
        let n = match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(conn = %id, "read failed: {e}");
                break;
            }
        };
        // Decode outside the lock: parsing JSON is most of the work of a request, and it needs
        // nothing shared. Only the Hub step and the queueing happen under the lock; the frames
        // are written once it is released.
        let lines: Vec<Inbound> = decoder.feed(&buf[..n]).collect();
        if !lines.is_empty() {
            let touched = lock(&server.chat).handle(id, lines, Instant::now());
            flush_all(&touched);
        }
        if outbound.is_closed() {
            break; // `quit`, `line_too_long`, or over `--max-backlog`
        }
    }

    // 3. Tell the Hub (its room hears `left`); what is queued for the client is still sent.
    let touched = lock(&server.chat).leave(id);
    flush_all(&touched);
    tracing::debug!(conn = %id, "disconnected");
}

/// SIGINT/SIGTERM, after the accept loop stopped: every client gets `shutting_down` and is hung
/// up (which wakes its thread). A lagging client's writer thread has until shortly before the
/// spec's 2 s to get it through. Then `main` returns and the process exits 0 (threads still
/// blocked on a stalled client end with it).
fn stop(server: &Server) {
    tracing::info!("shutting down");
    let deadline = Instant::now() + SHUTDOWN_DEADLINE - Duration::from_millis(500);
    // Clients still waiting were never served: they are told at once.
    for stream in server.waiting.close() {
        refuse(
            &stream,
            ErrorCode::ShuttingDown,
            "the server is shutting down",
        );
    }
    let touched = lock(&server.chat).shutdown();
    flush_all(&touched);
    for outbound in &touched {
        outbound.wait_finished(deadline);
    }
}

/// Answers a client we will not serve with one `error` line and hangs up. The socket is made
/// non-blocking first: a client that does not read must not stall the thread refusing it.
fn refuse(stream: &TcpStream, code: ErrorCode, message: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(&error_frame(code, message));
    let _ = stream.shutdown(Direction::Both);
}

/// The address to connect to in order to reach our own listener (0.0.0.0 is not connectable).
fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}
