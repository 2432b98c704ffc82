//! One connection's outbound side in a completion model: frames waiting, and the write the
//! kernel is doing now. chat-core's [`SendQueue`](chat_core::SendQueue) for a socket we never
//! write to ourselves: the same names for the same ideas, and the same backlog rule.
//!
//! `SendQueue::write_to` calls `writev` itself: the kernel copies what fits into the socket and
//! returns at once, so when the call returns the queue may drop what was written. Here we
//! *submit* a write and carry on; the kernel reads our bytes later, whenever the socket has
//! room, and says how many it took in the completion. Until that completion arrives, **the bytes
//! and the `iovec` array pointing at them belong to the kernel**: freeing or changing them would
//! send garbage (or nothing) to the client. So the queue has two parts:
//!
//! ```text
//!   in_flight: [frame 1][frame 2][frame 3]      owned by the kernel until the completion
//!   frames:    [frame 4][frame 5]               ours: the next write, once this one is done
//! ```
//!
//! One write at a time per connection: two writes in flight on one socket could interleave if
//! the first were short. A frame is a `Bytes` (a reference-counted slice), so keeping it alive
//! costs a pointer and a count, and a broadcast shared by a whole room stays one allocation.
//!
//! **Short writes.** The completion may say the kernel took fewer bytes than we gave it (the
//! socket's send buffer filled up). The rest goes back to the *front* of `frames`, mid-frame,
//! and is written next, before any newer frame.
//!
//! ## The rule: only bytes the socket refused count
//!
//! `--max-backlog` bounds the bytes the socket has *refused* (PROTOCOL.md, guarantee 4), as in
//! `SendQueue`. With `writev` a refusal is an answer, `EAGAIN`, and `SendQueue` counts what is
//! queued from then on. With io_uring there is no answer, only a write whose completion has not
//! come: in a completion model, **the refused bytes are those queued behind a write the kernel
//! has not completed**.
//!
//! - A write the socket can take completes at once, inside the `io_uring_enter` that submitted
//!   it. The loop submits writes last in its turn and handles write completions first in the
//!   next (`Server::dispatch`), so whenever frames are queued, a write still in flight is one
//!   the kernel tried and the socket had no room for: it is waiting for the client to read.
//!   That write is the socket's `EAGAIN`, and [`is_writing`](Outgoing::is_writing) plays
//!   `SendQueue`'s `blocked`.
//! - So the bytes that count are those queued **behind a write still in flight**:
//!   [`push`](Outgoing::push) refuses the frame that would take them past the limit. Frames
//!   queued while nothing is in flight have not been tried (they leave at the end of this turn),
//!   and the write in flight is the kernel's, not a backlog (at most [`MAX_SLICES`] frames).
//!
//! A short write is not a refusal of its own: the kernel took what the socket had room for, and
//! the rest is submitted again at the end of the turn; if the socket still has no room, that
//! write stays in flight and what queues behind it counts. So a member that keeps reading is
//! never cut off, however large a burst; a member that stopped reading is cut off once
//! `max_backlog` bytes have queued behind its stuck write. Memory per connection stays bounded:
//! one write in flight, plus at most `max_backlog` behind it, plus what one turn queued before
//! the write was submitted.

use chat_core::{BacklogFull, Flush, Frame};
use std::collections::VecDeque;

/// At most this many frames in one write (the iovec array the kernel reads).
pub const MAX_SLICES: usize = 64;

/// The frames not yet taken by the kernel for one connection. See the module docs.
#[derive(Debug)]
pub struct Outgoing {
    /// Frames not yet handed to the kernel, in send order. The first may be the unsent rest of
    /// a frame that a short write cut.
    frames: VecDeque<Frame>,
    /// Sum of the lengths of `frames`: the bytes that count against `max_backlog` while a write
    /// is in flight.
    queued: usize,
    /// The frames of the write in flight. The kernel reads them until the write completes, so
    /// they are kept alive here until then; empty when no write is in flight.
    in_flight: Vec<Frame>,
    /// The `iovec` array of the write in flight, pointing into `in_flight`. Its heap buffer does
    /// not move while the write is in flight (it is rebuilt only between writes).
    iovecs: Vec<libc::iovec>,
    /// `--max-backlog`: the most bytes the socket may refuse.
    max_backlog: usize,
}

impl Outgoing {
    pub fn new(max_backlog: usize) -> Outgoing {
        Outgoing {
            frames: VecDeque::new(),
            queued: 0,
            in_flight: Vec::new(),
            iovecs: Vec::new(),
            max_backlog,
        }
    }

    /// Queues a frame after the others. Refused ([`BacklogFull`]) only while a write is in
    /// flight (the socket is refusing) and the frame would take the bytes queued behind it past
    /// `--max-backlog`: then the caller closes the connection.
    pub fn push(&mut self, frame: Frame) -> Result<(), BacklogFull> {
        if self.is_writing() && self.queued + frame.len() > self.max_backlog {
            return Err(BacklogFull);
        }
        self.queued += frame.len();
        self.frames.push_back(frame);
        Ok(())
    }

