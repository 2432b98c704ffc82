//! One echo client's state, shared by `select-echo` (exercise 6) and `epoll-echo` (exercise 30):
//! what the two servers do with a ready socket is the same, only *how they learn* it is ready
//! differs.
//!
//! Every socket is non-blocking, so a read or a write does only what the kernel can do at once:
//! - a **read** may return part of a line, or many lines: an echo server does not care, it sends
//!   the bytes back as they came, in order;
//! - a **write** may take only part of what we offer (the client reads slower than it sends, and
//!   its socket buffer is full). The rest waits in [`Echo::pending`] until the socket is writable
//!   again. That is the *partial write* every readiness server must handle.
//!
//! And one bound: a client that sends without reading would make `pending` grow without limit.
//! Past [`MAX_PENDING`] bytes we stop *reading* it (it stops being watched for readability) until
//! it has read some: the kernel's buffers fill, and TCP's flow control slows the sender down.
//! That is backpressure: the client pays for its own slowness, nobody else does.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;

/// Unsent bytes kept per client before we stop reading from it.
pub const MAX_PENDING: usize = 1 << 20;

/// Bytes one `read` asks for.
const READ_CHUNK: usize = 64 * 1024;

/// Whether an accept loop goes on after `accept` failed with `e`: yes after a signal
/// (`EINTR`), no once the backlog is empty (`EAGAIN`). Any other error (out of descriptors,
/// EMFILE, say) leaves the client in the backlog and the listener readable, so retrying at once
/// would spin a core: a short pause, and no. That pause (everyone waits) is the model answers'
/// simplification; lesson 04's chat-poll keeps a spare descriptor to refuse the client instead.
pub fn keep_accepting(program: &str, e: &io::Error) -> bool {
    match e.kind() {
        ErrorKind::Interrupted => true,
        ErrorKind::WouldBlock => false,
        _ => {
            eprintln!("{program}: accept: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    }
}

/// What the server should do with a client after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Keep it.
    Open,
    /// It is gone (it hung up and got everything back, or an error): close it.
    Done,
}

/// One client of an echo server.
#[derive(Debug)]
pub struct Echo {
    /// Its socket, non-blocking.
    pub stream: TcpStream,
    /// Bytes read but not yet written back, in order.
    pending: VecDeque<u8>,
    /// The client half-closed (read returned 0): once `pending` is sent, we close too.
    eof: bool,
    /// The last read stopped because `pending` was full, not because the socket was empty. An
    /// edge-triggered server gets no new event for those bytes: it must come back by itself once
    /// `pending` has room ([`Echo::wants_read`]).
    unread: bool,
}

impl Echo {
    /// A new client; its socket is made non-blocking here.
    pub fn new(stream: TcpStream) -> io::Result<Echo> {
        stream.set_nonblocking(true)?;
        Ok(Echo {
            stream,
            pending: VecDeque::new(),
            eof: false,
            unread: false,
        })
    }

    /// Whether to watch it for readability: it has not hung up, and `pending` has room.
    pub fn wants_read(&self) -> bool {
        !self.eof && self.pending.len() < MAX_PENDING
    }

    /// Whether to watch it for writability: only while something waits to be sent (watching an
    /// idle socket for writability wakes the loop on every turn: exercise 25).
    pub fn wants_write(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether bytes were left in the socket when `pending` filled up (edge-triggered loops).
    pub fn has_unread(&self) -> bool {
        self.unread && self.wants_read()
    }

    /// The socket is readable: read until it would block (or `pending` is full), then echo what
    /// we can at once.
    pub fn on_readable(&mut self) -> State {
        let mut buf = [0u8; READ_CHUNK];
        self.unread = false;
        while self.wants_read() {
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.pending.extend(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return State::Done,
            }
        }
        if !self.eof && self.pending.len() >= MAX_PENDING {
            self.unread = true;
        }
        self.on_writable()
    }

    /// The socket is writable: write until it would block or nothing is left. A client that hung
    /// up and got everything back is done.
    pub fn on_writable(&mut self) -> State {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            match self.stream.write(front) {
                Ok(0) => return State::Done,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return State::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return State::Done,
            }
        }
        match self.eof {
            true => State::Done,
            false => State::Open,
        }
    }
}
