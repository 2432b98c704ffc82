//! Two small operating-system tricks every single-threaded event loop needs (they are not the
//! lesson of any one server).
//!
//! - [`WakePipe`], the *self-pipe trick*: the loop sleeps in poll/select/epoll_wait, and only a
//!   file descriptor becoming ready wakes it. To wake it from elsewhere (the signal thread on
//!   SIGTERM), write a byte into a pipe whose read end the loop watches.
//! - [`SpareFd`]: what to do when `accept` fails with EMFILE (no descriptor left for the new
//!   socket). The pending connection stays in the listen backlog, so the listener stays readable
//!   and a level-triggered loop would wake, fail and wake again: a core at 100% doing nothing.
//!   Keeping one descriptor in reserve lets us close it, accept the connection, tell the client
//!   `server_full`, close it, and take the reserve back.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The two ends of a non-blocking pipe used to wake the event loop.
#[derive(Debug)]
pub struct WakePipe {
    /// Watched by the loop for readability.
    reader: File,
    /// Written (one byte) by whoever wants the loop to wake up.
    writer: File,
}

impl WakePipe {
    pub fn new() -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two new descriptors into the array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(WakePipe {
            reader: File::from(reader),
            writer: File::from(writer),
        })
    }

    /// The descriptor the loop watches.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// A handle for another thread: each call writes one byte and wakes the loop. A full pipe
    /// (`WouldBlock`) already holds a pending wake-up, so errors are ignored.
    pub fn waker(&self) -> io::Result<impl Fn() + Send + 'static> {
        let writer = self.writer.try_clone()?;
        Ok(move || {
            let _ = (&writer).write(&[1]);
        })
    }

    /// Empties the pipe, so that a level-triggered loop does not wake again for the same bytes
    /// (and an edge-triggered one can see the next write as a new edge).
    pub fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
    }
}

/// One descriptor held in reserve for the EMFILE case (see the module docs).
#[derive(Debug)]
pub struct SpareFd {
    /// `/dev/null`, opened at start; `None` while it is lent out or if it could not be reopened.
    spare: Option<File>,
}

impl SpareFd {
    pub fn new() -> io::Result<Self> {
        Ok(SpareFd {
            spare: Some(File::open("/dev/null")?),
        })
    }

    /// Frees the reserve, accepts one pending connection with it, writes `farewell` to it (best
    /// effort: one non-blocking write), closes it, and takes the reserve back. Returns whether a
    /// connection was refused; `false` means there is no reserve or the accept failed anyway
    /// (ENFILE: the whole system is out), and the caller must back off instead of retrying.
    pub fn refuse_one(&mut self, listener: &TcpListener, farewell: &[u8]) -> bool {
        let Some(spare) = self.spare.take() else {
            // Lost on an earlier turn: maybe a descriptor has been freed since.
            self.spare = File::open("/dev/null").ok();
            return false;
        };
        drop(spare);
        let refused = match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(true);
                let _ = (&stream).write(farewell);
                true
            } // `stream` is closed here, before we reopen the reserve in its slot
            Err(_) => false,
        };
        self.spare = File::open("/dev/null").ok();
        refused
    }
}
