//! One connection = one task: it reads the client's requests and writes the frames queued for
//! it, whichever comes first, until the connection ends.
//!
//! ```text
//!   loop: wait for input, frames, or room ──▶ read: socket ─▶ decoder ─▶ Hub ─▶ queues
//!                                         ──▶ write: own queue ─▶ socket (one writev)
//!   then: write the rest, FIN, read what the client still sends (at most 1 s), close
//! ```
//!
//! ## Why one task, and why it waits with `poll_fn` rather than `select!`
//! A task costs memory for as long as the connection lives, and most connections are idle most
//! of the time. What an idle connection keeps is what its task keeps across its `.await`:
//! - **no read buffer.** The task waits for the socket to be *readable* without a buffer, and
//!   then reads into its runtime thread's scratch buffer ([`SCRATCH`]), which it gives back
//!   before the next `.await`. The decoder keeps only an unfinished line.
//! - **no stored futures.** `tokio::select!` over `readable()`, `writable()` and a
//!   notification would keep those three futures (and their wait-list entries) in the task
//!   for as long as it waits. [`next_wake`] asks the same three questions with the
//!   `poll_*` functions, which leave only the task's waker behind: in the socket's
//!   registration, and in the [`OutQueue`]'s state.
//! - **one task, not two.** A reader task and a writer task would each have their own state and
//!   their own place in the scheduler, and would need cancellation tokens between them.
//!
//! The closing steps (write the rest, FIN, linger) run in a future of their own, boxed, so that
//! their timers and wait-list entries take memory only once a connection closes.

use crate::outbound::{OutQueue, Step};
use crate::shared::Shared;
use chat_core::{net, ConnId, InboundRef, LineDecoder, ServerArgs};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

/// Bytes read per `read` call, at most.
const READ_BUFFER: usize = 64 * 1024;

thread_local! {
    /// The read buffer of this runtime thread, shared by every connection its tasks serve: a
    /// task borrows it for one read and the handling of its lines, never across an `.await`.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUFFER]);
}

/// After the connection ends, how long its task keeps reading (and dropping) what the client
/// still sends. See [`linger`].
const LINGER: Duration = Duration::from_secs(1);

/// Registers a new connection with the Hub and starts its task.
pub fn start(tasks: &TaskTracker, shared: &Arc<Shared>, stream: TcpStream, args: &ServerArgs) {
    if let Err(e) = net::configure_accepted(&stream, &args.socket) {
        tracing::debug!("socket options: {e}");
    }
    let ip = match stream.peer_addr() {
        Ok(addr) => addr.ip(),
        Err(e) => return tracing::debug!("a connection gone before it was served: {e}"),
    };
    let out = Arc::new(OutQueue::new(args.send_queue()));
    let id = shared.connect(Arc::clone(&out), ip, crate::now());
    let aborts_on_close = args.socket.aborts_on_close();
    tasks.spawn(serve(
        Arc::clone(shared),
        id,
        stream,
        args.decoder(),
        out,
        aborts_on_close,
    ));
}

/// What woke the connection's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// The socket has input (or an EOF, or an error).
    Input,
    /// Frames were queued, or the connection is ending.
    Work,
    /// The socket that refused bytes has room again.
    Room,
}

/// The connection's task: read, handle, write, until the connection ends; then close it.
async fn serve(
    shared: Arc<Shared>,
    id: ConnId,
    stream: TcpStream,
    mut decoder: LineDecoder,
    out: Arc<OutQueue>,
    aborts_on_close: bool,
) {
    // Whether the socket refused bytes at the last write: only its readiness can change that.
    let mut blocked = false;
    while !out.is_ending() {
        let wake = match next_wake(&stream, &out, blocked).await {
            Ok(wake) => wake,
            Err(e) => {
                tracing::debug!("{id}: {e}");
                Wake::Input // the read finds the error, and ends the connection
            }
        };
        match wake {
            Wake::Input => {
                if !on_input(&stream, &shared, id, &mut decoder) {
                    // EOF or error: the room is told `left`, and the client still gets what
                    // is queued for it (PROTOCOL.md, guarantee 7).
                    shared.disconnect(id);
                    out.close_after_flush().give(); // it is this task: nobody is parked
                }
            }
            Wake::Work => {}
            Wake::Room => blocked = false,
        }
        if blocked {
            continue; // a write now would only hear `WouldBlock` again
        }
        if wake != Wake::Room {
            // Our replies, or a frame another task queued: before writing, let the tasks that
            // are ready run (tokio resumes a yielded task once its worker has run out of ready
            // tasks and polled the sockets again), so the frames they queue for us leave in
            // the same `writev`, and this client reads them with one `read`. That is chat-epoll's
            // one write per peer per loop turn. While we wait, a push does not wake us again:
            // `next_wake` told the queue we are awake.
            tokio::task::yield_now().await;
        }
        // This task's replies, and whatever other tasks queued for it, in one `writev`.
        match out.write_some(&stream) {
            Step::Idle | Step::Finish => {}
            Step::Blocked(_) => blocked = true,
            Step::Failed => {
                // The client is gone, or it refused more than --max-backlog bytes.
                shared.disconnect(id);
                return;
            }
        }
    }
    if !out.is_aborted() {
        // Boxed: see the module docs.
        Box::pin(close(stream, &out, aborts_on_close)).await;
    }
}

