//! One connection, TCP or WebSocket: chat-async's writer task (`chat_async::outbound`, reused
//! as it is) and a reader task that feeds a [`Session`].
//!
//! The two transports share everything but their framing: the socket (a WebSocket connection
//! is the `TcpStream` its HTTP upgrade ran on, handed back by hyper), the writer task and its
//! `--max-backlog` rule, the session, the idle timeout, the limits. What differs is the
//! [`Decoder`] on the way in (`transport.rs`) and the [`Outlet`]'s framing on the way out.
//!
//! The reader differs from chat-async's in one way: a request may wait (for Redis, for its
//! echo), and the reader waits with it before looking at the next frame. A client that
//! pipelines a thousand messages is therefore served one round trip at a time, and TCP's flow
//! control holds back the rest in its socket: backpressure, with no queue of ours in between.

use crate::bus::Bus;
use crate::node::Node;
use crate::outlet::Outlet;
use crate::session::{Flow, Session};
use crate::transport::{Decoded, Decoder, Lines};
use crate::websocket::decoder::Messages;
use bytes::Bytes;
use chat_async::connection::linger;
use chat_async::outbound::{self, Outbound};
use chat_core::{error_frame, net, CloseReason, ErrorCode, Rejection, ServerArgs};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_util::task::TaskTracker;
use tungstenite::protocol::frame::coding::CloseCode;

/// Bytes read per `read` call, at most (as in chat-async).
const READ_BUFFER: usize = 16 * 1024;

/// How an accepted socket speaks.
#[derive(Debug)]
pub enum Transport {
    /// JSON lines on the chat port.
    Lines,
    /// WebSocket messages, after an upgrade on the HTTP port.
    WebSocket {
        /// What the client sent after its HTTP request, already read by the HTTP server.
        early: Bytes,
        /// The `session` key of `/ws?session=KEY`: lets a reconnecting client take its
        /// nickname back from its own previous connection (`bus::scripts::JOIN`).
        session: Option<String>,
    },
}

/// Starts the two tasks of an accepted connection, or refuses it with `server_full` (or
/// `shutting_down`), a WebSocket one with the close code that goes with it.
pub fn start<B: Bus>(
    tasks: &TaskTracker,
    node: &Arc<Node<B>>,
    stream: TcpStream,
    args: &ServerArgs,
    transport: Transport,
) {
    if let Err(e) = net::configure_accepted(&stream, &args.socket) {
        tracing::debug!("socket options: {e}");
    }
    let Ok(peer) = stream.peer_addr() else {
        return; // gone already
    };
    metrics::counter!("chat_connections_accepted_total").increment(1);
    let outbound = Arc::new(Outbound::new(args.send_queue()));
    let (outlet, session) = match &transport {
        Transport::Lines => (Outlet::lines(Arc::clone(&outbound)), None),
        Transport::WebSocket { session, .. } => {
            (Outlet::websocket(Arc::clone(&outbound)), session.clone())
        }
    };
    let outlet = Arc::new(outlet);
    let (reader, writer) = stream.into_split();
    let aborts_on_close = args.socket.aborts_on_close();
    tasks.spawn(outbound::write_loop(outbound, writer, aborts_on_close));
    let conn = match node.connect(Arc::clone(&outlet), peer.ip(), session) {
        Ok(conn) => conn,
        Err(refusal) => {
            metrics::counter!("chat_errors_total", "code" => refusal.code().as_str()).increment(1);
            let _ = outlet.send(error_frame(refusal.code(), &refusal.message));
            outlet.close(refusal.reason);
            return;
        }
    };
    let session = Session::new(
        Arc::clone(node),
        conn,
        args.rate_limit,
        outlet.stop_reading().clone(),
    );
    let reading = Reader {
        node: Arc::clone(node),
        session,
        socket: reader,
        idle_timeout: args.idle_timeout(),
        outlet,
        aborts_on_close,
    };
    match transport {
        Transport::Lines => tasks.spawn(read_loop(reading, Lines::new(args.decoder()))),
        Transport::WebSocket { early, .. } => {
            let decoder = Messages::new(Arc::clone(&reading.outlet), args.max_line, &early);
            tasks.spawn(read_loop(reading, decoder))
        }
    };
}

