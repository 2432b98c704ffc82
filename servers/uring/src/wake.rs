//! Waking the loop from another thread: a read that stays in flight.
//!
//! chat-epoll's signal thread writes a byte into a pipe whose read end the loop watches for
//! readiness (the self-pipe trick). The completion version of the trick: the loop submits a
//! *read* on an eventfd and leaves it in flight; the signal thread writes to the eventfd, the
//! read completes, and the completion wakes the loop. The 8 bytes the read fills belong to the
//! kernel while the read is in flight, so they live in a `Box` this struct owns, at a stable
//! address, for as long as the ring does.

use crate::token::Token;
use io_uring::{opcode, squeue, types};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An eventfd and the buffer of the read the loop keeps on it.
#[derive(Debug)]
pub struct WakeFd {
    /// The eventfd (blocking: the ring waits on it for us, in the kernel).
    file: File,
    /// Where the in-flight read puts the eventfd's counter. Owned by the kernel while the read
    /// is in flight; never read by us (the completion itself is the message).
    counter: Box<u64>,
}

impl WakeFd {
    pub fn new() -> io::Result<WakeFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just created and is owned by nobody else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(WakeFd {
            file,
            counter: Box::new(0),
        })
    }

    /// A handle for another thread: each call adds 1 to the counter, which completes the read.
    pub fn waker(&self) -> io::Result<impl Fn() + Send + 'static> {
        let file = self.file.try_clone()?;
        Ok(move || {
            let _ = (&file).write(&1u64.to_ne_bytes());
        })
    }

    /// The read to keep in flight (submitted at start, and again after each completion).
    pub fn read(&mut self) -> squeue::Entry {
        let buf: *mut u64 = &mut *self.counter;
        opcode::Read::new(types::Fd(self.file.as_raw_fd()), buf.cast(), 8)
            .build()
            .user_data(Token::Wake.encode())
    }
}
