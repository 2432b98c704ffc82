//! One connection's outbound side: a bounded queue the Hub's actions push into, and what wakes
//! the task that writes it.
//!
//! [`OutQueue`] is chat-core's [`SendQueue`] (bounded by `--max-backlog`, short-write safe,
//! vectored) behind a std `Mutex`, plus the [`Waker`] of the task that writes it. Pushing is a
//! few nanoseconds of work and never waits for the socket, which is why it may happen under the
//! Hub lock (see `shared.rs`): the lock is never held across anybody's *write*.
//!
//! Frames pushed before the task has written do not count against `--max-backlog` (the queue's
//! rule: only what the socket refused counts). A burst queued in one go for a member that reads
//! at full speed is therefore written when its task runs, never mistaken for a slow reader; a
//! member whose socket keeps refusing is cut off by the push that takes what it refused past
//! the limit, or by the write that leaves too much behind.
//!
//! ## Waking the writer only when there is work
//! A push wakes the task only if the task is parked waiting for frames: it left its waker in
//! the queue's state, under the same lock as the queue, when it found nothing to write
//! ([`OutQueue::poll_work`]). A push while the task is running (it is about to write anyway),
//! or while the socket is refusing bytes (nothing can be written until it has room, and the
//! socket's own readiness says when), wakes nobody. So a room of 10 costs at most 10 wake-ups
//! per broadcast, and often fewer. (A `tokio::sync::Notify` would wake the task for every push,
//! and keep a permit that wakes it once more for nothing after it has written.)
//!
//! A push does not wake the task itself: it hands back a [`Wakeup`], the wake-up it owes, and the
//! caller gives it once it holds no lock. Waking a task can mean waking a sleeping runtime
//! thread (a `futex` call); given under the Hub lock, that call would be paid by every task
//! waiting for the lock, once for every member of the room (see `shared.rs`).
//!
//! ## Writing without copying
//! The task does not copy the frames out to write them: [`OutQueue::write_some`] lets the queue
//! do a non-blocking `writev` straight from the frames, through tokio's `try_write_vectored`.
//! If the kernel says `WouldBlock`, tokio forgets the socket's write readiness and the task
//! waits for the next one. That is chat-epoll's "write interest only while output is
//! pending", done by the runtime.
//!
//! [`Outbound`] and [`write_loop`] are the same queue for a connection served by *two* tasks, a
//! reader and a writer, with cancellation tokens between them: chat-cluster's shape, whose
//! reader waits for Redis round trips and must not hold up the writer.

use chat_core::net::CLOSE_LINGER;
use chat_core::sync::lock;
use chat_core::{BacklogFull, Flush, Frame, SendQueue};
use std::future::poll_fn;
use std::io::{self, IoSlice, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
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

/// One connection's queue of frames, shared by the Hub's side (pushing) and the connection's
/// task (writing).
#[derive(Debug)]
pub struct OutQueue {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Frames not yet taken by the kernel.
    queue: SendQueue,
    /// Whether the connection ends once the queue is written.
    ending: Ending,
    /// Backlog overflow: close now, unsent output and all (guarantee 4).
    aborted: bool,
    /// The writing task, while it is parked waiting for work (see the module docs).
    waker: Option<Waker>,
}

/// What the writer does next, decided under the lock and done after releasing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Everything is written: wait for more frames.
    Idle,
    /// The socket is full: wait until it can take more (until the deadline, if closing).
    Blocked(Option<Instant>),
    /// Everything is written and the connection is ending.
    Finish,
    /// The peer is gone, it refused more than `--max-backlog` bytes, or it was cut off.
    Failed,
}