/// Waits until the task has something to do: input, frames to write (or the connection's
/// end), or, when `blocked`, room in the socket. Each `poll_*` leaves the task's waker where
/// that event will find it; nothing else is stored while the task waits.
async fn next_wake(stream: &TcpStream, out: &OutQueue, blocked: bool) -> io::Result<Wake> {
    poll_fn(|cx| {
        let socket = match stream.poll_read_ready(cx) {
            Poll::Ready(ready) => Poll::Ready(ready.map(|()| Wake::Input)),
            Poll::Pending if blocked => stream.poll_write_ready(cx).map_ok(|()| Wake::Room),
            Poll::Pending => Poll::Pending,
        };
        if socket.is_ready() {
            // Awake, and about to write: frames pushed from now on will be written without
            // waking us (the waker an earlier wait left in the queue is taken back).
            out.unpark();
            return socket;
        }
        // Registered even while blocked: a close or an abort must still wake us.
        out.poll_work(cx).map(|()| Ok(Wake::Work))
    })
    .await
}

/// The socket is readable: one read into this thread's scratch buffer, and its lines go to the
/// Hub (parsed first, outside the Hub's lock). `false` when the input is over: EOF, or a socket
/// error.
fn on_input(stream: &TcpStream, shared: &Shared, id: ConnId, decoder: &mut LineDecoder) -> bool {
    SCRATCH.with_borrow_mut(|buffer| {
        let mut got = 0;
        let read = stream.try_io(Interest::READABLE, || {
            got = net::recv(stream, buffer)?;
            // A read that did not fill the buffer took all the socket had: say `WouldBlock`
            // ourselves, so that tokio forgets this readiness now rather than after one more
            // read that would only hear EAGAIN. (An EOF that came with the data is not
            // forgotten: tokio keeps a socket's "read closed" state.)
            match got {
                0 => Ok(()),
                n if n < buffer.len() => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(()),
            }
        });
        match read {
            Ok(()) if got == 0 => false, // EOF
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                tracing::debug!("{id} read error: {e}");
                false
            }
            _ if got == 0 => true, // nothing after all
            _ => {
                // The requests borrow their strings from the scratch buffer.
                let lines: Vec<InboundRef<'_>> = decoder.feed_ref(&buffer[..got]).collect();
                shared.handle(id, lines, crate::now());
                true
            }
        }
    })
}

/// The connection is ending (the Hub closed it, or the client hung up): write what is still
/// queued, giving up at the deadline, send our FIN, and linger. With `--linger 0`
/// (`aborts_on_close`) the socket is closed as soon as the queue is written: the abort that was
/// asked for, since a FIN first would leave the `TIME-WAIT` it is meant to avoid (lesson 09).
async fn close(mut stream: TcpStream, out: &OutQueue, aborts_on_close: bool) {
    loop {
        match out.write_some(&stream) {
            Step::Idle | Step::Finish => break,
            Step::Failed => return,
            Step::Blocked(give_up_at) => {
                let give_up_at = give_up_at.unwrap_or_else(tokio::time::Instant::now);
                tokio::select! {
                    ready = stream.writable() => {
                        if ready.is_err() {
                            return;
                        }
                    }
                    // It does not read its last frames: close without them.
                    _ = tokio::time::sleep_until(give_up_at) => return,
                }
            }
        }
    }
    if aborts_on_close {
        return; // dropping the stream closes it: a RST
    }
    // FIN: the client reads everything we sent, then EOF.
    let _ = stream.shutdown().await;
    linger(&mut stream, &mut Vec::new()).await;
}

/// Reads and drops input until the client closes, for at most [`LINGER`].
///
/// A socket closed while the client's bytes sit unread in its receive buffer answers with a RST
/// instead of a FIN, and a RST can make the client throw away our last frames (`bye`,
/// `line_too_long`) before reading them. Draining first avoids it (nginx's "lingering close").
pub async fn linger<R: AsyncRead + Unpin>(socket: &mut R, buffer: &mut Vec<u8>) {
    let drain = async {
        loop {
            buffer.clear();
            match socket.read_buf(buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
