//! One connection's outbound path: a bounded queue that any thread fills, written out by the
//! thread that filled it *without blocking*, and by a writer thread of its own only while the
//! client lags behind.
//!
//! The rule (guarantee 4 of `PROTOCOL.md`): a sender's thread must never block on a recipient's
//! socket. If it wrote each recipient's socket with a blocking `write`, one member that stops
//! reading would fill its socket's kernel buffer, the next `write` to it would never return, and
//! the sender would stop serving its own client, and with it everyone it was about to broadcast
//! to.
//!
//! So delivering a frame takes two steps, sometimes three:
//! 1. Under the Hub lock, the frame is *queued* (a pointer copy) at the end of the recipient's
//!    [`SendQueue`], in Hub order ([`Outbound::push`]).
//! 2. After the lock is released, the same thread *flushes* the queues it touched
//!    ([`Outbound::flush`]): `send(2)` with `MSG_DONTWAIT`, which copies into the kernel's socket
//!    buffer and never waits. That buffer holds hundreds of KiB, so this nearly always sends
//!    everything, with no other thread involved.
//! 3. Only when the buffer is full (the client reads slower than the room talks) does the
//!    connection get a *writer thread* ([`writer_loop`]). It is the only thread that ever waits
//!    for that socket: it sleeps until the socket can take more (`poll(2)` on its one
//!    descriptor), writes what it can without waiting, and exits once the queue is empty.
//!
//! `--max-backlog` bounds what the socket *refused* (the rule of [`SendQueue`]): a queue whose
//! last write left bytes behind accepts frames only up to the limit, and past it the connection
//! is cut off; frames queued while the socket still takes everything do not count, so a burst to
//! a member that reads at full speed never cuts it off.
//!
//! Why not a writer thread for every connection, always? Threads are the scarce resource of
//! this model: a Rust thread costs four of the 65,530 memory mappings a process may have (see
//! `spawn.rs`), and two threads per connection would halve the number of clients it can hold. It
//! would also cost a context switch per recipient for every broadcast.
//!
//! The queue's lock is held only to push, or for one non-blocking `writev`: at most one thread
//! writes a connection at a time, from the front of its queue, so frames leave in queue order.
//! Lock order: the Hub lock (in `chat.rs`) may be held while taking an [`Outbound`]'s lock,
//! never the other way round.

use chat_core::sync::{lock, wait_timeout};
use chat_core::{BacklogFull, Flush, Frame, SendQueue};
use socket2::SockRef;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// The outbound side of one connection.
#[derive(Debug)]
pub struct Outbound {
    /// The socket, shared with the reader thread (one descriptor per connection: `&TcpStream`
    /// can read and write). Kept here to write, and to hang up with `shutdown(2)`, which also
    /// wakes a thread blocked in `read` or waiting for it to be writable.
    stream: Arc<TcpStream>,
    /// The queue and where the connection is in its life.
    state: Mutex<State>,
    /// Signalled when the connection is hung up (for [`Outbound::wait_finished`]).
    hung_up: Condvar,
    /// Stack size for a writer thread, in bytes (`--stack-size`).
    stack_size: usize,
    /// How long a writer thread waits for the socket to take more before giving the client up
    /// (`--idle-timeout`: a client that reads nothing for that long is as gone as a silent one).
    patience: Option<Duration>,
    /// The thread that serves this connection (created it, reads it). A hang-up decided on that
    /// thread need not wake it; one decided anywhere else must (see [`Outbound::finish`]).
    reader: ThreadId,
}

#[derive(Debug)]
struct State {
    /// Frames not yet taken by the kernel (bounded by `--max-backlog` refused bytes).
    queue: SendQueue,
    /// A writer thread is waiting for this socket: the others only queue, and it writes.
    lagging: bool,
    /// No more frames will come: once the queue is sent, hang up.
    closed: bool,
    /// `shutdown(2)` was called: the connection is over.
    finished: bool,
}

impl Outbound {
    pub fn new(
        stream: Arc<TcpStream>,
        max_backlog: usize,
        stack_size: usize,
        patience: Option<Duration>,
    ) -> Self {
        Outbound {
            stream,
            state: Mutex::new(State {
                queue: SendQueue::new(max_backlog),
                lagging: false,
                closed: false,
                finished: false,
            }),
            hung_up: Condvar::new(),
            stack_size,
            patience,
            reader: std::thread::current().id(),
        }
    }

    /// Step 1: queues a frame (memory only; called under the Hub lock). `Err` when the socket
    /// has refused more than `--max-backlog` bytes: the caller cuts the connection off. Frames
    /// for a closed connection are dropped.
    pub fn push(&self, frame: Frame) -> Result<(), BacklogFull> {
        let mut state = lock(&self.state);
        if state.closed {
            return Ok(());
        }
        state.queue.push(frame)
    }

