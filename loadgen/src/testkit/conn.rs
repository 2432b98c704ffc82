//! One connection of the [`TestServer`](super::TestServer): a reader thread that feeds the Hub,
//! and a writer thread that drains a byte-bounded queue to the socket, applying the faults.

use super::{Faults, State};
use chat_core::{BacklogFull, CloseReason, ConnId, Frame, LineDecoder, Outbox};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stack size of the per-connection threads: small, so a test can open a thousand connections.
const THREAD_STACK: usize = 256 * 1024;

/// How long a reorder-held broadcast waits for a partner before it is written alone.
const REORDER_WAIT: Duration = Duration::from_millis(250);

/// With the `count_untried_backlog` fault, how long the writer lets frames pile up before it
/// takes them.
const UNTRIED_DELAY: Duration = Duration::from_millis(20);

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
    /// The `count_untried_backlog` fault: the limit applies even while the socket takes data.
    count_untried: bool,
    /// Signalled when the queue gets an item or is closed.
    ready: Condvar,
    /// The writer has ended: everything was written (or the peer is gone).
    written: AtomicBool,
    /// Both threads have ended.
    finished: AtomicBool,
    /// A WebSocket connection (the test server's WebSocket front): frames go out as text
    /// messages, and a close is a close frame with the code PROTOCOL.md, section 9, gives.
    pub(crate) ws: bool,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Frame>,
    /// Unsent bytes: those in `frames` plus those the writer took and has not written yet.
    bytes: usize,
    /// The socket refused bytes (a write would have blocked) and the writer has not emptied the
    /// queue since: while this holds, `bytes` is bounded by `Connection::max_backlog`, the rule
    /// of chat-core's `SendQueue` (only what the socket refused counts).
    refusing: bool,
    /// Write what is queued, then close.
    close: bool,
    /// Why the Hub closed it (for a WebSocket's close code); `None`: the peer went away.
    close_reason: Option<CloseReason>,
    /// WebSocket control frames (a pong, the answer to a close), written before the next
    /// frames.
    control: Vec<Vec<u8>>,
    /// Stop at once: the peer is gone or was cut off.
    aborted: bool,
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame; `Err` when the socket is refusing and the frame would take what waits
    /// for it over the limit.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), BacklogFull> {
        let mut queue = self.lock();
        if queue.close || queue.aborted {
            return Ok(()); // closing already: late frames are dropped
        }
        let counts = queue.refusing || self.count_untried;
        if counts && queue.bytes + frame.len() > self.max_backlog {
            return Err(BacklogFull);
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        self.ready.notify_one();
        Ok(())
    }

    /// Writes what is queued, then closes.
    pub(crate) fn close_after_flush(&self) {
        self.lock().close = true;
        self.ready.notify_one();
    }

    /// The Hub closed it for `reason`: writes what is queued, then closes.
    pub(crate) fn close_for(&self, reason: CloseReason) {
        let mut queue = self.lock();
        queue.close = true;
        queue.close_reason.get_or_insert(reason);
        drop(queue);
        self.ready.notify_one();
    }

    /// Queues a pre-encoded WebSocket control frame (written ahead of the next frames).
    pub(crate) fn push_control(&self, frame: Vec<u8>) {
        self.lock().control.push(frame);
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
    spawn_with(stream, shared, None)
}

