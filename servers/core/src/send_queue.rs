//! The outbound side of one connection: frames waiting to be written, bounded by
//! `--max-backlog`.
//!
//! Two facts of TCP shape this type:
//! - `write` may take only part of what it is given (a *short write*). That is not an error: the
//!   rest must be written later, starting exactly where the kernel stopped. The queue remembers
//!   the position inside the first frame.
//! - A peer that stops reading makes its socket's kernel buffer fill up; from then on everything
//!   sent to it piles up here. Guarantee 4 of `PROTOCOL.md` (at the root of the repository) says
//!   that pile is bounded, and guarantee 3 says a peer that keeps reading loses nothing. Both hold because of one rule.
//!
//! ## The rule: only bytes the socket refused count
//!
//! `--max-backlog` bounds the bytes the socket has *refused* (PROTOCOL.md, guarantee 4):
//! - a write attempt that leaves bytes behind (the kernel said `WouldBlock`) makes the queue
//!   *blocked*: every byte still queued, and every frame pushed while it stays blocked, counts;
//!   past the limit [`push`](SendQueue::push) refuses the frame and
//!   [`write_to`](SendQueue::write_to) fails, and the server closes that connection;
//! - a write attempt that empties the queue unblocks it: frames pushed from then on do not count
//!   until a write attempt has been made, however many there are.
//!
//! So a burst that the kernel takes at once never closes anybody, whatever its size: a member
//! that keeps reading is never cut off because its server queued a room's worth of frames before
//! its next write pass (an edge-triggered loop reading 16 frames, a writer task that has not run
//! yet). A member that has stopped reading is cut off once it has refused `max_backlog` bytes.
//! Between two write attempts the queue holds at most what the server produces in that time
//! (one request's, or one loop turn's frames), which is why every server attempts a write after
//! each request or turn (see [`executor`](crate::executor)).
//!
//! Everything queued is written with one vectored write (`writev`) when the socket allows it, so
//! the ten frames a busy room produced during one turn of an event loop leave in one system call.

use crate::outbox::Frame;
use bytes::Buf;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// The default `--max-backlog` (PROTOCOL.md, section 7): 1 MiB.
pub const DEFAULT_MAX_BACKLOG: usize = 1 << 20;

/// At most this many frames go into one `writev` (Linux accepts up to 1024 slices).
const MAX_SLICES: usize = 64;

/// The most frame slots an empty queue keeps. A burst grows the queue (a room's worth of frames
/// queued in one turn); once it is written, a queue larger than this is given back. Otherwise
/// each connection keeps the capacity of the largest burst it ever met, and over hours of
/// traffic the server's memory climbs although it holds no more connections and no more
/// frames: ten thousand idle queues, each sized for its worst moment.
const KEEP_SLOTS: usize = 8;

/// The socket refused more than `--max-backlog` bytes: the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogFull;

impl BacklogFull {
    /// Whether an error returned by [`SendQueue::write_to`] is this overflow rather than a
    /// failed socket (for logs: both end the connection).
    pub fn is_cause_of(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<BacklogFull>())
    }
}

impl std::fmt::Display for BacklogFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the socket refused more than --max-backlog bytes")
    }
}

impl std::error::Error for BacklogFull {}

impl From<BacklogFull> for io::Error {
    fn from(full: BacklogFull) -> io::Error {
        io::Error::other(full)
    }
}

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
    /// Sum of the lengths of `frames`: the connection's unsent bytes, tried or not.
    queued: usize,
    /// The last write attempt left bytes behind: the socket is refusing, so every queued byte
    /// counts against `max_backlog` until a write empties the queue (see the module docs).
    blocked: bool,
    /// `--max-backlog`: the most bytes the socket may refuse.
    max_backlog: usize,
}

impl SendQueue {
    pub fn new(max_backlog: usize) -> Self {
        SendQueue {
            frames: VecDeque::new(),
            queued: 0,
            blocked: false,
            max_backlog,
        }
    }

