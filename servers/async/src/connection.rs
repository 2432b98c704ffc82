//! One connection = two tasks: a reader (socket -> decoder -> Hub) and a writer (queue ->
//! socket, in `outbound.rs`).
//!
//! Why two tasks rather than one with `select!` over "readable" and "frames queued": each loop
//! stays a straight line (read, handle, repeat / write, wait, repeat), and a connection whose
//! writes are stuck still gets its requests read, so the Hub sees it and can close it.

use crate::outbound::{self, Outbound};
use crate::shared::Shared;
use chat_core::{net, ConnId, Inbound, LineDecoder, ServerArgs};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

/// Bytes read per `read` call, at most. Each connection has its own buffer, but `read_buf`
/// fills only as much of it as arrives, so an idle connection's buffer is mostly memory never
/// touched (virtual, not resident). The decoder keeps only an unfinished line between reads.
const READ_BUFFER: usize = 16 * 1024;

/// After the connection ends, how long the reader keeps reading (and dropping) what the
/// client still sends. See [`linger`].
const LINGER: Duration = Duration::from_secs(1);

/// Registers a new connection with the Hub and starts its two tasks.
pub fn start(tasks: &TaskTracker, shared: &Arc<Shared>, stream: TcpStream, args: &ServerArgs) {
    if let Err(e) = net::configure_accepted(&stream, &args.socket) {
        tracing::debug!("socket options: {e}");
    }
    let outbound = Arc::new(Outbound::new(args.send_queue()));
    let ip = match stream.peer_addr() {
        Ok(addr) => addr.ip(),
        Err(e) => return tracing::debug!("a connection gone before it was served: {e}"),
    };
    let id = shared.connect(Arc::clone(&outbound), ip, crate::now());
    // Two owned halves (an `Arc` inside), so each task owns its side.
    let (reader, writer) = stream.into_split();
    tasks.spawn(outbound::write_loop(Arc::clone(&outbound), writer));
    tasks.spawn(read_loop(
        Arc::clone(shared),
        id,
        reader,
        args.decoder(),
        outbound,
    ));
}

/// The reader task: read, split into lines, parse, hand the lines to the Hub; until EOF, an
/// error, or the connection is ended from elsewhere (the Hub closed it, the writer failed).
async fn read_loop(
    shared: Arc<Shared>,
    id: ConnId,
    mut socket: OwnedReadHalf,
    mut decoder: LineDecoder,
    outbound: Arc<Outbound>,
) {
    let mut buffer = Vec::with_capacity(READ_BUFFER);
    loop {
        buffer.clear();
        tokio::select! {
            // `biased`: check the stop signal first, so a closed connection reads no more.
            biased;
            _ = outbound.stop_reading.cancelled() => break,
            read = socket.read_buf(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
        // Parsing happens here, outside the lock, on whichever runtime thread runs this task.
        let lines: Vec<Inbound> = decoder.feed(&buffer).collect();
        if !lines.is_empty() {
            shared.handle(id, lines, crate::now());
        }
    }
    // EOF or error: the room is told `left` (a no-op if the Hub closed it itself), and the
    // writer sends what is still queued, then closes.
    shared.disconnect(id);
    outbound.close_after_flush();
    if !outbound.is_aborted() {
        linger(&mut socket, &mut buffer).await;
    }
}

/// Reads and drops input until the client closes, for at most [`LINGER`].
///
/// A socket closed while the client's bytes sit unread in its receive buffer answers with a RST
/// instead of a FIN, and a RST can make the client throw away our last frames (`bye`,
/// `line_too_long`) before reading them. Draining first avoids it (nginx's "lingering close").
pub async fn linger(socket: &mut OwnedReadHalf, buffer: &mut Vec<u8>) {
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
