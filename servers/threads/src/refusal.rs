//! Turning a client away: one `error` line, then a *lingering* close (which a served client
//! gets too when the server hangs up on it: `linger`).
//!
//! Closing a socket at once is not enough. A client often speaks before it reads (`printf
//! '{"type":"ping"}\n' | nc ...`), and when its bytes reach a socket we have closed, or sit
//! unread in one we close, the kernel answers with a reset. The client's kernel then flags the
//! connection with an error, and `poll(2)` reports it: `nc` drops the connection on that flag
//! without reading the error line already waiting for it. The client saw nothing.
//!
//! So a refused socket is half-closed (our FIN follows the error line) and kept open, its input
//! read and thrown away, until the client hangs up or [`CLOSE_LINGER`] passes: nginx calls this
//! a lingering close. The event-loop servers linger in their loop; here no thread serves a
//! refused client, so one `lingerer` thread, started on the first refusal, holds them all.

use chat_core::net::CLOSE_LINGER;
use chat_core::{error_frame, ErrorCode};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Most refused sockets lingering at once. Past it a refusal closes at once: under a flood of
/// refusals, the descriptors matter more than the last error lines.
const MAX_LINGERING: usize = 1024;
/// How often the lingerer reads what the refused clients sent: a lingering client waits at most
/// this long for our side to go away once it has hung up.
const TICK: Duration = Duration::from_millis(50);
/// Reads per socket per tick: a client that keeps sending cannot keep the lingerer busy.
const READS_PER_TICK: usize = 4;

/// Answers a client we will not serve with one `error` line and hangs up without a reset. The
/// socket is made non-blocking first: a client that does not read must not stall the thread
/// refusing it (the accept loop, usually).
pub fn refuse(stream: &TcpStream, code: ErrorCode, message: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(&error_frame(code, message));
    let _ = stream.shutdown(Shutdown::Write);
    linger(stream);
}

/// Keeps a socket whose write side is (or is about to be) shut open until its client hangs up,
/// reading and discarding its input, for at most [`CLOSE_LINGER`]. Also for a served client
/// that the server hangs up on from its own thread (`quit`, `line_too_long`: see
/// `connection.rs`). The caller drops its `stream`; a second descriptor keeps the socket open
/// meanwhile. With no descriptor to spare, or the lingerer full, the socket just closes.
pub fn linger(stream: &TcpStream) {
    // Non-blocking for the lingerer's reads (a flag of the socket, so every descriptor of it
    // has it: the thread servers' writes already never wait).
    let _ = stream.set_nonblocking(true);
    if let Ok(lingering) = stream.try_clone() {
        let _ = lingerer().try_send(lingering);
    }
}

/// The lingerer's mailbox, starting the thread on first use.
fn lingerer() -> &'static SyncSender<TcpStream> {
    static LINGERER: OnceLock<SyncSender<TcpStream>> = OnceLock::new();
    LINGERER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel(MAX_LINGERING);
        let started = std::thread::Builder::new()
            .name("lingerer".into())
            .spawn(move || run_lingerer(rx));
        if let Err(e) = started {
            // The receiver went with the closure: every `try_send` fails, refusals close at once.
            tracing::warn!("cannot start the lingering thread ({e}); refusals close at once");
        }
        tx
    })
}

/// Holds refused sockets, oldest first (each lingers as long as the others, so the queue is in
/// deadline order), dropping each once its client has hung up or its time is up.
fn run_lingerer(rx: mpsc::Receiver<TcpStream>) {
    let mut lingering: VecDeque<(Instant, TcpStream)> = VecDeque::new();
    loop {
        // Nothing lingering: sleep until a refusal. Otherwise look again every tick.
        let next = if lingering.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(TICK)
        };
        match next {
            Ok(stream) => hold(&mut lingering, stream),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Take the others refused meanwhile too: a burst costs one tick, not one each.
        while let Ok(stream) = rx.try_recv() {
            hold(&mut lingering, stream);
        }
        let now = Instant::now();
        while lingering
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            lingering.pop_front(); // it did not hang up in time: closed now
        }
        lingering.retain(|(_, stream)| client_still_there(stream));
    }
}

/// Starts `stream`'s lingering, or closes it at once when [`MAX_LINGERING`] already linger.
fn hold(lingering: &mut VecDeque<(Instant, TcpStream)>, stream: TcpStream) {
    if lingering.len() < MAX_LINGERING {
        lingering.push_back((Instant::now() + CLOSE_LINGER, stream));
    }
}

/// Reads and discards what the client sent; `false` once it has hung up (EOF) or the socket
/// failed, so the socket can be closed without a reset.
fn client_still_there(mut stream: &TcpStream) -> bool {
    let mut scratch = [0u8; 4096];
    for _ in 0..READS_PER_TICK {
        match stream.read(&mut scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The lingerer reads the refused client's bytes and closes once the client hangs up: the
    /// client sees the error line, then an orderly EOF, and no reset.
    #[test]
    fn a_refused_client_reads_its_error_and_an_orderly_eof() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        refuse(&server_side, ErrorCode::ServerFull, "full");
        drop(server_side);
        client.write_all(b"{\"type\":\"ping\"}\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(client.take_error().unwrap().is_none(), "no reset");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = String::new();
        client.read_to_string(&mut got).unwrap();
        assert!(got.contains("\"code\":\"server_full\""), "{got}");
    }
}
