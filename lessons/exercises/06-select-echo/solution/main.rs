//! # select-echo: an echo server on one thread and select(2)
//!
//! The model answer to exercise 6, the source course's 练习2 ("用 select 实现回显服务器"): every
//! byte a client sends comes back to that client, in order, and many clients are served at once
//! by one thread that sleeps in `select(2)` until some socket is ready.
//!
//! ```text
//! cargo run -p exercises --bin select-echo -- --addr 127.0.0.1:8888   # listening on 127.0.0.1:8888
//! nc 127.0.0.1 8888                                                     # type; each line comes back
//! lessons/exercises/06-select-echo/check lessons/exercises/06-select-echo/solution
//! ```
//!
//! One turn of the loop:
//! 1. build two `fd_set`s from scratch (select forgets them on every call, and overwrites them
//!    with its answer): the listener and every client that [`Echo::wants_read`] for reading, the
//!    clients with unsent bytes for writing;
//! 2. `select` sleeps until one of them is ready;
//! 3. the listener: accept every waiting client; a client whose descriptor does not fit in an
//!    `fd_set` (FD_SETSIZE, 1024) is closed at once, because `FD_SET` on it would write past
//!    the end of the set;
//! 4. each ready client: read what it sent and write it back ([`Echo::on_readable`]), or write
//!    what is still pending ([`Echo::on_writable`]): the partial writes of lesson 04.
//!
//! Compare it with `30-epoll-echo/solution/main.rs`, the same server on edge-triggered epoll.

use clap::Parser;
use exercises::echo::{keep_accepting, Echo, State};
use exercises::{exit_with, listen, ServerFlags};
use std::collections::BTreeMap;
use std::io::{self, ErrorKind};
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;

fn main() -> ExitCode {
    exit_with("select-echo", run(ServerFlags::parse()))
}

fn run(flags: ServerFlags) -> io::Result<()> {
    // Every client is a descriptor, and the usual soft limit (1024) is low.
    chat_core::net::raise_fd_limit()?;
    let listener = listen(flags.addr)?;
    listener.set_nonblocking(true)?;
    // Ordered by descriptor, so a turn serves clients in a stable order.
    let mut clients: BTreeMap<RawFd, Echo> = BTreeMap::new();
    loop {
        // 1. The interest set, rebuilt on every turn.
        let mut readable = FdSet::new();
        let mut writable = FdSet::new();
        readable.insert(listener.as_raw_fd());
        for (&fd, client) in &clients {
            if client.wants_read() {
                readable.insert(fd);
            }
            if client.wants_write() {
                writable.insert(fd);
            }
        }
        // 2. Sleep until something is ready (no timeout: an echo server has no timers).
        if let Err(e) = select(&mut readable, &mut writable) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // 3. New clients.
        if readable.contains(listener.as_raw_fd()) {
            accept_all(&listener, &mut clients);
        }
        // 4. Ready clients; the ones that are done are closed (dropping the stream closes it).
        clients.retain(|&fd, client| {
            let mut state = State::Open;
            if readable.contains(fd) {
                state = client.on_readable();
            }
            if state == State::Open && writable.contains(fd) {
                state = client.on_writable();
            }
            state == State::Open
        });
    }
}

/// Accepts every client waiting in the backlog. One that does not fit in an `fd_set` is refused
/// (closed at once): select cannot watch it.
fn accept_all(listener: &TcpListener, clients: &mut BTreeMap<RawFd, Echo>) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let fd = stream.as_raw_fd();
                if !fits(fd) {
                    eprintln!("select-echo: refusing {peer}: descriptor {fd} >= FD_SETSIZE");
                    continue; // `stream` is dropped: closed
                }
                match Echo::new(stream) {
                    Ok(client) => {
                        clients.insert(fd, client);
                    }
                    Err(e) => eprintln!("select-echo: {peer}: {e}"),
                }
            }
            Err(e) => {
                if !keep_accepting("select-echo", &e) {
                    return;
                }
            }
        }
    }
}

/// Whether `fd` can go into an `fd_set`.
fn fits(fd: RawFd) -> bool {
    usize::try_from(fd).is_ok_and(|fd| fd < libc::FD_SETSIZE)
}

/// An `fd_set`: a bitmap of FD_SETSIZE bits, one per descriptor number.
struct FdSet {
    set: libc::fd_set,
    /// The highest descriptor inserted: select wants it plus one.
    max: RawFd,
}

impl FdSet {
    fn new() -> FdSet {
        let mut set = MaybeUninit::<libc::fd_set>::uninit();
        // SAFETY: FD_ZERO initialises the whole set.
        let set = unsafe {
            libc::FD_ZERO(set.as_mut_ptr());
            set.assume_init()
        };
        FdSet { set, max: -1 }
    }

    /// Adds `fd`, which must [`fits`] (checked: writing past the set is the classic select bug).
    fn insert(&mut self, fd: RawFd) {
        assert!(fits(fd), "descriptor {fd} does not fit in an fd_set");
        // SAFETY: `fd` is below FD_SETSIZE, so the bit is inside the set.
        unsafe { libc::FD_SET(fd, &mut self.set) };
        self.max = self.max.max(fd);
    }

    fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: FD_ISSET only reads the set, and `fd` is checked to be inside it.
        fits(fd) && unsafe { libc::FD_ISSET(fd, &self.set) }
    }
}

/// select(2) with no timeout; on return each set holds only its ready descriptors.
fn select(readable: &mut FdSet, writable: &mut FdSet) -> io::Result<()> {
    let nfds = readable.max.max(writable.max) + 1;
    // SAFETY: both sets are initialised fd_sets that live across the call; no exception set,
    // no timeout (a null pointer: wait for ever).
    let n = unsafe {
        libc::select(
            nfds,
            &mut readable.set,
            &mut writable.set,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    match n {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}
