//! One connection of the [`TestServer`](super::TestServer): a reader thread that feeds the Hub,
//! and a writer thread that drains a byte-bounded queue to the socket, applying the faults.

use super::{Faults, State};
use chat_core::{ConnId, Frame, LineDecoder, Outbox};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Stack size of the per-connection threads: small, so a test can open a thousand connections.
const THREAD_STACK: usize = 256 * 1024;

/// How long a reorder-held broadcast waits for a partner before it is written alone.
const REORDER_WAIT: Duration = Duration::from_millis(250);

/// How long a closed connection keeps reading (and discarding) the peer's input, so that the
/// peer reads our last frames and an orderly FIN instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// What every thread of the server shares.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) faults: Faults,
    /// `--max-line` for every connection's decoder.
    pub(crate) max_line: usize,
    /// `--max-backlog` for every connection's queue.
    pub(crate) max_backlog: usize,
    /// Serve one connection at a time (like the blocking model).
    pub(crate) one_at_a_time: bool,
    /// The origin of the stall schedule.
    pub(crate) started: Instant,
    pub(crate) stopping: AtomicBool,
}

impl Shared {
    /// Locks the state. A panic in another thread does not poison the fixture for the rest.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The outbound side of one connection, shared by the Hub's dispatch, the reader and the writer.
pub(crate) struct Connection {
    /// A handle on the socket, to shut it down from any thread (which wakes a blocked reader and
    /// writer).
    stream: TcpStream,
    queue: Mutex<Queue>,
    /// The limit on `Queue::bytes`.
    max_backlog: usize,
    /// Signalled when the queue gets an item or is closed.
    ready: Condvar,
    /// The writer has ended: everything was written (or the peer is gone).
    written: AtomicBool,
    /// Both threads have ended.
    finished: AtomicBool,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Frame>,
    /// Unsent bytes: those in `frames` plus those the writer took and has not written yet.
    /// Bounded by `Connection::max_backlog`.
    bytes: usize,
    /// Write what is queued, then close.
    close: bool,
    /// Stop at once: the peer is gone or was cut off.
    aborted: bool,
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame; `false` when it would take the backlog over the limit.
    pub(crate) fn push(&self, frame: Frame) -> bool {
        let mut queue = self.lock();
        if queue.close || queue.aborted {
            return true; // closing already: late frames are dropped
        }
        if queue.bytes + frame.len() > self.max_backlog {
            return false;
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        self.ready.notify_one();
        true
    }

    /// Writes what is queued, then closes.
    pub(crate) fn close_after_flush(&self) {
        self.lock().close = true;
        self.ready.notify_one();
    }

    /// Cuts the connection off now.
    pub(crate) fn abort(&self) {
        self.lock().aborted = true;
        self.ready.notify_one();
        let _ = self.stream.shutdown(SocketShutdown::Both);
    }

    pub(crate) fn is_written(&self) -> bool {
        self.written.load(Ordering::SeqCst)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Registers an accepted socket with the Hub and starts its two threads.
pub(crate) fn spawn(stream: TcpStream, shared: &Arc<Shared>) -> io::Result<Arc<Connection>> {
    let conn = Arc::new(Connection {
        stream: stream.try_clone()?,
        queue: Mutex::new(Queue::default()),
        max_backlog: shared.max_backlog,
        ready: Condvar::new(),
        written: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    });
    let writer_stream = stream.try_clone()?;
    let id = {
        let mut state = shared.lock();
        let mut out = Outbox::new();
        let id = state.hub.connect(Instant::now(), &mut out);
        // Registered before dispatching, so a `server_full` for this very id finds its queue.
        state.conns.insert(id, Arc::clone(&conn));
        state.dispatch(&mut out);
        id
    };
    let writer = {
        let (conn, shared) = (Arc::clone(&conn), Arc::clone(shared));
        std::thread::Builder::new()
            .name(format!("testkit-write-{}", id.0))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                write_loop(writer_stream, &conn, &shared);
                conn.written.store(true, Ordering::SeqCst);
            })
    };
    let writer = match writer {
        Ok(writer) => writer,
        Err(e) => {
            forget(shared, id, &conn);
            return Err(e);
        }
    };
    let reader = {
        let (conn, shared) = (Arc::clone(&conn), Arc::clone(shared));
        std::thread::Builder::new()
            .name(format!("testkit-read-{}", id.0))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                read_loop(stream, id, &conn, &shared);
                let _ = writer.join();
                let _ = conn.stream.shutdown(SocketShutdown::Both);
                conn.finished.store(true, Ordering::SeqCst);
                shared.lock().conns.remove(&id);
            })
    };
    if let Err(e) = reader {
        forget(shared, id, &conn);
        return Err(e);
    }
    Ok(conn)
}

/// Disconnects `id` from the Hub (its room hears `left`) and cuts the socket.
fn forget(shared: &Shared, id: ConnId, conn: &Connection) {
    let mut state = shared.lock();
    let mut out = Outbox::new();
    state.hub.disconnect(id, &mut out);
    state.dispatch(&mut out);
    state.conns.remove(&id);
    conn.abort();
}

