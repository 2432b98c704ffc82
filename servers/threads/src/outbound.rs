//! One connection's outbound path: a bounded queue that any thread fills, written out by the
//! thread that filled it *without blocking*, and by a writer thread of its own only while the
//! client lags behind.
//!
//! The rule (guarantee 4 of the spec): a sender's thread must never block on a recipient's
//! socket. If it wrote each recipient's socket with a blocking `write`, one member that stops
//! reading would fill its socket's kernel buffer, the next `write` to it would never return, and
//! the sender would stop serving its own client, and with it everyone it was about to broadcast
//! to.
//!
//! So delivering a frame takes two steps, sometimes three:
//! 1. Under the Hub lock, the frame is *queued* (a pointer copy) at the end of the recipient's
//!    queue, in Hub order ([`Outbound::push`]). The queue is bounded by `--max-backlog`: past
//!    it the connection is closed ([`Outbound::abort`]); a stalled reader costs at most that.
//! 2. After the lock is released, the same thread *flushes* the queues it touched
//!    ([`Outbound::flush`]): `send(2)` with `MSG_DONTWAIT`, which copies into the kernel's socket
//!    buffer and never waits. That buffer holds hundreds of KiB, so this nearly always sends
//!    everything, with no other thread involved.
//! 3. Only when the buffer is full (the client reads slower than the room talks) does the rest
//!    go to a *writer thread* started for that connection ([`writer_loop`]). It is the only
//!    thread that ever blocks on that socket; it exits when the queue is empty again.
//!
//! Why not a writer thread for every connection, always? Threads are the scarce resource of
//! this model: a Rust thread costs four of the 65,530 memory mappings a process may have (see
//! `spawn.rs`), and with two threads per connection the server died at 8,000 connections. It
//! would also cost a context switch per recipient for every broadcast.
//!
//! At most one thread writes a connection at a time (`busy`), always from the front of its queue,
//! so frames leave in queue order. Lock order: the Hub lock (in `chat.rs`) may be held while
//! taking an [`Outbound`]'s lock, never the other way round; no lock is held while writing.
//!
//! chat-pool uses this file unchanged (see `servers/pool/src/main.rs`).

use chat_core::{BacklogFull, Flush, Frame, SendQueue};
use socket2::SockRef;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The outbound side of one connection.
#[derive(Debug)]
pub struct Outbound {
    /// The socket, shared with the reader thread (one descriptor per connection: `&TcpStream`
    /// can read and write). Kept here to write, and to hang up with `shutdown(2)`, which also
    /// wakes a thread blocked in `read` or `write` on it.
    stream: Arc<TcpStream>,
    state: Mutex<State>,
    /// Signalled when the connection is hung up (for [`Outbound::wait_finished`]).
    hung_up: Condvar,
    /// Stack size for a writer thread, in bytes (`--stack-size`).
    stack_size: usize,
}

#[derive(Debug)]
struct State {
    /// Frames not yet taken by a writer.
    queue: SendQueue,
    /// Bytes a writer took out of `queue` and has not written yet: they count against
    /// `--max-backlog` too.
    in_flight: usize,
    /// `--max-backlog`: the bound on `queue` + `in_flight`.
    max_backlog: usize,
    /// A thread is writing this connection (a flush, or the writer thread): the others only
    /// queue, so frames never overtake each other.
    busy: bool,
    /// No more frames will come: once the queue is sent, hang up.
    closed: bool,
    /// `shutdown(2)` was called: the connection is over.
    finished: bool,
}

impl Outbound {
    pub fn new(stream: Arc<TcpStream>, max_backlog: usize, stack_size: usize) -> Self {
        Outbound {
            stream,
            state: Mutex::new(State {
                queue: SendQueue::new(max_backlog),
                in_flight: 0,
                max_backlog,
                busy: false,
                closed: false,
                finished: false,
            }),
            hung_up: Condvar::new(),
            stack_size,
        }
    }

    /// Step 1: queues a frame (memory only; called under the Hub lock), unless the connection's
    /// unsent bytes would exceed `--max-backlog`: then the caller must [`abort`](Self::abort) it.
    /// Frames for a closed connection are dropped.
    pub fn push(&self, frame: Frame) -> Result<(), BacklogFull> {
        let mut state = lock(&self.state);
        if state.closed {
            return Ok(());
        }
        if state.in_flight + state.queue.len_bytes() + frame.len() > state.max_backlog {
            return Err(BacklogFull);
        }
        state.queue.push(frame)
    }

    /// No more frames: what is queued is still sent, then the connection is hung up (by the next
    /// [`flush`](Self::flush), or by the writer thread if one is running).
    pub fn close(&self) {
        lock(&self.state).closed = true;
    }

    /// Hangs up now, dropping what is queued (a client over `--max-backlog`). `shutdown(2)` makes
    /// a writer's blocked `write` fail and the reader's blocked `read` return 0, so both end.
    pub fn abort(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.queue = SendQueue::new(state.max_backlog);
        let _ = self.stream.shutdown(Shutdown::Both);
        if !state.busy {
            self.finish(&mut state);
        } // else the busy writer's next write fails, and it finishes
    }