    /// No more frames: what is queued is still sent, then the connection is hung up (by the next
    /// [`flush`](Self::flush), or by the writer thread if one is running).
    pub fn close(&self) {
        lock(&self.state).closed = true;
    }

    /// Hangs up now, dropping what is queued (a client over `--max-backlog`). `shutdown(2)` wakes
    /// a writer thread waiting for the socket, and makes the reader's blocked `read` return 0.
    pub fn abort(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        self.finish(&mut state);
    }

    /// Whether the connection is closed (by the Hub, an overflow, or a failed write): its reader
    /// stops reading.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Step 2, after the Hub lock is released: sends what is queued without blocking. If the
    /// socket's kernel buffer fills up, a writer thread takes over (step 3). Does nothing while
    /// a writer thread is waiting for this socket (it will send our frames too).
    pub fn flush(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        if state.lagging || state.finished {
            return;
        }
        match self.write_some(&mut state) {
            Ok(Flush::Done) => {}
            Ok(Flush::Pending) => {
                state.lagging = true;
                drop(state);
                self.start_writer();
            }
            Err(e) => {
                tracing::debug!("write: {e}");
                self.finish(&mut state);
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
            state = wait_timeout(&self.hung_up, state, left);
        }
        true
    }

    /// One non-blocking write of what is queued, under the queue's lock; hangs up a closed
    /// connection whose queue is empty.
    fn write_some(&self, state: &mut State) -> io::Result<Flush> {
        let flushed = state.queue.write_to(&mut DontWait(&self.stream))?;
        if flushed == Flush::Done && state.closed {
            self.finish(state);
        }
        Ok(flushed)
    }

    /// Step 3: the client is not keeping up; a thread of its own will wait for it.
    fn start_writer(self: &Arc<Self>) {
        let outbound = Arc::clone(self);
        let port = self.stream.peer_addr().map_or(0, |addr| addr.port());
        let spawned = crate::spawn::spawn(format!("writer-{port}"), self.stack_size, move || {
            writer_loop(&outbound);
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a writer thread ({e}); dropping a lagging client");
            self.abort();
        }
    }

    /// Hangs up: FIN after the last frame sent.
    ///
    /// Decided on another thread (idle timeout, server shutdown, a sender that found the queue
    /// over `--max-backlog`, the writer thread), the hang-up also shuts down the read side: that
    /// wakes the reader blocked in `read`, so it ends too. Decided on the reader's own thread
    /// (`quit`, `line_too_long`), it leaves the read side open: the reader stops anyway, and
    /// hands the socket to the lingerer (`connection.rs`), which reads what the client still
    /// sends until it hangs up. Closing a socket with unread input would send a reset.
    fn finish(&self, state: &mut State) {
        state.closed = true;
        state.lagging = false;
        state.queue = SendQueue::new(0);
        if !state.finished {
            let how = match std::thread::current().id() == self.reader {
                true => Shutdown::Write,
                false => Shutdown::Both,
            };
            let _ = self.stream.shutdown(how);
            state.finished = true;
            self.hung_up.notify_all();
        }
    }
}

/// The writer thread of a lagging connection: sleeps until its socket can take more, writes
/// what it can without waiting, until the queue is empty; then exits. A client that takes
/// nothing for `--idle-timeout` is hung up.
fn writer_loop(outbound: &Outbound) {
    loop {
        let writable = wait_writable(&outbound.stream, outbound.patience);
        let mut state = lock(&outbound.state);
        if state.finished {
            return; // cut off, or hung up, while we waited
        }
        if !writable {
            tracing::debug!("a lagging client took nothing for --idle-timeout: hanging up");
            return outbound.finish(&mut state);
        }
        match outbound.write_some(&mut state) {
            Ok(Flush::Done) => {
                state.lagging = false; // caught up: the senders' threads write again
                return;
            }
            Ok(Flush::Pending) => continue,
            Err(e) => {
                tracing::debug!("write: {e}");
                return outbound.finish(&mut state);
            }
        }
    }
}

/// Sleeps until `stream` can take more bytes (or is hung up, or failed: the next write tells),
/// or `patience` passes. Returns false on timeout.
fn wait_writable(stream: &TcpStream, patience: Option<Duration>) -> bool {
    let mut pollfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let deadline = patience.map(|p| Instant::now() + p);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, chat_core::time::millis(left)) };
        match ready {
            0 => return false,
            n if n > 0 => return true,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            _ => return true, // let the write report the error
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
