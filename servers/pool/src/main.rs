//! # chat-pool: a fixed pool of worker threads
//!
//! chat-threads creates a thread for every connection; this server creates its workers once, at
//! start: `--workers N` of them. The accept loop puts each new connection in a bounded waiting
//! room (`--queue`, see `waiting.rs`); a free worker takes the oldest one and serves it with
//! exactly the blocking code of chat-threads (`chat_threads::handle_connection` is the same
//! function) until the client leaves. Then it takes the next one.
//!
//! Everything about the chat itself lives in `chat-core`, and everything a thread server needs
//! (the session of one client, the shared Hub, the write path, thread accounting, the accept
//! loop and the shutdown) in chat-threads' library. This file keeps only what a pool adds: the
//! workers ([`worker_loop`]), the admission ([`admit`]) and the waiting room (`waiting.rs`).
//! Compare it with `servers/threads/src/main.rs`: the two differ in who runs
//! `handle_connection` (a new thread per connection there, a pool worker here).
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
//! default of 128 KiB of stack, 128 workers reserve 16 MiB of address space, and no burst of
//! connections can make the server create more, which is what a pool is for.
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

mod waiting;

use chat_core::net;
use chat_core::ErrorCode;
use chat_threads::{handle_connection, refuse, serve, spawn, start, stop, Server, ThreadArgs};
use clap::Parser;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use waiting::WaitingRoom;

/// A chat server with a fixed pool of worker threads, blocking I/O, and the Hub behind a lock.
#[derive(Parser, Debug)]
#[command(name = "chat-pool", version)]
struct Args {
    #[command(flatten)]
    threads: ThreadArgs,

    /// Worker threads: how many clients are served at once (see the module docs).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    workers: u64,

    /// Connections that may wait for a free worker; more get `server_full`.
    #[arg(long, default_value_t = 256)]
    queue: usize,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    let (listener, server, shutdown) = start(args.threads)?;
    let waiting = Arc::new(WaitingRoom::new(args.queue));
    // The pool: every worker thread is created now, once.
    for i in 0..args.workers {
        let (server, waiting) = (Arc::clone(&server), Arc::clone(&waiting));
        spawn::spawn(format!("worker-{i}"), server.stack_size, move || {
            worker_loop(&waiting, &server);
        })?;
    }
    // Ready: the one line on stdout (scripts and tests wait for it).
    net::announce(listener.local_addr()?);
    tracing::info!(workers = args.workers, queue = args.queue, "thread pool");
    serve(&listener, &server, &shutdown, |stream, peer| {
        admit(stream, peer, &waiting)
    });
    drop(listener); // stop accepting: clients still in the backlog are refused by the kernel
                    // Clients still waiting were never served: they are told at once.
    for (stream, _) in waiting.close() {
        refuse(
            &stream,
            ErrorCode::ShuttingDown,
            "the server is shutting down",
        );
    }
    stop(&server);
    tracing::info!("stopped");
    Ok(())
}

/// Lets a new connection wait for a free worker: the whole model in one call. When `--queue`
/// connections are already waiting, the client is answered `server_full`.
fn admit(stream: TcpStream, peer: SocketAddr, waiting: &WaitingRoom) {
    if let Err((stream, _)) = waiting.enter(stream, peer) {
        refuse(
            &stream,
            ErrorCode::ServerFull,
            "every worker is busy and the queue is full",
        );
    }
}

/// A pool worker: takes waiting connections one after another and serves each until it leaves.
/// While it serves one, the others wait: that is head-of-line blocking.
fn worker_loop(waiting: &WaitingRoom, server: &Server) {
    while let Some((stream, peer)) = waiting.take() {
        handle_connection(Arc::new(stream), peer, server);
    }
}
