//! Thin, safe wrappers over poll(2) and select(2): the only `unsafe` of the readiness API.
//!
//! Both calls take the *whole* interest set on every call and hand it back with the answers
//! written into it, so the caller rebuilds it every turn and then scans all of it. That is
//! their cost model: O(registered descriptors) per call, however few are ready.

use chat_core::time::millis;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub use libc::{pollfd, FD_SETSIZE, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

/// Waits until one of `fds` is ready or `timeout` passes (`None`: forever). Returns how many
/// entries have a non-zero `revents`; 0 on timeout or when a signal interrupted the wait
/// (EINTR is not an error for an event loop: it just goes round again).
pub fn poll(fds: &mut [pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a valid, writable slice of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis(timeout)) };
    interrupted_is_zero(n)
}

/// A set of descriptors for select(2): a fixed bitmap of FD_SETSIZE (1024) bits.
///
/// That bitmap is select's famous limit: a descriptor numbered 1024 or above has no bit. In C,
/// `FD_SET(1500, &set)` silently writes past the end of the struct (a stack overflow that
/// glibc's fortify checks may or may not catch); `libc`'s Rust version panics instead. Either
/// way the server must never try, which is why [`FdSet::insert`] refuses.
pub struct FdSet(libc::fd_set);

impl FdSet {
    pub fn new() -> Self {
        // SAFETY: fd_set is plain bits; all-zero is the empty set (what FD_ZERO writes).
        FdSet(unsafe { std::mem::zeroed() })
    }

    /// Adds `fd`; returns false (and adds nothing) if it does not fit under FD_SETSIZE.
    pub fn insert(&mut self, fd: RawFd) -> bool {
        if !fits(fd) {
            return false;
        }
        // SAFETY: 0 <= fd < FD_SETSIZE, checked above.
        unsafe { libc::FD_SET(fd, &mut self.0) };
        true
    }

    pub fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: 0 <= fd < FD_SETSIZE, checked first.
        fits(fd) && unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// Whether select(2) can watch `fd` at all.
pub fn fits(fd: RawFd) -> bool {
    (0..FD_SETSIZE as RawFd).contains(&fd)
}

/// Waits until a descriptor of `read` is readable or one of `write` is writable, or `timeout`
/// passes. `max_fd` is the highest descriptor in either set: the kernel scans bits
/// `0..=max_fd`. On return the sets hold only the ready descriptors. EINTR returns 0.
pub fn select(
    max_fd: RawFd,
    read: &mut FdSet,
    write: &mut FdSet,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut tv = timeout.map(|t| libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    });
    let tv_ptr = tv
        .as_mut()
        .map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
    // SAFETY: the sets are valid fd_sets, the timeval pointer is valid or null.
    let n = unsafe {
        libc::select(
            max_fd + 1,
            &mut read.0,
            &mut write.0,
            std::ptr::null_mut(),
            tv_ptr,
        )
    };
    interrupted_is_zero(n)
}

fn interrupted_is_zero(n: libc::c_int) -> io::Result<usize> {
    if n >= 0 {
        return Ok(n as usize);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(err)
    }
}
