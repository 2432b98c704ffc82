//! One connection's outbound side: a bounded queue the Hub's actions push into, and the writer
//! task that drains it into the socket.
//!
//! The queue is chat-core's [`SendQueue`] (bounded by `--max-backlog`, short-write safe,
//! vectored) behind a std `Mutex`, plus a [`Notify`] to wake the writer. Pushing is a few
//! nanoseconds of work and never waits for the socket, which is why it may happen under the Hub
//! lock (see `shared.rs`): the lock is never held across anybody's *write*.
//!
//! Frames pushed before the writer task has run do not count against `--max-backlog` (the
//! queue's rule: only what the socket refused counts). A burst queued in one go for a member
//! that reads at full speed is therefore written when the writer runs, never mistaken for a
//! slow reader; a member whose socket keeps refusing is cut off by the push that takes what it
//! refused past the limit, or by the write that leaves too much behind.
//!
//! The writer does not copy the frames out to write them. It uses tokio's readiness API
//! directly: `writable().await` waits until the runtime's reactor says the socket can take
//! more, then `try_write_vectored` (through the small `TryWrite` adapter) lets the queue do a
//! non-blocking `writev` exactly as in the epoll server. If the kernel says `WouldBlock` after
//! all, tokio clears its readiness flag and the next `writable().await` sleeps again. That is the
//! epoll server's "write interest only while output is pending", done by the runtime.

use chat_core::net::CLOSE_LINGER;
use chat_core::sync::lock;
use chat_core::{BacklogFull, Flush, Frame, SendQueue};
use std::io::{self, IoSlice, Write};
use std::sync::{Mutex, MutexGuard};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a connection's writer does once its queue is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Keep the connection open.
    No,
    /// The Hub said `Close` (quit, line too long, idle timeout, shutdown) or the client hung
    /// up: write what is queued, then close; give up at `give_up_at`.
    AfterFlush { give_up_at: Instant },
}

/// The shared handle to one connection's outbound side.
#[derive(Debug)]
pub struct Outbound {
    state: Mutex<State>,
    /// Wakes the writer: frames were queued, or the connection is ending.
    wake_writer: Notify,
    /// Cancelled when the connection ends, for whatever reason: tells the reader to stop.
    pub stop_reading: CancellationToken,
    /// Cancelled when the connection must close *now*, unsent output and all (backlog
    /// overflow): the writer gives up even if it is waiting for a socket that never drains.
    abort: CancellationToken,
}

#[derive(Debug)]
struct State {
    /// Frames not yet taken by the kernel.
    queue: SendQueue,
    /// Whether the connection ends once the queue is written.
    ending: Ending,
}

/// What the writer does next, decided under the lock and done after releasing it.
enum Step {
    /// Everything is written: wait for more frames.
    Idle,
    /// The socket is full: wait until it can take more (until the deadline, if closing).
    Blocked(Option<Instant>),
    /// Everything is written and the connection is ending.
    Finish,
    /// The peer is gone.
    Failed,
}

impl Outbound {
    pub fn new(queue: SendQueue) -> Self {
        Outbound {
            state: Mutex::new(State {
                queue,
                ending: Ending::No,
            }),
            wake_writer: Notify::new(),
            stop_reading: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queues a frame; `Err` when the socket has refused more than `--max-backlog` bytes.
    pub fn push(&self, frame: Frame) -> Result<(), BacklogFull> {
        self.lock().queue.push(frame)?;
        // A permit is stored if the writer is not waiting yet: no wake-up is ever lost.
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Write what is queued, then close (the Hub's `Close`, or the reader saw EOF).
    pub fn close_after_flush(&self) {
        let mut state = self.lock();
        if state.ending == Ending::No {
            state.ending = Ending::AfterFlush {
                give_up_at: Instant::now() + CLOSE_LINGER,
            };
        }
        drop(state);
        self.wake_writer.notify_one();
        self.stop_reading.cancel();
    }

    /// Close at once, dropping what is queued (backlog overflow: guarantee 4).
    pub fn abort(&self) {
        self.abort.cancel();
        self.stop_reading.cancel();
    }

    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Writes what the socket takes right now, without waiting.
    fn write_some(&self, socket: &OwnedWriteHalf) -> Step {
        let mut state = self.lock();
        let give_up_at = match state.ending {
            Ending::No => None,
            Ending::AfterFlush { give_up_at } => Some(give_up_at),
        };
        match state.queue.write_to(&mut TryWrite(socket)) {
            Ok(Flush::Done) if give_up_at.is_some() => Step::Finish,
            Ok(Flush::Done) => Step::Idle,
            Ok(Flush::Pending) => Step::Blocked(give_up_at),
            // The peer is gone, or it refused more than --max-backlog bytes (guarantee 4).
            Err(e) => {
                tracing::debug!("write: {e}");
                Step::Failed
            }
        }
    }
}

/// The writer task of one connection.
pub async fn write_loop(outbound: std::sync::Arc<Outbound>, mut socket: OwnedWriteHalf) {
    loop {
        // The lock is taken and released inside `write_some`: never held across an `.await`.
        match outbound.write_some(&socket) {
            Step::Idle => {
                tokio::select! {
                    _ = outbound.wake_writer.notified() => {}
                    _ = outbound.abort.cancelled() => return,
                }
                // Woken by the first frame of a burst: let the tasks that are ready run first,
                // so the frames they queue for us leave in the same `writev` (the async
                // counterpart of chat-epoll flushing once per loop turn).
                tokio::task::yield_now().await;
            }
            Step::Blocked(None) => tokio::select! {
                ready = socket.writable() => {
                    if ready.is_err() {
                        break;
                    }
                }
                _ = outbound.abort.cancelled() => return,
                // The connection is ending: go round again to pick up its deadline.
                _ = outbound.stop_reading.cancelled() => {}
            },
            Step::Blocked(Some(give_up_at)) => tokio::select! {
                ready = socket.writable() => {
                    if ready.is_err() {
                        break;
                    }
                }
                _ = outbound.abort.cancelled() => return,
                // It does not read its last frames: close without them.
                _ = tokio::time::sleep_until(give_up_at) => break,
            },
            Step::Finish => {
                // FIN: the client reads everything we sent, then EOF.
                let _ = socket.shutdown().await;
                break;
            }
            Step::Failed => break,
        }
    }
    outbound.stop_reading.cancel();
}

/// `std::io::Write` over tokio's non-blocking `try_write*`: `WouldBlock` when the socket is
/// full, which is exactly what [`SendQueue::write_to`] expects from a non-blocking socket.
struct TryWrite<'a>(&'a OwnedWriteHalf);

impl Write for TryWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
