//! The outbound side of one connection: frames waiting to be written, bounded by
//! `--max-backlog`.
//!
//! Two facts of TCP shape this type:
//! - `write` may take only part of what it is given (a *short write*). That is not an error: the
//!   rest must be written later, starting exactly where the kernel stopped. The queue remembers
//!   the position inside the first frame.
//! - A peer that stops reading makes its socket's kernel buffer fill up; from then on everything
//!   sent to it piles up here. Guarantee 4 of the spec says that pile is bounded: `push` refuses
//!   a frame that would take the backlog over the limit, and the server then closes that
//!   connection, so a stalled reader costs at most `max_backlog` bytes and never slows anyone.
//!
//! Everything queued is written with one vectored write (`writev`) when the socket allows it, so
//! the ten frames a busy room produced during one turn of an event loop leave in one system call.

use crate::outbox::Frame;
use bytes::Buf;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// The spec's default `--max-backlog`: 1 MiB.
pub const DEFAULT_MAX_BACKLOG: usize = 1 << 20;

/// At most this many frames go into one `writev` (Linux accepts up to 1024 slices).
const MAX_SLICES: usize = 64;

/// The backlog limit was reached: the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogFull;

impl std::fmt::Display for BacklogFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("outbound backlog over --max-backlog")
    }
}

impl std::error::Error for BacklogFull {}

/// How far [`SendQueue::write_to`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Done,
    /// The socket would block: the rest stays queued until it is writable again.
    Pending,
}

/// Frames not yet written to one connection.
#[derive(Debug)]
pub struct SendQueue {
    /// Frames in send order. The first one may be partly written already (`Bytes::advance`
    /// moved its start past what the kernel took).
    frames: VecDeque<Frame>,
    /// Sum of the lengths of `frames`: the connection's unsent backlog.
    queued: usize,
    /// The limit on `queued`.
    max_backlog: usize,
}

impl SendQueue {
    pub fn new(max_backlog: usize) -> Self {
        SendQueue {
            frames: VecDeque::new(),
            queued: 0,
            max_backlog,
        }
    }

    /// Queues a frame, unless that would take the backlog over the limit.
    pub fn push(&mut self, frame: Frame) -> Result<(), BacklogFull> {
        if self.queued + frame.len() > self.max_backlog {
            return Err(BacklogFull);
        }
        self.queued += frame.len();
        self.frames.push_back(frame);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Unsent bytes.
    pub fn len_bytes(&self) -> usize {
        self.queued
    }

    /// Writes as much as `writer` takes, in as few calls as possible.
    ///
    /// Returns [`Flush::Pending`] when the writer answers `WouldBlock` (non-blocking sockets),
    /// retries on `Interrupted`, and returns any other error (the peer is gone).
    pub fn write_to<W: Write>(&mut self, writer: &mut W) -> io::Result<Flush> {
        while !self.frames.is_empty() {
            // A fixed array on the stack: no allocation per write on this hot path.
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, frame) in slices.iter_mut().zip(&self.frames) {
                *slot = IoSlice::new(frame);
                count += 1;
            }
            let written = match writer.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        Ok(Flush::Done)
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.frames.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.frames.pop_front();
            } else {
                front.advance(n); // a short write: resume mid-frame next time
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A writer that takes at most `chunk` bytes per call and then blocks after `budget` bytes.
    struct Trickle {
        taken: Vec<u8>,
        chunk: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.chunk).min(self.budget);
            self.taken.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_resume_mid_frame_and_keep_order() {
        let mut q = SendQueue::new(1024);
        for i in 0..10 {
            q.push(Bytes::from(format!("frame number {i}\n"))).unwrap();
        }
        let expected: Vec<u8> = (0..10)
            .flat_map(|i| format!("frame number {i}\n").into_bytes())
            .collect();
        let mut w = Trickle {
            taken: vec![],
            chunk: 7,
            budget: 50,
        };
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Pending);
        assert_eq!(q.len_bytes(), expected.len() - 50);
        w.budget = usize::MAX;
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        assert_eq!(w.taken, expected);
        assert!(q.is_empty());
        assert_eq!(q.len_bytes(), 0);
    }

    #[test]
    fn refuses_frames_past_the_backlog_limit() {
        let mut q = SendQueue::new(10);
        q.push(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(q.push(Bytes::from_static(b"12345")), Err(BacklogFull));
        q.push(Bytes::from_static(b"1234")).unwrap();
        assert_eq!(q.len_bytes(), 10);
    }
}
