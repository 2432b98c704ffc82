//! # chat-async: a task per connection on the tokio runtime
//!
//! This server reads like the thread-per-connection one (read a line, handle it, write the
//! replies: straight-line code, one "thread of control" per client) and runs like the epoll
//! one (non-blocking sockets, readiness events, a few threads for 10,000 clients). The `.await`
//! points are where a thread would block; instead, the task is parked and its thread runs
//! another task.
//!
//! ## What the runtime does that chat-epoll did by hand
//!
//! | chat-epoll, by hand | tokio, for us |
//! |---|---|
//! | `epoll_create1`, `epoll_ctl(ADD)` for each accepted socket | the I/O driver (mio, so epoll, underneath) registers a socket when tokio adopts it, edge-triggered, once |
//! | a `Peer` struct remembering where a read or a write stopped | the task's own local variables, kept across `.await` in the future's state machine |
//! | `EAGAIN`: note it, go back to `epoll_wait`, resume on the event | `poll_read_ready` / `poll_write_ready` return `Pending`: the driver files the task's `Waker` under that socket's readiness, and wakes it on the event (`connection.rs`) |
//! | `EPOLLOUT` on only while output is pending | the task waits for write readiness only after a `try_write` said `WouldBlock` (`connection.rs`, `outbound.rs`) |
//! | the loop calling `on_peer_ready_recv` for each ready descriptor | the scheduler polling each task whose waker fired |
//! | one thread | `--threads` workers, each with a local run queue; an idle worker *steals* half of a busy one's queue (work stealing), so both cores stay busy without us deciding who serves whom |
//! | the `epoll_wait` timeout = the Hub's next deadline | a timer wheel: the ticker task's `sleep_until` (`ticker.rs`) |
//! | a self-pipe written by the signal thread | `tokio::signal` (the same trick, inside the driver) and a `CancellationToken` |
//!
//! What we still do by hand, because it is the chat's business and not the runtime's: the
//! per-connection bounded queue (`--max-backlog` in *bytes*), the order of frames in a room,
//! cutting off a slow reader, and flushing what is queued before closing.
//!
//! ## The shape
//! - Per connection, **one task** ([`connection`]): it waits for whichever comes first, input
//!   (socket -> `LineDecoder` -> Hub) or frames queued for it (queue -> socket), with nothing
//!   held while it waits but its waker: no read buffer (one per runtime thread, lent for a
//!   read), no stored futures. A slow socket parks only its own task's writing; its requests
//!   are still read, so the Hub sees it and can close it.
//! - The Hub and the table of outbound queues sit behind one **std `Mutex`** ([`shared`]),
//!   taken for microseconds and never across an `.await`. Frames are *pushed* into the
//!   members' queues under the lock (that keeps one order per room) and *written* by each
//!   member's own task outside it: no lock is held across anybody's write.
//! - **Bounded outbound**: chat-core's `SendQueue` behind a std `Mutex` ([`outbound`]), with the
//!   task's waker beside it: a push wakes the task only if it is parked waiting for frames. A
//!   push that would take a queue past `--max-backlog` bytes cuts that connection off at once,
//!   and the Hub tells its room `left` before the next request is handled.
//! - **Graceful shutdown**: SIGINT/SIGTERM cancel a `CancellationToken`; the accept loop stops,
//!   the Hub sends everyone `shutting_down`, and a `TaskTracker` waits (at most 1.5 s) for every
//!   connection's tasks to finish flushing.
//! - **Idle timeout**: one ticker task sleeps until the Hub's next deadline, on tokio's clock, so
//!   `tests/time.rs` checks a 120 s timeout with paused time, in no real time at all.
//!
//! ## What the convenience costs
//! A broadcast to a room of 10 wakes up to 10 tasks, each of which is scheduled, polled and
//! makes its own `writev`, where chat-epoll appends to 10 queues and flushes each once per loop
//! turn; and the runtime threads wake each other (`futex`) to share the work. Three measures
//! keep that in check: a task already awake is not woken again by a push (it writes anyway); a
//! task yields once before writing, whether its own input or a queued frame woke it, so frames
//! queued by the tasks that run meanwhile leave in the same `writev` (the async counterpart of
//! a loop's per-turn flush); and a read is parsed outside the lock, which is then taken once
//! for all its lines. With requests that carry more work per wake-up (ping, large messages) the
//! second core makes up for it; with tiny fan-out messages on 2 cores, where the load generator
//! holds the other core, there is no idle core for the second thread to use. Lesson 07 measures
//! it against chat-epoll and chat-reactor.
//!
//! ## Run it, poke it
//! ```text
//! cargo run --release -p chat-async -- --addr 127.0.0.1:8888 --threads 2
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! ```
//! - `top -H -p $(pgrep chat-async)`: `--threads` runtime workers share the load; under
//!   `loadgen run` both are busy.
//! - `strace -f -c -p $(pgrep chat-async)`: the same `epoll_wait`, `read`, `writev` as chat-epoll,
//!   plus `futex` (a worker waking another) that a single thread never needs.
//!
//! | file | concept |
//! |---|---|
//! | `lib.rs` (this file) | the accept loop, EMFILE back-off, graceful shutdown |
//! | [`connection`] | the task of each connection: socket -> decoder -> Hub, and its queue -> socket |
//! | [`outbound`] | the bounded queue of each connection, and what wakes its task (plus the two-task writer chat-cluster uses) |
//! | [`shared`] | the Hub behind a std `Mutex`, never held across an `.await` |
//! | [`ticker`] | the idle timeout on tokio's clock |
//! | `main.rs` | flags, the runtime, SIGINT/SIGTERM -> a cancellation token |

pub mod connection;
pub mod outbound;
pub mod shared;
pub mod ticker;

use chat_core::net::{self, AcceptFailed, ACCEPT_PAUSE};
use chat_core::shutdown::STOP_GRACE;
use chat_core::{Hub, ServerArgs};
use shared::Shared;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves the chat on `listener` until `stop` is cancelled, then shuts down gracefully: every
/// client gets `shutting_down` and a close, and this returns once they are all closed (or the
/// grace period is over).
pub async fn run(listener: TcpListener, args: ServerArgs, stop: CancellationToken) {
    let shared = Arc::new(Shared::new(Hub::new(args.hub_config())));
    // Every task we spawn is tracked, so shutdown can wait for all of them.
    let tasks = TaskTracker::new();
    tasks.spawn(ticker::run(
        Arc::clone(&shared),
        args.idle_timeout(),
        stop.clone(),
    ));

    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => connection::start(&tasks, &shared, stream, &args),
            // That one client's problem (it reset before we got to it, ...): next.
            Err(e) if net::accept_failed(&e) == AcceptFailed::Retry => {}
            Err(_) => {
                // Out of descriptors (or worse): the connection waits in the kernel's backlog
                // and the listener stays "ready", so accepting again at once would fail again,
                // forever, at 100% CPU. Pause instead; the tasks of existing clients run
                // meanwhile, and a departing one frees a descriptor.
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
    }

    // Stop accepting (the kernel refuses new clients from now on), tell everyone, wait.
    drop(listener);
    shared.shutdown();
    tasks.close();
    if tokio::time::timeout(STOP_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still closing at the end of the grace period");
    }
}

/// The Hub's clock is tokio's clock, so that tests with paused time control the idle timeout.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