/// Reads lines and hands them to the Hub until the peer goes away; after the Hub closed the
/// connection it keeps discarding input for [`LINGER`].
fn read_loop(mut stream: TcpStream, id: ConnId, conn: &Connection, shared: &Shared) {
    let mut decoder = LineDecoder::new(shared.max_line);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if decoder.has_failed() {
            continue; // after line_too_long: discard until the linger ends
        }
        let mut state = shared.lock();
        let mut out = Outbox::new();
        let now = Instant::now();
        for inbound in decoder.feed(&buf[..n]) {
            state.hub.handle(id, inbound, now, &mut out);
        }
        state.dispatch(&mut out);
    }
    // EOF, reset, or the linger ran out. A no-op if the Hub already closed it.
    let mut state = shared.lock();
    let mut out = Outbox::new();
    state.hub.disconnect(id, &mut out);
    state.dispatch(&mut out);
    drop(state);
    // Whatever was queued for the peer is still written (it may only have half-closed).
    conn.close_after_flush();
}

/// Drains the queue to the socket, applying the faults, until told to close or the peer is gone.
fn write_loop(mut stream: TcpStream, conn: &Connection, shared: &Shared) {
    let mut faults = FaultState::default();
    loop {
        let (frames, close) = {
            let mut queue = conn.lock();
            while queue.frames.is_empty() && !queue.close && !queue.aborted {
                if faults.held.is_some() {
                    let (q, timeout) = conn
                        .ready
                        .wait_timeout(queue, REORDER_WAIT)
                        .unwrap_or_else(|e| e.into_inner());
                    queue = q;
                    if timeout.timed_out() {
                        break;
                    }
                } else {
                    queue = conn.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            }
            if queue.aborted {
                return;
            }
            (std::mem::take(&mut queue.frames), queue.close)
        };
        // These bytes stay counted in the backlog until they are written.
        let taken: usize = frames.iter().map(|f| f.len()).sum();
        let quiet = frames.is_empty(); // woken by the reorder timeout, not by a frame
        let mut batch: Vec<Frame> = Vec::with_capacity(frames.len() + 1);
        for frame in frames {
            faults.apply(&shared.faults, frame, &mut batch);
        }
        if quiet || close {
            batch.extend(faults.held.take()); // a held broadcast without a partner goes alone
        }
        wait_out_stall(&shared.faults, shared.started);
        for frame in &batch {
            if stream.write_all(frame).is_err() {
                conn.abort();
                return;
            }
        }
        conn.lock().bytes -= taken;
        if close {
            let _ = stream.shutdown(SocketShutdown::Write);
            // The reader keeps draining the peer's input for a while, then ends.
            let _ = stream.set_read_timeout(Some(LINGER));
            return;
        }
    }
}

/// Per-recipient fault bookkeeping.
#[derive(Default)]
struct FaultState {
    /// Broadcasts seen so far (for `drop_every_nth_broadcast`).
    broadcasts: u64,
    /// A broadcast waiting to be written after the next one (for `reorder_broadcasts`).
    held: Option<Frame>,
}

impl FaultState {
    /// Appends to `batch` what the faults turn `frame` into: nothing, itself, or a swapped pair.
    fn apply(&mut self, faults: &Faults, frame: Frame, batch: &mut Vec<Frame>) {
        let frame = if faults.wrong_error_codes {
            mislabel_error(frame)
        } else {
            frame
        };
        if !frame.starts_with(br#"{"type":"broadcast""#) {
            batch.extend(self.held.take());
            batch.push(frame);
            return;
        }
        self.broadcasts += 1;
        if let Some(n) = faults.drop_every_nth_broadcast {
            if n > 0 && self.broadcasts.is_multiple_of(n) {
                return;
            }
        }
        if !faults.reorder_broadcasts {
            batch.push(frame);
        } else if let Some(first) = self.held.take() {
            batch.push(frame);
            batch.push(first);
        } else {
            self.held = Some(frame);
        }
    }
}

/// Rewrites an `error` frame's code to `unknown_type`.
fn mislabel_error(frame: Frame) -> Frame {
    if !frame.starts_with(br#"{"type":"error""#) {
        return frame;
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&frame) else {
        return frame;
    };
    value["code"] = serde_json::Value::from("unknown_type");
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Frame::from(line)
}

/// Sleeps through the current stall window, if the schedule says the server is stalling now.
fn wait_out_stall(faults: &Faults, started: Instant) {
    let Some((every, length)) = faults.stall else {
        return;
    };
    if every.is_zero() {
        return;
    }
    let elapsed = started.elapsed();
    if elapsed < every {
        return;
    }
    let into_period = Duration::from_nanos((elapsed.as_nanos() % every.as_nanos()) as u64);
    if into_period < length {
        std::thread::sleep(length - into_period);
    }
}