    /// Queues a frame after the others. Refused ([`BacklogFull`]) only while the socket is
    /// refusing and the frame would take what it refused past `--max-backlog`: then the caller
    /// closes the connection.
    pub fn push(&mut self, frame: Frame) -> Result<(), BacklogFull> {
        if self.blocked && self.queued + frame.len() > self.max_backlog {
            return Err(BacklogFull);
        }
        self.queued += frame.len();
        self.frames.push_back(frame);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Unsent bytes, whether a write was attempted or not.
    pub fn len_bytes(&self) -> usize {
        self.queued
    }

    /// The bytes that count against `--max-backlog`: everything queued while the socket is
    /// refusing, nothing while it is not (the rule of the module docs).
    pub fn refused_bytes(&self) -> usize {
        if self.blocked {
            self.queued
        } else {
            0
        }
    }

    /// Writes as much as `writer` takes, in as few calls as possible.
    ///
    /// Returns [`Flush::Pending`] when the writer answers `WouldBlock` (non-blocking sockets, or
    /// a blocking one whose write timeout expired), retries on `Interrupted`, and returns any
    /// other error (the peer is gone). When the writer refuses more than `--max-backlog` bytes,
    /// it returns an error whose cause is [`BacklogFull`]: close the connection either way.
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    if self.queued > self.max_backlog {
                        return Err(BacklogFull.into());
                    }
                    return Ok(Flush::Pending);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        self.blocked = false;
        if self.frames.capacity() > KEEP_SLOTS {
            self.frames = VecDeque::new();
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

    impl Trickle {
        fn new(chunk: usize, budget: usize) -> Self {
            Trickle {
                taken: vec![],
                chunk,
                budget,
            }
        }
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

    fn frame(len: usize) -> Frame {
        Bytes::from(vec![b'x'; len])
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
        let mut w = Trickle::new(7, 50);
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Pending);
        assert_eq!(q.len_bytes(), expected.len() - 50);
        w.budget = usize::MAX;
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        assert_eq!(w.taken, expected);
        assert!(q.is_empty());
        assert_eq!(q.len_bytes(), 0);
    }

    /// Frames queued before any write attempt do not count, however many: a burst ten times the
    /// limit is accepted, and written whole by a socket that takes it.
    #[test]
    fn untried_bytes_do_not_count() {
        let mut q = SendQueue::new(100);
        for _ in 0..10 {
            q.push(frame(100)).unwrap();
        }
        assert_eq!((q.len_bytes(), q.refused_bytes()), (1000, 0));
        let mut w = Trickle::new(usize::MAX, usize::MAX);
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        assert_eq!(w.taken.len(), 1000);
    }

    /// Once the socket refused bytes, those and every frame queued behind them count: the frame
    /// that would take them past the limit is refused.
    #[test]
    fn refused_bytes_and_those_behind_them_count() {
        let mut q = SendQueue::new(100);
        q.push(frame(80)).unwrap();
        let mut w = Trickle::new(usize::MAX, 20);
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Pending);
        assert_eq!(q.refused_bytes(), 60);
        q.push(frame(40)).unwrap();
        assert_eq!(q.push(frame(1)), Err(BacklogFull));
        assert_eq!(q.refused_bytes(), 100);
    }

    /// A write attempt that leaves more than the limit behind fails with `BacklogFull`.
    #[test]
    fn a_write_that_leaves_too_much_behind_overflows() {
        let mut q = SendQueue::new(100);
        for _ in 0..3 {
            q.push(frame(50)).unwrap();
        }
        let mut w = Trickle::new(usize::MAX, 40);
        let err = q.write_to(&mut w).unwrap_err();
        assert!(BacklogFull::is_cause_of(&err), "{err}");
        let gone = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(!BacklogFull::is_cause_of(&gone));
    }

    /// A write that empties the queue unblocks it: what comes next does not count until tried.
    #[test]
    fn emptying_the_queue_unblocks_it() {
        let mut q = SendQueue::new(100);
        q.push(frame(90)).unwrap();
        let mut w = Trickle::new(usize::MAX, 0);
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Pending);
        assert_eq!(q.push(frame(20)), Err(BacklogFull));
        w.budget = usize::MAX;
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        for _ in 0..5 {
            q.push(frame(90)).unwrap();
        }
        assert_eq!(q.refused_bytes(), 0);
    }

    /// A burst's room is given back once the burst is written, and not before: a queue that
    /// waits on the socket keeps its frames.
    #[test]
    fn an_emptied_queue_gives_back_its_burst_room() {
        let mut q = SendQueue::new(1 << 20);
        for _ in 0..100 {
            q.push(frame(10)).unwrap();
        }
        let mut w = Trickle::new(usize::MAX, 500);
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Pending);
        assert!(q.frames.capacity() >= 50, "still holding the unsent half");
        w.budget = usize::MAX;
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        assert_eq!(w.taken.len(), 1000);
        assert!(q.frames.capacity() <= KEEP_SLOTS, "{}", q.frames.capacity());

        // A small queue keeps its slots: no allocation per turn for the common case.
        for _ in 0..KEEP_SLOTS {
            q.push(frame(10)).unwrap();
        }
        let kept = q.frames.capacity();
        assert_eq!(q.write_to(&mut w).unwrap(), Flush::Done);
        assert_eq!(q.frames.capacity(), kept);
    }
}
