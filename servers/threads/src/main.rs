//! # chat-threads: one OS thread per connection
//!
//! The most direct way to serve many clients at once: every accepted connection gets its own
//! thread, which blocks in `read` until its client says something. The code for one client reads
//! like a sequential program (read, answer, repeat); the kernel's scheduler does the
//! multiplexing, by running whichever threads have something to do.
//!
//! Everything about the chat itself lives in `chat-core`, and everything chat-threads shares with
//! chat-pool (the session of one client, the shared state, the write path, thread accounting)
//! in this crate's library (`lib.rs`). This file is what makes the model: a thread per
//! connection, [`spawn_connection`]. Compare it with `servers/pool/src/main.rs`.
//!
//! ## The model
//! - The main thread `accept`s in a loop and spawns a thread per connection (`conn-PORT`, see
//!   [`spawn_connection`]), with a small explicit stack (`--stack-size`).
//! - That thread (`handle_connection`, in `connection.rs`) reads with blocking I/O and decodes lines *outside* any
//!   lock, then locks the shared `Chat` (the Hub and every connection's outbound queue) just
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
//!   shutdown, an overflow) marks its queue closed; once the queue is sent, the socket is `shutdown(2)`,
//!   which also wakes the thread blocked in `read`. No read timeouts, no polling: a thread
//!   asleep in `read` costs no CPU at all.
//!
//! ## What it costs
//! - **Memory.** A thread per connection, each with its own stack. `--stack-size` is *reserved*
//!   address space (Rust's default is 2 MiB: 10,000 threads would reserve 20 GiB); only the
//!   pages a thread touches become resident, plus a kernel stack and bookkeeping per thread
//!   (lesson 02 measures both). The deepest thing a reader does is parsing JSON nested 128
//!   levels deep (serde_json's limit), and a debug build's unoptimised frames need several times
//!   the stack of a release build's. Overflowing the stack hits its guard page and Rust aborts
//!   the whole process, so a too-small stack lets one client crash the server: the default
//!   (`DEFAULT_STACK_KIB`) is twice the deepest reader's need, 128 KiB in release builds and
//!   512 KiB in debug builds.
//! - **Kernel limits.** Threads take process ids (`/proc/sys/kernel/pid_max`, 32768 by
//!   default) and count against `threads-max` and `ulimit -u`; when the kernel refuses one
//!   (EAGAIN), that client is answered `server_full` and the server carries on. Each Rust
//!   thread is also four memory mappings (its stack and the alternate signal stack that
//!   reports stack overflows, each with a guard page) out of 65,530 per process
//!   (`vm.max_map_count`), and running out of *those* aborts the process instead of failing
//!   the spawn. So the server counts its threads and stops at `--max-threads`, by default what
//!   the mappings allow, answering `server_full` beyond (see `spawn.rs`). It is also why a
//!   connection does not keep a second, writer thread for its whole life: that would halve the
//!   number of clients the mappings allow.
//! - **Context switches.** Every request wakes its connection's thread: with 10,000 clients the
//!   scheduler juggles 10,000 threads, each switch a trip through the kernel. Writing a broadcast from
//!   the sender's thread keeps it to one wake-up per request; a writer thread per recipient
//!   would make a message to a room of 10 cost 11.
//! - **Lock contention.** Every request of every client goes through one lock. Parsing and
//!   writing happen outside it, but with thousands of busy clients on 2 cores the threads queue
//!   up on it, and each wait is a sleep and a wake-up more.
//! - **Spawning.** A thread costs a stack `mmap` and a `clone(2)` to create, paid on every
//!   connection; chat-pool creates its threads once.
//!
//! Lesson 02 measures these costs (memory per connection, CPU beside idle clients, against an
//! event loop under the same load).
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

use chat_core::net;
use chat_core::ErrorCode;
use chat_threads::{handle_connection, refuse, serve, spawn, start, stop, Server, ThreadArgs};
use clap::Parser;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;

/// A chat server with one OS thread per connection, blocking I/O, and the Hub behind a lock.
#[derive(Parser, Debug)]
#[command(name = "chat-threads", version)]
struct Args {
    #[command(flatten)]
    threads: ThreadArgs,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    let (listener, server, shutdown) = start(args.threads)?;
    // Ready: the one line on stdout (scripts and tests wait for it).
    net::announce(listener.local_addr()?);
    tracing::info!("one thread per connection");
    serve(&listener, &server, &shutdown, |stream, peer| {
        spawn_connection(stream, peer, &server)
    });
    drop(listener); // stop accepting: clients still in the backlog are refused by the kernel
    stop(&server);
    tracing::info!("stopped");
    Ok(())
}

/// Gives a new connection its own thread: the whole model in one call. When the kernel has no
/// thread left to give (EAGAIN), or `--max-threads` is reached, the client is answered
/// `server_full`.
fn spawn_connection(stream: TcpStream, peer: SocketAddr, server: &Arc<Server>) {
    // Named after the client's port, for `ps -L`, `top -H` and panic messages.
    let name = format!("conn-{}", peer.port());
    let stream = Arc::new(stream);
    let spawned = {
        let (stream, server) = (Arc::clone(&stream), Arc::clone(server));
        spawn::spawn(name, server.stack_size, move || {
            handle_connection(stream, peer, &server);
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
