//! One connection's output, in a completion model: frames waiting, and the write the kernel is
//! doing now.
//!
//! chat-epoll's `SendQueue` calls `writev` itself: the kernel copies what fits into the socket
//! and returns at once, so when the call returns the queue may drop what was written. Here we
//! *submit* a write and carry on; the kernel reads our bytes later, whenever the socket has room,
//! and says how many it took in the completion. Until that completion arrives, **the bytes and
//! the `iovec` array pointing at them belong to the kernel**: freeing or changing them would
//! send garbage (or nothing) to the client. So the queue has two parts:
//!
//! ```text
//!   in_flight: [frame 1][frame 2][frame 3]      owned by the kernel until the completion
//!   waiting:   [frame 4][frame 5]               ours: the next write, once this one is done
//! ```
//!
//! One write at a time per connection: two writes in flight on one socket could interleave if
//! the first were short. A frame is a `Bytes` (a reference-counted slice), so keeping it alive
//! costs a pointer and a count, and a broadcast shared by a whole room stays one allocation.
//!
//! **Short writes.** The completion may say the kernel took fewer bytes than we gave it (the
//! socket's send buffer filled up). The rest goes back to the *front* of `waiting`, mid-frame,
//! and is written next, before any newer frame.
//!
//! **The backlog rule** (PROTOCOL.md, guarantee 4, as amended by the "Backlog" rule of v1.1:
//! `--max-backlog` bounds the bytes the socket has *refused*; bytes queued but not yet tried do
//! not count, and a member whose socket keeps accepting data is never closed for overflow).
//! What does "refused" mean when we never see a refusal, only a completion that has not come?
//!
//! - A write the kernel could do at once completes at once: during the `io_uring_enter` that
//!   submitted it, before the loop takes the next batch of completions. The loop handles write
//!   completions first in each batch (`Server::dispatch`), so while it queues new frames, a
//!   write still in flight is one the socket had no room for: the kernel is waiting for the
//!   client to read.
//! - So the bytes that count are those queued **behind a write still in flight**: the socket
//!   is refusing them. Frames queued while nothing is in flight have not been tried (they leave
//!   at the end of this turn), and neither have the bytes of the in-flight write itself (the
//!   kernel is still trying them). [`Outgoing::push`] refuses a frame only when a write is in
//!   flight and the bytes waiting behind it would pass the limit.
//!
//! A reader that keeps reading therefore never overflows, however large the burst. Memory per
//! connection stays bounded: at most `max_backlog` waiting behind a write, plus one write of at
//! most [`MAX_SLICES`] frames, plus what one turn queued before the first write.

use chat_core::{BacklogFull, Frame};
use std::collections::VecDeque;

/// At most this many frames in one write (the iovec array the kernel reads).
pub const MAX_SLICES: usize = 64;

/// The output of one connection. See the module docs.
#[derive(Debug)]
pub struct Outgoing {
    /// Frames not yet handed to the kernel, in send order. The first may be the unsent rest of
    /// a frame that a short write cut.
    waiting: VecDeque<Frame>,
    /// Sum of the lengths of `waiting`.
    waiting_bytes: usize,
    /// The frames of the write in flight. The kernel reads them until the write completes, so
    /// they are kept alive here until then; empty when no write is in flight.
    in_flight: Vec<Frame>,
    /// The `iovec` array of the write in flight, pointing into `in_flight`. Its heap buffer does
    /// not move while the write is in flight (we only rebuild it between writes).
    iovecs: Vec<libc::iovec>,
    /// The limit on `waiting_bytes` while a write is in flight.
    max_backlog: usize,
}

impl Outgoing {
    pub fn new(max_backlog: usize) -> Outgoing {
        Outgoing {
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            in_flight: Vec::new(),
            iovecs: Vec::new(),
            max_backlog,
        }
    }

    /// Queues a frame after everything else; refuses it when the socket is refusing data and
    /// this frame would take the bytes waiting behind the write in flight over the limit.
    pub fn push(&mut self, frame: Frame) -> Result<(), BacklogFull> {
        if self.is_writing() && self.waiting_bytes + frame.len() > self.max_backlog {
            return Err(BacklogFull);
        }
        self.waiting_bytes += frame.len();
        self.waiting.push_back(frame);
        Ok(())
    }

    /// Whether a write is in flight (its completion has not come yet).
    pub fn is_writing(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Whether nothing is waiting and nothing is in flight: everything was written.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// Whether a write could start now: frames are waiting and none is in flight.
    pub fn has_work(&self) -> bool {
        !self.is_writing() && !self.waiting.is_empty()
    }

    /// Moves up to [`MAX_SLICES`] waiting frames into a new write and returns its `iovec`
    /// array (pointer and count) for the submission, or `None` if there is nothing to write or
    /// a write is already in flight. From here until [`Outgoing::complete`], the kernel owns the
    /// frames and the array.
    pub fn start_write(&mut self) -> Option<(*const libc::iovec, u32)> {
        if !self.has_work() {
            return None;
        }
        while self.in_flight.len() < MAX_SLICES {
            let Some(frame) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_bytes -= frame.len();
            self.in_flight.push(frame);
        }
        self.iovecs.clear();
        self.iovecs
            .extend(self.in_flight.iter().map(|frame| libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            }));
        Some((self.iovecs.as_ptr(), self.iovecs.len() as u32))
    }

    /// The write in flight completed having taken `written` bytes. A short write puts the rest
    /// back at the front of `waiting`, starting exactly where the kernel stopped. Returns
    /// whether it was short.
    pub fn complete(&mut self, mut written: usize) -> bool {
        let mut rest: Vec<Frame> = Vec::new();
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
        let short = !rest.is_empty();
        for frame in rest.into_iter().rev() {
            self.waiting_bytes += frame.len();
            self.waiting.push_front(frame);
        }
        short
    }

    /// The write in flight was cancelled or failed: the connection is going away, and its
    /// frames are dropped with it.
    pub fn abandon(&mut self) {
        self.in_flight.clear();
        self.waiting.clear();
        self.waiting_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Frame {
        Frame::copy_from_slice(text.as_bytes())
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
        assert!(out.complete(8), "8 of 12 bytes is a short write");
        let (iov, count) = out.start_write().expect("the rest");
        assert_eq!(iovec_bytes(iov, count), b"rld\nlater\n");
        assert!(!out.complete(10));
        assert!(out.is_idle());
    }

    #[test]
    fn only_bytes_behind_a_write_in_flight_count_against_the_backlog() {
        let mut out = Outgoing::new(10);
        // Nothing in flight: a burst far over the limit is only queued, not tried yet.
        for _ in 0..5 {
            out.push(frame("0123456789")).unwrap();
        }
        out.start_write().expect("a write");
        // Now the socket has not taken the write: what queues behind it counts.
        out.push(frame("012345")).unwrap();
        assert_eq!(out.push(frame("01234")), Err(BacklogFull));
        out.push(frame("0123")).unwrap();
        // The kernel took everything: nothing in flight, nothing counts again.
        assert!(!out.complete(50));
        out.push(frame("0123456789")).unwrap();
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