    /// Whether nothing is queued and nothing is in flight: everything was written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.in_flight.is_empty()
    }

    /// Whether a write is in flight (its completion has not come yet): when frames are queued,
    /// the socket is refusing (see the module docs).
    pub fn is_writing(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Moves up to [`MAX_SLICES`] queued frames into a new write and returns its `iovec` array
    /// (pointer and count) for the submission, or `None` if there is nothing to write or a write
    /// is already in flight. From here until [`Outgoing::complete`] (or
    /// [`Outgoing::abandon`]), the kernel owns the frames and the array.
    pub fn start_write(&mut self) -> Option<(*const libc::iovec, u32)> {
        if self.is_writing() || self.frames.is_empty() {
            return None;
        }
        let count = self.frames.len().min(MAX_SLICES);
        self.in_flight.extend(self.frames.drain(..count));
        self.queued -= self
            .in_flight
            .iter()
            .map(|frame| frame.len())
            .sum::<usize>();
        self.iovecs.clear();
        self.iovecs
            .extend(self.in_flight.iter().map(|frame| libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            }));
        Some((self.iovecs.as_ptr(), self.iovecs.len() as u32))
    }

    /// The write in flight completed, the kernel having taken `written` bytes: they are dropped,
    /// and the frames are ours again. [`Flush::Done`]: it took the whole write (frames queued
    /// meanwhile go in the next one). [`Flush::Pending`]: a short write; the rest is back at the
    /// front of the queue, starting exactly where the kernel stopped, and goes first in the
    /// next write.
    pub fn complete(&mut self, mut written: usize) -> Flush {
        let mut rest = Vec::new();
        for mut frame in self.in_flight.drain(..) {
            if written >= frame.len() {
                written -= frame.len();
            } else {
                // The kernel stopped inside this frame (or before it): keep what it did not take.
                let _ = frame.split_to(written);
                written = 0;
                rest.push(frame);
            }
        }
        if rest.is_empty() {
            return Flush::Done;
        }
        for frame in rest.into_iter().rev() {
            self.queued += frame.len();
            self.frames.push_front(frame);
        }
        Flush::Pending
    }

    /// The write in flight was cancelled or failed: the connection is going away, and its
    /// frames are dropped with it.
    pub fn abandon(&mut self) {
        self.in_flight.clear();
        self.frames.clear();
        self.queued = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Frame {
        Frame::copy_from_slice(text.as_bytes())
    }

    fn bytes(len: usize) -> Frame {
        Frame::from(vec![b'x'; len])
    }

    /// What a write would send: the bytes its iovecs point at.
    fn iovec_bytes(iov: *const libc::iovec, count: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..count as usize {
            // SAFETY: `start_write` returned `count` iovecs into frames we still own.
            unsafe {
                let v = &*iov.add(i);
                out.extend_from_slice(std::slice::from_raw_parts(
                    v.iov_base as *const u8,
                    v.iov_len,
                ));
            }
        }
        out
    }

    #[test]
    fn a_short_write_resumes_mid_frame_before_newer_frames() {
        let mut out = Outgoing::new(1024);
        out.push(frame("hello\n")).unwrap();
        out.push(frame("world\n")).unwrap();
        let (iov, count) = out.start_write().expect("something to write");
        assert_eq!(iovec_bytes(iov, count), b"hello\nworld\n");
        assert!(out.start_write().is_none(), "one write at a time");
        out.push(frame("later\n")).unwrap();
        assert_eq!(
            out.complete(8),
            Flush::Pending,
            "8 of 12 bytes is a short write"
        );
        let (iov, count) = out.start_write().expect("the rest");
        assert_eq!(iovec_bytes(iov, count), b"rld\nlater\n");
        assert_eq!(out.complete(10), Flush::Done);
        assert!(out.is_empty());
    }

    /// Frames queued while nothing is in flight have not been tried: a burst ten times the
    /// limit is accepted, and leaves in writes of its own.
    #[test]
    fn untried_bytes_do_not_count() {
        let mut out = Outgoing::new(100);
        for _ in 0..10 {
            out.push(bytes(100)).unwrap();
        }
        out.start_write().expect("a write");
        assert_eq!(out.complete(1000), Flush::Done);
        assert!(out.is_empty());
    }

    /// A write still in flight when frames are queued was refused: the bytes queued behind it
    /// count, and the frame that would take them past the limit is refused. The write itself is
    /// the kernel's.
    #[test]
    fn bytes_behind_a_write_in_flight_count() {
        let mut out = Outgoing::new(100);
        out.push(bytes(500)).unwrap();
        out.start_write().expect("a write");
        // The write in flight is not a backlog: 100 bytes fit behind it, not 101.
        out.push(bytes(60)).unwrap();
        out.push(bytes(40)).unwrap();
        assert_eq!(out.push(bytes(1)), Err(BacklogFull));
        // The kernel took it all: nothing is in flight, nothing counts until the next write.
        assert_eq!(out.complete(500), Flush::Done);
        for _ in 0..5 {
            out.push(bytes(100)).unwrap();
        }
    }

    /// The rest of a short write goes out again first; while that write is in flight, what
    /// queues behind it counts.
    #[test]
    fn the_rest_of_a_short_write_is_written_again_first() {
        let mut out = Outgoing::new(100);
        out.push(bytes(90)).unwrap();
        out.start_write().expect("a write");
        assert_eq!(out.complete(30), Flush::Pending);
        out.push(bytes(200)).unwrap(); // nothing in flight: not tried yet, does not count
        out.push(frame("next")).unwrap();
        let (iov, count) = out.start_write().expect("the rest");
        assert_eq!(
            iovec_bytes(iov, count).len(),
            264,
            "the 60 left first, then the rest"
        );
        out.push(bytes(100)).unwrap();
        assert_eq!(out.push(bytes(1)), Err(BacklogFull));
    }

    #[test]
    fn at_most_max_slices_frames_per_write() {
        let mut out = Outgoing::new(1 << 20);
        for i in 0..(MAX_SLICES + 3) {
            out.push(frame(&format!("{i}\n"))).unwrap();
        }
        let (_, count) = out.start_write().expect("a write");
        assert_eq!(count as usize, MAX_SLICES);
    }
}