    /// Whether the connection is closed (by the Hub, an overflow, or a failed write): its reader
    /// stops reading.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Step 2, after the Hub lock is released: sends what is queued without blocking. If the
    /// socket's kernel buffer fills up, the rest goes to a writer thread (step 3). Does nothing
    /// if another thread is writing this connection already (it will send our frames too).
    pub fn flush(self: &Arc<Self>) {
        let Some(mut batch) = self.next_batch(None) else {
            return;
        };
        loop {
            match batch.write_to(&mut DontWait(&self.stream)) {
                Ok(Flush::Done) => match self.next_batch(Some(batch)) {
                    Some(next) => batch = next,
                    None => return,
                },
                Ok(Flush::Pending) => return self.start_writer(batch),
                Err(_) => return self.gone(),
            }
        }
    }

    /// Waits until the connection is hung up (everything sent), or until `deadline`. Returns
    /// whether it was (used at shutdown, so `shutting_down` reaches every client).
    pub fn wait_finished(&self, deadline: Instant) -> bool {
        let mut state = lock(&self.state);
        while !state.finished {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = self
                .hung_up
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Takes the whole queue to write it (swapping in the empty `done` batch, so no frame is
    /// copied and no lock is held while writing). `None` when there is nothing to write, or
    /// another thread is writing; a writer that finds the queue empty stops being the writer,
    /// and hangs up if the connection is closed.
    fn next_batch(&self, done: Option<SendQueue>) -> Option<SendQueue> {
        let mut state = lock(&self.state);
        let finishing_a_batch = done.is_some();
        if !finishing_a_batch && (state.busy || state.finished) {
            return None;
        }
        if state.queue.is_empty() {
            state.busy = false;
            state.in_flight = 0;
            if state.closed && !state.finished {
                self.finish(&mut state);
            }
            return None;
        }
        state.busy = true;
        let mut batch = done.unwrap_or_else(|| SendQueue::new(state.max_backlog));
        std::mem::swap(&mut state.queue, &mut batch);
        state.in_flight = batch.len_bytes();
        Some(batch)
    }

    /// Step 3: the client is not keeping up; a thread of its own will wait for it.
    fn start_writer(self: &Arc<Self>, batch: SendQueue) {
        lock(&self.state).in_flight = batch.len_bytes();
        let outbound = Arc::clone(self);
        let port = self.stream.peer_addr().map_or(0, |addr| addr.port());
        let spawned = crate::spawn::spawn(format!("writer-{port}"), self.stack_size, move || {
            writer_loop(&outbound, batch);
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a writer thread ({e}); dropping a lagging client");
            self.gone();
        }
    }

    /// The client is gone, or cannot be written: drop what is left and hang up.
    fn gone(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.busy = false;
        state.queue = SendQueue::new(state.max_backlog);
        state.in_flight = 0;
        if !state.finished {
            self.finish(&mut state);
        }
    }

    /// Hangs up: FIN after the last frame sent. Shutting down the read side as well wakes the
    /// reader if it is blocked in `read` (the Hub closed this connection from another thread:
    /// idle timeout, server shutdown), so it ends too.
    fn finish(&self, state: &mut State) {
        let _ = self.stream.shutdown(Shutdown::Both);
        state.finished = true;
        self.hung_up.notify_all();
    }
}

/// The writer thread of a lagging connection: writes with blocking `write`s (bounded by the
/// socket's write timeout, `--idle-timeout`: a client that reads nothing for that long is gone)
/// until the queue is empty, then exits. It is the only thread that waits on this client.
fn writer_loop(outbound: &Outbound, mut batch: SendQueue) {
    loop {
        match batch.write_to(&mut &*outbound.stream) {
            Ok(Flush::Done) => match outbound.next_batch(Some(batch)) {
                Some(next) => batch = next,
                None => return,
            },
            // `Pending` on a blocking socket: the write timeout expired.
            Ok(Flush::Pending) | Err(_) => return outbound.gone(),
        }
    }
}

/// A blocking socket written as if it were non-blocking: `send(2)` with `MSG_DONTWAIT` returns
/// `WouldBlock` instead of waiting when the kernel's send buffer is full. (Making the socket
/// itself non-blocking would also affect its reader thread.)
struct DontWait<'a>(&'a TcpStream);

impl Write for DontWait<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SockRef::from(self.0).send_with_flags(buf, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        SockRef::from(self.0)
            .send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends the frames queued on each of `outbounds` (step 2 for all the connections one Hub call
/// touched). Call it after releasing the Hub lock.
pub fn flush_all(outbounds: &[Arc<Outbound>]) {
    for outbound in outbounds {
        outbound.flush();
    }
}

/// Locks a mutex even if a thread panicked while holding it: a bug in one connection's thread
/// must not take every other connection down with it (guarantee 5).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
