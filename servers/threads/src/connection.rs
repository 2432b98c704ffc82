//! One client's whole session on one thread: lesson 01's loop, with the Hub shared.

use crate::outbound::{flush_all, Outbound};
use crate::Server;
use chat_core::sync::lock;
use chat_core::Inbound;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

/// Bytes one `read` asks for. On the thread's stack: with 10,000 threads, every KiB here is
/// 10 MiB of memory. Longer lines simply take several reads.
pub const READ_BUFFER: usize = 4096;

/// Serves one client until it leaves or is closed: reads with blocking `read`s, and writes what
/// each request produced, for this client and for others, without blocking (see `outbound.rs`).
/// chat-threads runs it on a thread of the client's own, chat-pool on a pool worker.
pub fn handle_connection(stream: Arc<TcpStream>, peer: SocketAddr, server: &Server) {
    let outbound = Arc::new(Outbound::new(
        Arc::clone(&stream),
        server.args.max_backlog,
        server.stack_size,
        server.args.idle_timeout(),
    ));

    // 1. The Hub gives it an id, or refuses it (`--max-conns`, `--max-conns-per-ip`).
    let (id, touched) = lock(&server.chat).connect(&outbound, peer.ip());
    flush_all(&touched);
    let Some(id) = id else {
        return;
    };
    tracing::debug!("{id} connected from {peer}");

    // 2. Read until the client hangs up, or someone closes the connection (the Hub, the idle
    //    timer, a shutdown, an overflow: the hang-up's `shutdown(2)` makes `read` return 0).
    let mut decoder = server.args.decoder();
    let mut buf = [0u8; READ_BUFFER];
    let mut hung_up_by_us = false;
    loop {
        let n = match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("{id} read failed: {e}");
                break;
            }
        };
        // Decode outside the lock: parsing JSON is most of the work of a request, and it needs
        // nothing shared. Only the Hub step and the queueing happen under the lock; the frames
        // are written once it is released.
        let lines: Vec<Inbound> = decoder.feed(&buf[..n]).collect();
        if !lines.is_empty() {
            let touched = lock(&server.chat).handle(id, lines, Instant::now());
            flush_all(&touched);
        }
        if outbound.is_closed() {
            hung_up_by_us = true; // `quit`, `line_too_long`, or over `--max-backlog`
            break;
        }
    }

    // 3. Tell the Hub (its room hears `left`); what is queued for the client is still sent.
    let touched = lock(&server.chat).disconnect(id);
    flush_all(&touched);
    // 4. We hung up on a client that may still be sending (the rest of a too-long line, lines
    //    after its `quit`): a close with its input unread would answer with a reset, which can
    //    overtake our last frames. The lingerer reads and drops its input until it hangs up.
    if hung_up_by_us && !server.args.socket.aborts_on_close() {
        crate::refusal::linger(&stream);
    }
    tracing::debug!("{id} disconnected");
}
