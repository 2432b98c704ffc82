//! One connection: chat-async's writer task (`chat_async::outbound`, reused as it is) and a
//! reader task that feeds a [`Session`].
//!
//! The reader differs from chat-async's in one way: a request may wait (for Redis, for its
//! echo), and the reader waits with it before reading the next line. A client that pipelines
//! a thousand messages is therefore served one round trip at a time, and TCP's flow control
//! holds back the rest in its socket: backpressure, with no queue of ours in between.

use crate::bus::Bus;
use crate::node::Node;
use crate::session::{Flow, Session};
use chat_async::connection::linger;
use chat_async::outbound::{self, Outbound};
use chat_core::{error_frame, net, ErrorCode, Inbound, LineDecoder, ServerArgs};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_util::task::TaskTracker;

/// Bytes read per `read` call, at most (as in chat-async).
const READ_BUFFER: usize = 16 * 1024;

/// Starts the two tasks of an accepted connection, or refuses it with `server_full`.
pub fn start<B: Bus>(
    tasks: &TaskTracker,
    node: &Arc<Node<B>>,
    stream: TcpStream,
    args: &ServerArgs,
) {
    if let Err(e) = net::configure_accepted(&stream, &args.socket) {
        tracing::debug!("socket options: {e}");
    }
    metrics::counter!("chat_connections_accepted_total").increment(1);
    let outbound = Arc::new(Outbound::new(args.send_queue()));
    let (reader, writer) = stream.into_split();
    tasks.spawn(outbound::write_loop(Arc::clone(&outbound), writer));
    if node.connections() >= args.max_conns {
        let message = format!("the server already has {} connections", args.max_conns);
        let _ = outbound.push(error_frame(ErrorCode::ServerFull, &message));
        metrics::counter!("chat_errors_total", "code" => ErrorCode::ServerFull.as_str())
            .increment(1);
        outbound.close_after_flush();
        return;
    }
    let conn = node.connect(Arc::clone(&outbound));
    let session = Session::new(
        Arc::clone(node),
        conn,
        args.rate_limit,
        outbound.stop_reading.clone(),
    );
    tasks.spawn(read_loop(
        Arc::clone(node),
        session,
        reader,
        args.decoder(),
        args.idle_timeout(),
        outbound,
    ));
}

/// Read, split into lines, hand each to the session and wait for it; until EOF, an error,
/// `quit`, the idle timeout, or the connection being ended from elsewhere.
async fn read_loop<B: Bus>(
    node: Arc<Node<B>>,
    mut session: Session<B>,
    mut socket: OwnedReadHalf,
    mut decoder: LineDecoder,
    idle_timeout: Option<std::time::Duration>,
    outbound: Arc<Outbound>,
) {
    let conn = session.conn();
    let mut buffer = Vec::with_capacity(READ_BUFFER);
    // Far in the future when there is no timeout: one code path.
    let idle = idle_timeout.unwrap_or(std::time::Duration::from_secs(365 * 24 * 3600));
    let mut deadline = Instant::now() + idle;
    'reading: loop {
        buffer.clear();
        tokio::select! {
            biased;
            _ = outbound.stop_reading.cancelled() => break,
            _ = sleep_until(deadline) => {
                let message = format!("no request for {} s; closing", idle.as_secs_f64());
                session.handle(Err(chat_core::Rejection::new(ErrorCode::IdleTimeout, message))).await;
                break;
            }
            read = socket.read_buf(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => metrics::counter!("chat_bytes_in_total").increment(n as u64),
            },
        }
        let lines: Vec<Inbound> = decoder.feed(&buffer).collect();
        for line in lines {
            // Only a complete line counts as activity (PROTOCOL.md, version 1.1).
            deadline = Instant::now() + idle;
            metrics::counter!("chat_frames_in_total").increment(1);
            if session.handle(line).await == Flow::Close {
                break 'reading;
            }
        }
    }
    // The room is told `left` (in the background), the writer sends what is queued, closes.
    node.disconnect(conn);
    outbound.close_after_flush();
    if !outbound.is_aborted() {
        linger(&mut socket, &mut buffer).await;
    }
}
