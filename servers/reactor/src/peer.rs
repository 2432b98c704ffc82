//! One connection as a reactor sees it: the same `Peer` as in chat-epoll (a socket, its
//! `LineDecoder` and its `SendQueue`), plus what the hand-off to workers adds: a buffer of bytes
//! read while the previous batch is still on a worker, and a decoder that is sometimes away.

use chat_core::{ConnId, Flush, LineDecoder, SendQueue};
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::Shutdown;

/// The most input buffered for one peer while its previous batch is on a worker. Past it, the
/// reactor stops reading that socket: the kernel's receive buffer fills, TCP's window closes,
/// and the client slows down (backpressure), instead of our memory growing. It also bounds how
/// long one busy peer can keep the reactor from the others (fairness).
pub const MAX_INBOUND: usize = 64 * 1024;

/// How much of a lingering peer's input one event drains (see [`Peer::drain`]).
const MAX_DRAIN: usize = 256 * 1024;

pub struct Peer {
    /// The Hub's name for this connection. The slab slot (mio token) may be reused by a later
    /// peer; the id never is, so mail for a departed peer is recognised and dropped.
    pub id: ConnId,
    /// The non-blocking socket. Dropping the `Peer` closes it (and removes it from epoll).
    pub socket: TcpStream,
    /// Splits the byte stream into lines. `None` while a worker holds it: that is what "one
    /// batch in flight per connection" means.
    pub decoder: Option<LineDecoder>,
    /// Bytes read but not yet handed to a worker.
    pub inbound: Vec<u8>,
    /// Frames not yet taken by the kernel (at most `--max-backlog` refused bytes: the queue
    /// refuses more, and the reactor then cuts the peer).
    pub queue: SendQueue,
    /// We stopped reading before the socket said `WouldBlock` (the inbound buffer was full).
    /// mio is edge-triggered: it will not report the socket readable again until *new* data
    /// arrives, so we must come back on our own when the batch returns.
    pub unread: bool,
    /// The client sent its FIN (or its socket failed). Its remaining input is still handled,
    /// then it is disconnected.
    pub hung_up: bool,
    /// Write what is queued, then close. Nothing more is read.
    pub closing: bool,
    /// Our FIN is sent; what the client still sends is read and dropped until it hangs up
    /// ([`Peer::half_close`]).
    pub lingering: bool,
    /// Whether `queue` holds bytes the kernel refused: then a WRITABLE event means "write
    /// more now". (The socket is registered for WRITABLE from the start: mio is edge-triggered,
    /// so that costs no wake-up while the socket stays writable, and no `epoll_ctl` each time a
    /// slow reader's queue fills and drains.)
    pub blocked: bool,
    /// Already listed for this turn's flush.
    pub dirty: bool,
}

impl Peer {
    pub fn new(id: ConnId, socket: TcpStream, decoder: LineDecoder, queue: SendQueue) -> Self {
        Peer {
            id,
            socket,
            decoder: Some(decoder),
            inbound: Vec::new(),
            queue,
            unread: false,
            hung_up: false,
            closing: false,
            lingering: false,
            blocked: false,
            dirty: false,
        }
    }

    /// Whether a batch of this peer's input is on a worker.
    pub fn in_flight(&self) -> bool {
        self.decoder.is_none()
    }

    /// Reads until the socket has nothing more, EOF, or the inbound buffer is full.
    /// Edge-triggered readiness means "read until `WouldBlock`", or remember that we did not
    /// (`unread`). A read that does not fill `scratch` took all the socket had, and what comes
    /// later is a new edge, so it ends the reading without another read to hear `WouldBlock`;
    /// unless `read_closed` (the event's `EPOLLRDHUP`) says an EOF waits behind the data, which
    /// is no new edge: then we read on to it.
    pub fn receive(&mut self, scratch: &mut [u8], read_closed: bool) {
        self.unread = false;
        while !self.hung_up {
            if self.inbound.len() >= MAX_INBOUND {
                self.unread = true;
                return;
            }
            match (&self.socket).read(scratch) {
                Ok(0) => self.hung_up = true,
                Ok(n) => {
                    self.inbound.extend_from_slice(&scratch[..n]);
                    if n < scratch.len() && !read_closed {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A reset is the same as an EOF for us: what it sent before is still handled.
                Err(_) => self.hung_up = true,
            }
        }
    }

    /// Writes as much queued output as the socket takes (one `writev` for many frames). `Err`
    /// when the socket failed or refused more than `--max-backlog` bytes.
    pub fn send(&mut self) -> io::Result<Flush> {
        // `&TcpStream` implements `Write`: a short write leaves the rest queued, mid-frame.
        self.queue.write_to(&mut &self.socket)
    }

    /// The connection must end and its output is flushed: our FIN goes out, and the peer
    /// *lingers*, its input read and dropped, until the client hangs up too (or its deadline in
    /// the reactor's `closing` queue passes). `true` once the client has hung up (or the
    /// socket failed): the peer can be dropped now.
    ///
    /// Why not close at once: `close()` on a socket whose client is still sending (the rest of a
    /// too-long line, lines after its `quit`) makes the kernel answer with a reset, and a reset
    /// can make the client discard our last frames (`bye`, `line_too_long`) before it reads
    /// them. A FIN first, then waiting for the client's, is nginx's lingering close.
    pub fn half_close(&mut self, scratch: &mut [u8]) -> bool {
        if !self.lingering {
            self.lingering = true;
            if self.socket.shutdown(Shutdown::Write).is_err() {
                return true;
            }
        }
        self.drain(scratch)
    }

    /// Reads and drops what a lingering client sent; `true` once it has hung up (EOF) or the
    /// socket failed. At most [`MAX_DRAIN`] bytes a call: a client that keeps sending cannot
    /// keep the loop from the others (it makes new readiness edges, so it is read again).
    pub fn drain(&mut self, scratch: &mut [u8]) -> bool {
        let mut drained = 0;
        while drained < MAX_DRAIN {
            match (&self.socket).read(scratch) {
                Ok(0) => return true,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
        false
    }
}
