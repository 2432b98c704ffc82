//! # chat-threads: one OS thread per connection
//!
//! The most direct way to serve many clients at once: every accepted connection gets its own
//! thread, which blocks in `read` until its client says something. The code for one client reads
//! like a sequential program (read, answer, repeat); the kernel's scheduler does the
//! multiplexing, by running whichever threads have something to do.
//!
//! Everything about the chat itself lives in `chat-core`; this file only moves bytes. Compare it
//! with `servers/blocking` and `servers/pool`: the same steps have the same names there.
//!
//! ## The model
//! - The main thread `accept`s in a loop and spawns a thread per connection (`conn-PORT`, see
//!   [`spawn_connection`]), with a small explicit stack (`--stack-size`).
//! - That thread ([`handle_connection`]) reads with blocking I/O and decodes lines *outside* any
//!   lock, then locks the shared [`Chat`] (the Hub and every connection's outbound queue) just
//!   long enough to run the requests through the Hub and queue the resulting frames. Queueing
//!   under the lock is what keeps one order per room (guarantee 2, see `chat.rs`).
//! - With the lock released, the same thread writes those frames to every recipient's socket,
//!   *without blocking* (`MSG_DONTWAIT`): the kernel's socket buffer takes them. A recipient
//!   whose buffer is full (it reads slower than its room talks) gets a writer thread of its
//!   own (`writer-PORT`) until it catches up; one that stops reading is disconnected when its
//!   queue passes `--max-backlog`. So no thread ever waits on another client's socket, and no
//!   socket is written with the lock held (guarantee 4, see `outbound.rs`).
//! - An `idle-timer` thread calls `Hub::tick` when the next idle deadline comes.
//! - Whoever closes a connection (the Hub on `quit` or `line_too_long`, the idle timer, the
//!   shutdown) marks its queue closed; once the queue is sent, the socket is `shutdown(2)`,
//!   which also wakes the thread blocked in `read`. No read timeouts, no polling: a thread
//!   asleep in `read` costs no CPU at all.
//!
//! ## What it costs
//! - **Memory.** A thread per connection, each with its own stack. `--stack-size` is *reserved*
//!   address space (Rust's default is 2 MiB: 10,000 threads would reserve 20 GiB); only the
//!   pages a thread touches become resident, a few KiB, plus about 16 KiB of kernel stack and
//!   bookkeeping per thread. The deepest thing a reader does is parsing JSON nested 128 levels
//!   deep (serde_json's limit): about 60 KiB of stack in a release build, about 250 KiB in a
//!   debug build, whose unoptimised frames are much bigger. Overflowing the stack hits its guard
//!   page and Rust aborts the whole process, so a too-small stack lets one client crash the
//!   server: the default is 128 KiB in release builds and 512 KiB in debug builds.
//! - **Kernel limits.** Threads take process ids (`/proc/sys/kernel/pid_max`, 32768 by
//!   default) and count against `threads-max` and `ulimit -u`; when the kernel refuses one
//!   (EAGAIN), that client is answered `server_full` and the server carries on. Each Rust
//!   thread is also four memory mappings (its stack and the alternate signal stack that
//!   reports stack overflows, each with a guard page) out of 65,530 per process
//!   (`vm.max_map_count`), and running out of *those* aborts the process instead of failing
//!   the spawn. So the server counts its threads and stops at `--max-threads`, by default what
//!   the mappings allow (about 15,000), answering `server_full` beyond (see `spawn.rs`). It is
//!   also why a connection does not keep a second, writer thread for its whole life: with two
//!   threads per connection the server died at 8,000 connections.
//! - **Context switches.** Every request wakes its connection's thread: with 10,000 clients the
//!   scheduler juggles 10,000 threads, a few microseconds per switch. Writing a broadcast from
//!   the sender's thread keeps it to one wake-up per request; a writer thread per recipient
//!   would make a message to a room of 10 cost 11.
//! - **Lock contention.** Every request of every client goes through one lock. Parsing and
//!   writing happen outside it, but with thousands of busy clients on 2 cores the threads queue
//!   up on it, and each wait is a sleep and a wake-up more.
//! - **Spawning.** A thread costs tens of microseconds to create (a stack `mmap`, `clone(2)`),
//!   paid on every connection; chat-pool creates its threads once.
//!
//! ## Run it and poke it
//! ```text
//! cargo run --release -p chat-threads -- --stack-size 64   # listening on 127.0.0.1:8888
//! nc 127.0.0.1 8888                      # in a second terminal: type requests by hand
//! {"type":"join","nickname":"ana","room":"rust"}
//! {"type":"message","content":"hello"}
//! cargo run -p chat-client -- --nick bob --room rust     # a third: a friendlier client
//! ls /proc/$(pgrep chat-threads)/task | wc -l           # threads: 3 + 1 per client
//! cargo run -p loadgen -- check --addr 127.0.0.1:8888    # grade it against the protocol
//! ```
//! `loadgen check` passes every scenario: any number of clients are served at once, a stalled
//! reader is disconnected at `--max-backlog` while the others go on, and SIGTERM answers every
//! client `shutting_down`. `cargo test -p chat-threads` runs it, and puts 10,000 clients in
//! rooms of 10 to check that every broadcast reaches every member, in order.

mod chat;
mod outbound;
mod spawn;

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

/// A chat server with one OS thread per connection, blocking I/O, and the Hub behind a lock.
#[derive(Parser, Debug)]
#[command(name = "chat-threads", version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Stack size of each connection's thread (and of a lagging client's writer thread), in KiB.
    #[arg(long, default_value_t = DEFAULT_STACK_KIB, value_parser = clap::value_parser!(u64).range(16..))]
    stack_size: u64,

    /// Most threads at once; a client that would need one more gets `server_full`
    /// (default: what `vm.max_map_count` allows, see `spawn.rs`).
    #[arg(long)]
    max_threads: Option<usize>,
}

/// Default `--stack-size` in KiB: twice what a reader needs at worst (see the module docs);
/// debug builds need four times more than release builds.
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
    });
    if let Some(period) = server.args.idle_timeout() {
        let server = Arc::clone(&server);
        spawn::spawn("idle-timer".into(), server.stack_size, move || {
            idle_timer(&server.chat, period);
        })?;
    }
    // Ready: the one line on stdout (scripts and tests wait for it).
    announce(addr);
    tracing::info!(
        %addr, fd_limit, stack_kib = args.stack_size, max_threads,
        "one thread per connection"
    );
    serve(&listener, &server, &shutdown);
    drop(listener); // stop accepting: clients still in the backlog are refused by the kernel
    stop(&server);
    tracing::info!("stopped");
    Ok(())
}

/// The accept loop: give each new connection its own thread, until SIGINT/SIGTERM.
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
        spawn_connection(stream, server);
    }
}

/// Gives a new connection its own thread: the whole model in one call. When the kernel has no
/// thread left to give (EAGAIN), or `--max-threads` is reached, the client is answered
/// `server_full`.
fn spawn_connection(stream: TcpStream, server: &Arc<Server>) {
    // Named after the client's port, for `ps -L`, `top -H` and panic messages.
    let name = format!("conn-{}", stream.peer_addr().map_or(0, |addr| addr.port()));
    let stream = Arc::new(stream);
    let spawned = {
        let (stream, server) = (Arc::clone(&stream), Arc::clone(server));
        spawn::spawn(name, server.stack_size, move || {
            handle_connection(stream, &server);
        })
    };
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread for a client: {e}");
        refuse(
            &stream,
            ErrorCode::ServerFull,
            "the server cannot start another thread",
        );
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