/// Like [`spawn`]; with `ws: Some(bytes)` the socket has been upgraded to WebSocket, and
/// `bytes` are what the peer sent after its upgrade request.
pub(crate) fn spawn_with(
    stream: TcpStream,
    shared: &Arc<Shared>,
    ws: Option<Vec<u8>>,
) -> io::Result<Arc<Connection>> {
    let conn = Arc::new(Connection {
        stream: stream.try_clone()?,
        queue: Mutex::new(Queue::default()),
        max_backlog: shared.max_backlog,
        count_untried: shared.faults.count_untried_backlog,
        ready: Condvar::new(),
        written: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        ws: ws.is_some(),
    });
    let writer_stream = stream.try_clone()?;
    let id = {
        let mut state = shared.lock();
        let mut out = Outbox::new();
        let ip = stream.peer_addr()?.ip();
        let id = state.hub.connect_from(Instant::now(), ip, &mut out);
        // Registered before dispatching, so a `server_full` for this very id finds its queue.
        state.conns.0.insert(id, Arc::clone(&conn));
        state.dispatch(&mut out);
        id
    };
    let writer = {
        let (conn, shared) = (Arc::clone(&conn), Arc::clone(shared));
        start_thread(format!("testkit-write-{}", id.0), move || {
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
        start_thread(format!("testkit-read-{}", id.0), move || {
            match ws {
                Some(early) => super::ws::read_loop(stream, early, id, &conn, &shared),
                None => read_loop(stream, id, &conn, &shared),
            }
            let _ = writer.join();
            let _ = conn.stream.shutdown(SocketShutdown::Both);
            conn.finished.store(true, Ordering::SeqCst);
            shared.lock().conns.0.remove(&id);
        })
    };
    if let Err(e) = reader {
        forget(shared, id, &conn);
        return Err(e);
    }
    Ok(conn)
}

/// Starts one of a connection's two threads, named for `ps` and debuggers.
fn start_thread(name: String, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK)
        .spawn(body)
}

/// Disconnects `id` from the Hub (its room hears `left`) and cuts the socket.
pub(crate) fn forget(shared: &Shared, id: ConnId, conn: &Connection) {
    let mut state = shared.lock();
    let mut out = Outbox::new();
    state.hub.disconnect(id, &mut out);
    state.dispatch(&mut out);
    state.conns.0.remove(&id);
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
        if shared.faults.drop_replies_on_hangup && hangup_follows(&stream) {
            // The fault: like an event loop that read these lines and the EOF in one turn and
            // closed at once, the lines are never answered.
            conn.abort();
            break;
        }
        let mut state = shared.lock();
        let mut out = Outbox::new();
        let now = Instant::now();
        let State { hub, conns } = &mut *state;
        // Each request's actions carried out before the next (chat-core's rule).
        chat_core::handle_lines(hub, id, decoder.feed(&buf[..n]), now, &mut out, conns);
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

/// Whether the peer's EOF is already waiting behind what was just read (for the
/// `drop_replies_on_hangup` fault; gives the FIN a moment to arrive).
fn hangup_follows(stream: &TcpStream) -> bool {
    std::thread::sleep(Duration::from_millis(50));
    let mut probe = [0u8; 1];
    let _ = stream.set_nonblocking(true);
    let eof = matches!(stream.peek(&mut probe), Ok(0));
    let _ = stream.set_nonblocking(false);
    eof
}

/// Drains the queue to the socket, applying the faults, until told to close or the peer is gone.
fn write_loop(mut stream: TcpStream, conn: &Connection, shared: &Shared) {
    let mut faults = FaultState::default();
    loop {
        if conn.count_untried {
            // The fault's other half: like a writer task that has not run yet, let frames pile
            // up for a moment before taking them.
            std::thread::sleep(UNTRIED_DELAY);
        }
        let (frames, close, control, close_reason) = {
            let mut queue = conn.lock();
            while queue.frames.is_empty()
                && queue.control.is_empty()
                && !queue.close
                && !queue.aborted
            {
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
            (
                std::mem::take(&mut queue.frames),
                queue.close,
                std::mem::take(&mut queue.control),
                queue.close_reason,
            )
        };
        for frame in &control {
            if stream.write_all(frame).is_err() {
                conn.abort();
                return;
            }
        }
        // These bytes stay counted in the backlog until they are written.
        let taken: usize = frames.iter().map(|f| f.len()).sum();
        let quiet = frames.is_empty() && control.is_empty(); // woken by the reorder timeout
        let mut batch: Vec<Frame> = Vec::with_capacity(frames.len() + 1);
        for frame in frames {
            faults.apply(&shared.faults, frame, &mut batch);
        }
        if quiet || close {
            batch.extend(faults.held.take()); // a held broadcast without a partner goes alone
        }
        wait_out_stall(&shared.faults, shared.started);
        for frame in &batch {
            let written = if conn.ws {
                write_frame(&mut stream, &super::ws::text_frame(frame), conn)
            } else {
                write_frame(&mut stream, frame, conn)
            };
            if written.is_err() {
                conn.abort();
                return;
            }
        }
        let mut queue = conn.lock();
        queue.bytes -= taken;
        if queue.frames.is_empty() {
            queue.refusing = false; // all written: the socket takes what it is given
        }
        drop(queue);
        if close {
            // A WebSocket the Hub closed ends with the close code of its reason; one whose peer
            // went away (or closed first, and was answered) gets none.
            if let (true, Some(reason)) = (conn.ws, close_reason) {
                let _ = stream.write_all(&super::ws::close_frame(reason));
            }
            let _ = stream.shutdown(SocketShutdown::Write);
            // The reader keeps draining the peer's input for a while, then ends.
            let _ = stream.set_read_timeout(Some(LINGER));
            return;
        }
    }
}

/// Writes one frame: first without waiting, and if the socket refuses (part of) it, marks the
/// connection as refusing and waits for the rest.
fn write_frame(stream: &mut TcpStream, frame: &[u8], conn: &Connection) -> io::Result<()> {
    let sent = loop {
        match socket2::SockRef::from(&*stream)
            .send_with_flags(frame, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if sent < frame.len() {
        conn.lock().refusing = true;
        stream.write_all(&frame[sent..])?;
    }
    Ok(())
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
