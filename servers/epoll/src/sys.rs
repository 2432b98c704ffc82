//! Thin, safe wrappers over epoll(7): the only `unsafe` of the readiness API.
//!
//! Unlike poll and select, epoll keeps the interest set *in the kernel*, in the epoll instance:
//! `epoll_ctl` adds, changes or removes one socket (O(log n), once per change, not per wait),
//! and each socket, when it becomes ready, puts itself on the instance's ready list. So
//! `epoll_wait` only copies out that list: O(ready), however many sockets are watched.

use chat_core::time::millis;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use libc::{epoll_event, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP};

/// Ready events taken per `epoll_wait`. More may be ready: they stay on the kernel's ready list
/// (edge-triggered ones too) and come out on the next call.
pub const MAX_EVENTS: usize = 1024;

/// An epoll instance. Dropping it closes it.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new descriptor.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just created and is owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Starts watching `fd` for `events` (`EPOLLIN`, `EPOLLOUT`, `EPOLLET`...). `token` comes
    /// back in every event for it: how we know which connection it is about.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Replaces the events watched on `fd`. (In edge-triggered mode this also re-arms: if the
    /// socket is ready right now, an event is reported.)
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Stops watching `fd`. Closing a descriptor also removes it, so only the listener, which
    /// is paused while still open, needs this.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until something is ready or `timeout` passes (`None`: forever), and replaces the
    /// contents of `events` with what is ready. EINTR leaves it empty.
    pub fn wait(&self, events: &mut Vec<epoll_event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        events.reserve(MAX_EVENTS);
        // SAFETY: the kernel writes at most `MAX_EVENTS` entries into the reserved capacity.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                millis(timeout),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(err),
            };
        }
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { events.set_len(n as usize) };
        Ok(())
    }
}
