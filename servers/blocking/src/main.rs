//! # chat-blocking: one thread, blocking calls, one client at a time
//!
//! The simplest server there is, and the baseline every other model in this workspace improves
//! on. The whole server is two nested loops:
//!
//! ```text
//! loop {                      <- serve(): accept() blocks until a client connects
//!     loop {                  <- handle_connection(): read() blocks until that client sends
//!         decode, apply the chat rules, write() the replies
//!     }                       <- ... until it quits, hangs up or goes idle
//! }
//! ```
//!
//! While one client is connected, nobody else is served: the kernel completes their TCP
//! handshakes and parks them in the listen backlog, where they wait until the current client
//! leaves. A client that connects and says nothing holds the whole server until the idle timeout
//! frees it; that timeout is a *read timeout* here (SO_RCVTIMEO), because a blocked `read` has no
//! other way to notice time passing.
//!
//! Everything about the chat itself (parsing, rooms, nicknames, errors) lives in `chat-core`; this
//! file only moves bytes. Compare it with `servers/threads`: the steps have the same names there.
//!
//! ## Run it and poke it
//!
//! ```text
//! cargo run --release -p chat-blocking                # listening on 127.0.0.1:8888
//! printf '{"type":"join","nickname":"a"}\n' | nc 127.0.0.1 8888
//! cargo run --release -p chat-client -- --nick alice  # the interactive client
//! ```
//!
//! Open a second `nc` while the first is still connected: it gets no answer until the first one
//! leaves. `loadgen check --single --addr 127.0.0.1:8888` grades it, skipping the scenarios that
//! need two clients at once.

use chat_core::net::{
    self, accept_blocking, announce, bind_listener, configure_accepted, raise_fd_limit,
    CLOSE_LINGER,
};
use chat_core::{
    carry_out, handle_lines, BacklogFull, CloseReason, ConnId, Flush, Frame, Hub, Inbound,
    LineDecoder, Outbox, SendQueue, ServerArgs, Shutdown, Sink,
};
use clap::Parser;
use std::io::{self, Read};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A blocking, single-threaded chat server: one client at a time.
#[derive(Parser, Debug)]
#[command(name = "chat-blocking", version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    let args = args.server;
    let fd_limit = raise_fd_limit()?;
    let listener = bind_listener(args.addr, &args.socket)?;
    let addr = listener.local_addr()?;

    // SIGINT/SIGTERM arrive while we sit in a blocking call. The watcher thread wakes us: it
    // shuts down the reading half of the current client's socket (our `read` returns 0) and
    // connects to our own listener (our `accept` returns).
    let current = CurrentClient::default();
    let shutdown = Shutdown::on_signal({
        let current = current.clone();
        move || {
            current.interrupt();
            net::wake_acceptor(addr);
        }
    })?;

    announce(addr);
    tracing::info!(%addr, fd_limit, "serving one client at a time");
    serve(&listener, &args, &shutdown, &current);
    tracing::info!("stopped");
    Ok(())
}

/// The accept loop: take the next client from the backlog and serve it until it leaves.
/// (`accept_blocking` pauses instead of spinning when `accept` fails for lack of descriptors:
/// the pending client stays in the backlog, and retrying at once would fail again.)
fn serve(listener: &TcpListener, args: &ServerArgs, shutdown: &Shutdown, current: &CurrentClient) {
    let mut hub = Hub::new(args.hub_config());
    while let Some((stream, addr)) = accept_blocking(listener, shutdown) {
        if shutdown.is_requested() {
            break; // that was the watcher waking us (or a client arriving too late)
        }
        handle_connection(stream, addr, &mut hub, args, shutdown, current);
    }
}