/// What the reader task works with, whichever the transport: only the [`Decoder`] differs.
struct Reader<B> {
    /// Told when the connection ends, so that its room hears `left`.
    node: Arc<Node<B>>,
    /// Handles each decoded frame, one at a time.
    session: Session<B>,
    /// The socket's read half (the writer task owns the other).
    socket: OwnedReadHalf,
    /// `--idle-timeout`, when set.
    idle_timeout: Option<Duration>,
    /// The writer's side: how the reader ends the connection, and learns that it was ended.
    outlet: Arc<Outlet>,
    /// `--linger 0`: no lingering close, the socket is closed (a RST) once the writer is done.
    aborts_on_close: bool,
}

/// How the reader's loop ended, which decides how the connection is closed.
enum End {
    /// The session closed it after its last reply (`bye`, `line_too_long`, `idle_timeout`).
    Closed(CloseReason),
    /// The client ended it: end of stream, or a WebSocket close (already answered).
    ByClient,
    /// The client broke RFC 6455: a close frame with code 1002 (protocol error).
    Broken(String),
    /// Someone else ended it (a backlog overflow, the shutdown, an eviction): nothing to add.
    Elsewhere,
}

/// Read, decode, hand each frame to the session and wait for it; until the end of the stream,
/// an error, `quit`, the idle timeout, or the connection being ended from elsewhere.
async fn read_loop<B: Bus, D: Decoder>(reader: Reader<B>, mut decoder: D) {
    let Reader {
        node,
        mut session,
        mut socket,
        idle_timeout,
        outlet,
        aborts_on_close,
    } = reader;
    let conn = session.conn();
    let mut buffer = Vec::with_capacity(READ_BUFFER);
    // Far in the future when there is no timeout: one code path.
    let idle = idle_timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut deadline = Instant::now() + idle;
    let end = 'reading: loop {
        // What is already buffered first (a WebSocket client's first message may have come
        // with its HTTP request), then the socket.
        while let Some(decoded) = decoder.next() {
            match decoded {
                Decoded::Frame(frame) => {
                    // Only a complete frame counts as activity (PROTOCOL.md, guarantee 6).
                    deadline = Instant::now() + idle;
                    metrics::counter!("chat_frames_in_total").increment(1);
                    if let Flow::Close(reason) = session.handle(frame).await {
                        break 'reading End::Closed(reason);
                    }
                }
                Decoded::Closed => break 'reading End::ByClient,
                Decoded::Broken(why) => break 'reading End::Broken(why),
            }
        }
        buffer.clear();
        tokio::select! {
            biased;
            _ = outlet.stop_reading().cancelled() => break End::Elsewhere,
            _ = sleep_until(deadline) => {
                let message = format!("no request for {} s; closing", idle.as_secs_f64());
                let rejection = Rejection::new(ErrorCode::IdleTimeout, message);
                match session.handle(Err(rejection)).await {
                    Flow::Close(reason) => break End::Closed(reason),
                    Flow::Continue => break End::Elsewhere,
                }
            }
            read = socket.read_buf(&mut buffer) => match read {
                Ok(0) | Err(_) => break End::ByClient,
                Ok(n) => {
                    metrics::counter!("chat_bytes_in_total").increment(n as u64);
                    decoder.feed(&buffer);
                }
            },
        }
    };
    // The room is told `left` (in the background); the writer sends what is queued, closes.
    node.disconnect(conn);
    match end {
        End::Closed(reason) => outlet.close(reason),
        End::ByClient | End::Elsewhere => outlet.finish(),
        End::Broken(why) => {
            tracing::debug!("{conn}: {why}");
            outlet.close_with(CloseCode::Protocol, &why);
        }
    }
    if !outlet.is_aborted() && !aborts_on_close {
        linger(&mut socket, &mut buffer).await;
    }
}
