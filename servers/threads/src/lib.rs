//! # The thread-server core: what chat-threads and chat-pool share
//!
//! Both servers serve a client with a thread that sleeps in `read` on its socket, around one
//! Hub behind one lock. They differ only in *which* thread: chat-threads starts one per
//! connection (its `main.rs`), chat-pool hands connections to a fixed set of workers (its
//! `main.rs` and `waiting.rs`). Everything else is here, once:
//!
//! | module | concept |
//! |---|---|
//! | [`connection`] | one client's session: blocking reads, decode outside the lock, the Hub under it |
//! | [`chat`] | the Hub and every connection's queue behind the one lock; the idle timer |
//! | [`outbound`] | writing without blocking, and a writer thread for a client that lags |
//! | [`spawn`] | starting a thread without crashing the server: the kernel's limits, counted |
//! | [`refusal`] | turning a client away with an error line it can read: a lingering close |
//!
//! and, in this file, the steps both `main.rs` call in the same order: [`start`], [`serve`]
//! (the accept loop) and [`stop`] (the graceful shutdown).

pub mod chat;
pub mod connection;
pub mod outbound;
pub mod refusal;
pub mod spawn;

pub use connection::handle_connection;
pub use refusal::refuse;

use chat::{idle_timer, Chat};
use chat_core::shutdown::STOP_GRACE;
use chat_core::sync::lock;
use chat_core::{net, ErrorCode, ServerArgs, Shutdown};
use outbound::flush_all;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The flags of both thread servers.
#[derive(clap::Args, Debug, Clone)]
pub struct ThreadArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Stack size of each connection's thread (and of a lagging client's writer thread), in KiB.
    #[arg(long, default_value_t = DEFAULT_STACK_KIB, value_parser = clap::value_parser!(u64).range(16..))]
    pub stack_size: u64,

    /// Most threads at once; a client that would need one more gets `server_full`
    /// (default: what `vm.max_map_count` allows, see `spawn.rs`).
    #[arg(long)]
    pub max_threads: Option<usize>,
}

/// Default `--stack-size` in KiB: twice what a reader needs at worst (parsing JSON nested 128
/// levels deep, see chat-threads' docs); debug builds need four times more than release builds.
pub const DEFAULT_STACK_KIB: u64 = if cfg!(debug_assertions) { 512 } else { 128 };

/// What every thread of the server shares.
#[derive(Debug)]
pub struct Server {
    /// The Hub and every connection's outbound queue, behind the one lock (see `chat.rs`).
    pub chat: Mutex<Chat>,
    /// The limits: each new connection's decoder and queue are made from them.
    pub args: ServerArgs,
    /// `--stack-size`, in bytes.
    pub stack_size: usize,
}

/// The start of both servers, in the order every server follows: raise the fd limit, bind,
/// install the signal handler (it wakes the accept loop by connecting to it), start the
/// idle-timer thread. Returns the listener, the shared state and the stop flag; the caller
/// starts what its model adds, then announces `listening on`.
pub fn start(args: ThreadArgs) -> io::Result<(TcpListener, Arc<Server>, Shutdown)> {
    let fd_limit = net::raise_fd_limit()?;
    let listener = net::bind_listener(args.server.addr, &args.server.socket)?;
    let addr = listener.local_addr()?;
    // SIGINT/SIGTERM arrive while the main thread sits in `accept`: the watcher thread wakes it
    // by connecting to our own listener. (Threads blocked in `read` are woken when their
    // connection is hung up, see `stop`.)
    let shutdown = Shutdown::on_signal(move || net::wake_acceptor(addr))?;
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
    tracing::info!(%addr, fd_limit, stack_kib = args.stack_size, max_threads, "threads ready");
    Ok((listener, server, shutdown))
}

/// The accept loop: hands each new connection to `admit` (the model's one decision), until
/// SIGINT/SIGTERM.
pub fn serve(
    listener: &TcpListener,
    server: &Server,
    shutdown: &Shutdown,
    mut admit: impl FnMut(TcpStream, SocketAddr),
) {
    while let Some((stream, peer)) = net::accept_blocking(listener, shutdown) {
        if shutdown.is_requested() {
            // The watcher waking us, or a client arriving with the signal.
            refuse(
                &stream,
                ErrorCode::ShuttingDown,
                "the server is shutting down",
            );
            break;
        }
        if let Err(e) = net::configure_accepted(&stream, &server.args.socket) {
            tracing::debug!("socket options: {e}");
        }
        admit(stream, peer);
    }
}

/// SIGINT/SIGTERM, after the accept loop stopped: every client gets `shutting_down` and is hung
/// up (which wakes its thread). A lagging client's writer thread has [`STOP_GRACE`] to get it
/// through. Then `main` returns and the process exits 0 (threads still waiting on a stalled
/// client end with it).
pub fn stop(server: &Server) {
    tracing::info!("shutting down");
    let deadline = Instant::now() + STOP_GRACE;
    let touched = lock(&server.chat).shutdown();
    flush_all(&touched);
    for outbound in &touched {
        outbound.wait_finished(deadline);
    }
}