impl OutQueue {
    pub fn new(queue: SendQueue) -> Self {
        OutQueue {
            state: Mutex::new(State {
                queue,
                ending: Ending::No,
                aborted: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queues a frame; `Err` when the socket has refused more than `--max-backlog` bytes. The
    /// caller gives the [`Wakeup`] once it holds no lock.
    pub fn push(&self, frame: Frame) -> Result<Wakeup, BacklogFull> {
        let mut state = self.lock();
        state.queue.push(frame)?;
        // A socket that refuses bytes cannot take these either: its readiness, not this push,
        // will wake the task.
        Ok(match state.queue.refused_bytes() {
            0 => Wakeup(state.waker.take()),
            _ => Wakeup(None),
        })
    }

    /// Write what is queued, then close (the Hub's `Close`, or the client hung up).
    pub fn close_after_flush(&self) -> Wakeup {
        let mut state = self.lock();
        if state.ending == Ending::No {
            state.ending = Ending::AfterFlush {
                give_up_at: Instant::now() + CLOSE_LINGER,
            };
        }
        Wakeup(state.waker.take())
    }

    /// Close at once, dropping what is queued (backlog overflow: guarantee 4).
    pub fn abort(&self) -> Wakeup {
        let mut state = self.lock();
        state.aborted = true;
        Wakeup(state.waker.take())
    }

    pub fn is_aborted(&self) -> bool {
        self.lock().aborted
    }

    /// Whether the connection is ending (after its queue is written) or aborted.
    pub fn is_ending(&self) -> bool {
        let state = self.lock();
        state.aborted || state.ending != Ending::No
    }

    /// Ready when the task has work here: frames it can write (the socket is not refusing),
    /// the connection's end, or its abort. Otherwise the task's waker stays in the state, and
    /// the next push, close or abort wakes it.
    pub fn poll_work(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        let writable_frames = !state.queue.is_empty() && state.queue.refused_bytes() == 0;
        if writable_frames || state.aborted || state.ending != Ending::No {
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The task is awake for another reason (input, room in its socket) and will write before
    /// it waits again: the waker its last wait left here is taken back, so that the frames
    /// pushed meanwhile wake nobody. Left in place, it would let the first of them schedule
    /// the task once more, to write that frame early, apart from the rest.
    pub fn unpark(&self) {
        self.lock().waker = None;
    }

    /// Writes what the socket takes right now, without waiting.
    pub fn write_some(&self, socket: &impl TryWriteVectored) -> Step {
        let mut state = self.lock();
        if state.aborted {
            return Step::Failed;
        }
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

/// The wake-up a push, close or abort owes the writing task (none if the task was not parked
/// waiting for frames). Give it with [`Wakeup::give`] after releasing every lock you hold.
#[derive(Debug)]
#[must_use = "the writing task stays parked unless the wake-up is given"]
pub struct Wakeup(Option<Waker>);

impl Wakeup {
    pub fn give(self) {
        if let Some(waker) = self.0 {
            waker.wake();
        }
    }

    /// The waker to wake later, if one is owed.
    pub fn into_waker(self) -> Option<Waker> {
        self.0
    }
}

/// A socket tokio can write without waiting: a whole `TcpStream` (chat-async's one task per
/// connection) or its write half (chat-cluster's writer task).
pub trait TryWriteVectored {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl TryWriteVectored for TcpStream {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }
}

impl TryWriteVectored for OwnedWriteHalf {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        OwnedWriteHalf::try_write(self, buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        OwnedWriteHalf::try_write_vectored(self, bufs)
    }
}

/// `std::io::Write` over tokio's non-blocking `try_write*`: `WouldBlock` when the socket is
/// full, which is exactly what [`SendQueue::write_to`] expects from a non-blocking socket.
struct TryWrite<'a, S>(&'a S);

impl<S: TryWriteVectored> Write for TryWrite<'_, S> {
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

// ---- the two-task shape (chat-cluster) -------------------------------------------------------

/// The outbound side of a connection served by a reader task and a writer task
/// ([`write_loop`]): the queue, plus the tokens that tell the reader to stop.
#[derive(Debug)]
pub struct Outbound {
    /// The frames, and the writer's waker.
    queue: OutQueue,
    /// Cancelled when the connection ends, for whatever reason: tells the reader to stop.
    pub stop_reading: CancellationToken,
    /// Cancelled when the connection must close *now*, unsent output and all (backlog
    /// overflow): the writer gives up even if it is waiting for a socket that never drains.
    abort: CancellationToken,
}

impl Outbound {
    pub fn new(queue: SendQueue) -> Self {
        Outbound {
            queue: OutQueue::new(queue),
            stop_reading: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Queues a frame; `Err` when the socket has refused more than `--max-backlog` bytes. (The
    /// writer is woken at once: chat-cluster holds no lock shared between connections here.)
    pub fn push(&self, frame: Frame) -> Result<(), BacklogFull> {
        self.queue.push(frame).map(Wakeup::give)
    }

    /// Write what is queued, then close (the Hub's `Close`, or the reader saw EOF).
    pub fn close_after_flush(&self) {
        self.queue.close_after_flush().give();
        self.stop_reading.cancel();
    }

    /// Close at once, dropping what is queued (backlog overflow: guarantee 4).
    pub fn abort(&self) {
        self.queue.abort().give();
        self.abort.cancel();
        self.stop_reading.cancel();
    }

    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }
}

/// The writer task of a two-task connection ([`Outbound`]). `aborts_on_close`: `--linger 0`,
/// where the connection ends with a RST once the queue is written (lesson 09).
pub async fn write_loop(
    outbound: Arc<Outbound>,
    mut socket: OwnedWriteHalf,
    aborts_on_close: bool,
) {
    write_until_closed(&outbound, &mut socket, aborts_on_close).await;
    outbound.stop_reading.cancel();
    if aborts_on_close {
        // Dropping a write half sends a FIN. Forgotten, it leaves the socket to be closed (a
        // RST, with `SO_LINGER` 0) when the reader lets go of its half.
        socket.forget();
    }
}

/// Writes the queue until the connection ends (see [`write_loop`]).
async fn write_until_closed(
    outbound: &Outbound,
    socket: &mut OwnedWriteHalf,
    aborts_on_close: bool,
) {
    let queue = &outbound.queue;
    loop {
        // The lock is taken and released inside `write_some`: never held across an `.await`.
        match queue.write_some(&*socket) {
            Step::Idle => {
                tokio::select! {
                    _ = poll_fn(|cx| queue.poll_work(cx)) => {}
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
                        return;
                    }
                }
                _ = outbound.abort.cancelled() => return,
                // The connection is ending: go round again to pick up its deadline.
                _ = outbound.stop_reading.cancelled() => {}
            },
            Step::Blocked(Some(give_up_at)) => tokio::select! {
                ready = socket.writable() => {
                    if ready.is_err() {
                        return;
                    }
                }
                _ = outbound.abort.cancelled() => return,
                // It does not read its last frames: close without them.
                _ = tokio::time::sleep_until(give_up_at) => return,
            },
            Step::Finish => {
                // FIN: the client reads everything we sent, then EOF. (Not with `--linger 0`,
                // where a FIN first would leave the `TIME-WAIT` the abort is meant to avoid.)
                if !aborts_on_close {
                    let _ = socket.shutdown().await;
                }
                return;
            }
            Step::Failed => return,
        }
    }
}