/// One client's whole session, from `connect` to close.
fn handle_connection(
    stream: TcpStream,
    addr: SocketAddr,
    hub: &mut Hub,
    args: &ServerArgs,
    shutdown: &Shutdown,
    current: &CurrentClient,
) {
    if let Err(e) = configure_accepted(&stream, &args.socket) {
        tracing::debug!("socket options: {e}");
    }
    let mut out = Outbox::new();
    let id = hub.connect_from(Instant::now(), addr.ip(), &mut out);
    let mut peer = Peer {
        id,
        stream,
        decoder: args.decoder(),
        queue: args.send_queue(),
        closed: false,
        linger: false,
    };
    tracing::debug!(%id, "connected");
    current.set(&peer.stream);
    // A client that stops reading would block our `write` forever: bound it like silence.
    let _ = peer.stream.set_write_timeout(args.idle_timeout());

    let mut buf = vec![0u8; 64 * 1024];
    let mut state = carry_out_and_write(hub, &mut out, &mut peer);
    while state == State::Open {
        if shutdown.is_requested() {
            hub.shutdown(&mut out);
            carry_out_and_write(hub, &mut out, &mut peer);
            break;
        }
        // The idle deadline becomes the read timeout. `tick` also closes the client if the
        // deadline has already passed.
        let now = Instant::now();
        let deadline = hub.tick(now, &mut out);
        state = carry_out_and_write(hub, &mut out, &mut peer);
        if state == State::Closed {
            break;
        }
        let timeout = deadline.map(|d| {
            d.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        let _ = peer.stream.set_read_timeout(timeout);

        state = match peer.stream.read(&mut buf) {
            Ok(0) if shutdown.is_requested() => continue, // the watcher shut our reading half
            Ok(0) => {
                hub.disconnect(id, &mut out); // the client hung up
                State::Closed
            }
            Ok(n) => on_bytes(&buf[..n], &mut peer, hub, &mut out),
            Err(e) if is_timeout(&e) => State::Open, // loop: `tick` decides whether it is idle
            Err(e) if e.kind() == io::ErrorKind::Interrupted => State::Open,
            Err(e) => {
                tracing::debug!(%id, "read: {e}");
                hub.disconnect(id, &mut out);
                State::Closed
            }
        };
    }
    current.clear();
    if peer.linger && !args.socket.aborts_on_close() {
        linger(&peer.stream);
    }
    tracing::debug!(%id, "closed");
    // Dropping the stream closes the socket; the next client in the backlog is accepted.
}

/// How long a lingering client may pause its sending before we close anyway (see [`linger`]).
const LINGER_QUIET: Duration = Duration::from_millis(500);

/// We hung up on the client for what it sent (`quit`, `line_too_long`), and it may still be
/// sending (lines after its `quit`, the rest of a too-long line). Closing a socket with unread
/// input makes the kernel answer with a reset, which can overtake our last frames: `nc` then
/// prints nothing. So: our FIN first, then read and drop what the client sends until it hangs
/// up too (a lingering close). The next client waits meanwhile, since this server serves one
/// at a time, so the wait is kept short: a client that pauses for [`LINGER_QUIET`] is closed
/// then, and none is kept past [`CLOSE_LINGER`].
fn linger(stream: &TcpStream) {
    if stream.shutdown(Direction::Write).is_err() {
        return;
    }
    let give_up_at = Instant::now() + CLOSE_LINGER;
    let mut scratch = [0u8; 4096];
    loop {
        let wait = give_up_at
            .saturating_duration_since(Instant::now())
            .min(LINGER_QUIET);
        if wait.is_zero() || stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match (&*stream).read(&mut scratch) {
            Ok(0) => return, // it hung up: the close ends without a reset
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return, // it paused (or the socket failed)
        }
    }
}

/// Bytes arrived: split them into lines and let the Hub answer each one (its actions carried
/// out before the next line, chat-core's rule), then write the replies.
fn on_bytes(bytes: &[u8], peer: &mut Peer, hub: &mut Hub, out: &mut Outbox) -> State {
    let lines: Vec<Inbound> = peer.decoder.feed(bytes).collect();
    handle_lines(hub, peer.id, lines, Instant::now(), out, peer);
    carry_out_and_write(hub, out, peer)
}

/// Whether the connection is still being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
}

/// The one client being served.
struct Peer {
    /// The Hub's name for it.
    id: ConnId,
    /// Its socket, in blocking mode.
    stream: TcpStream,
    /// Its unfinished line between two reads.
    decoder: LineDecoder,
    /// The replies not written yet.
    queue: SendQueue,
    /// The Hub closed it (`quit`, `line_too_long`, `idle_timeout`...): write, then hang up.
    closed: bool,
    /// It was closed for what it sent (`quit`, `line_too_long`), so it may still be sending:
    /// hang up with a lingering close (see `linger`). A client closed for its silence is not.
    linger: bool,
}

/// Where the Hub's frames go. Only one connection exists in this model, so every action is for
/// this peer (an action for another id cannot happen and is ignored).
impl Sink for Peer {
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        match to == self.id {
            true => self.queue.push(frame),
            false => Ok(()),
        }
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if conn == self.id {
            tracing::debug!(id = %conn, ?reason, "closing");
            self.closed = true;
            self.linger = matches!(reason, CloseReason::Quit | CloseReason::LineTooLong);
        }
    }

    fn cut(&mut self, conn: ConnId) {
        if conn == self.id {
            self.closed = true;
            self.queue = SendQueue::new(0);
        }
    }
}

/// Does what the Hub asked, then writes it: a blocking write returns only when the kernel took
/// everything (or the write timeout fired, or the peer is gone).
fn carry_out_and_write(hub: &mut Hub, out: &mut Outbox, peer: &mut Peer) -> State {
    carry_out(hub, out, peer);
    match peer.queue.write_to(&mut peer.stream) {
        Ok(Flush::Done) if !peer.closed => State::Open,
        // On `Closed` the caller hangs up: FIN after the last frame (see `linger`), so the
        // client reads everything and then EOF (with `--linger 0`, a RST instead: lesson 09).
        _ => State::Closed,
    }
}

/// A handle on the socket being served, for the signal watcher to interrupt.
#[derive(Clone, Default)]
struct CurrentClient(Arc<Mutex<Option<TcpStream>>>);

impl CurrentClient {
    fn set(&self, stream: &TcpStream) {
        *chat_core::sync::lock(&self.0) = stream.try_clone().ok();
    }

    fn clear(&self) {
        *chat_core::sync::lock(&self.0) = None;
    }

    /// Makes a blocked `read` on the current client return 0.
    fn interrupt(&self) {
        if let Some(stream) = chat_core::sync::lock(&self.0).as_ref() {
            let _ = stream.shutdown(Direction::Read);
        }
    }
}

/// `read` with SO_RCVTIMEO reports a timeout as WouldBlock on Unix (TimedOut elsewhere).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
