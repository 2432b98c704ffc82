//! # epoll-echo: the echo server of exercise 6 again, on edge-triggered epoll
//!
//! The model answer to exercise 30 ("`epoll` by hand", lesson 05). It serves exactly what
//! `select-echo` serves; diff the two `main.rs` and what remains is the I/O model:
//!
//! - the interest set lives **in the kernel**: each client is added once (`epoll_ctl`), for
//!   reading and writing, with `EPOLLET`, and never touched again until it is closed;
//! - **edge-triggered** means an event comes when a socket *becomes* ready, not while it *is*
//!   ready. So on each event we read until `EAGAIN` and write until `EAGAIN` or done
//!   ([`Echo::on_readable`] does both): bytes left in the socket would get no second event. The
//!   one exception is our own backpressure: when a client's pending bytes are full we stop
//!   reading, and come back to it by ourselves ([`Echo::has_unread`]) once it has taken some;
//! - `epoll_wait` returns only the ready sockets: no scan of every client per turn.
//!
//! ```text
//! cargo run -p exercises --bin epoll-echo -- --addr 127.0.0.1:8888
//! lessons/exercises/30-epoll-echo/check lessons/exercises/30-epoll-echo/solution
//! ```

use clap::Parser;
use exercises::echo::{keep_accepting, Echo, State};
use exercises::{exit_with, listen, ServerFlags};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

/// The token of the listener in `epoll_event.u64` (clients use their descriptor).
const LISTENER: u64 = u64::MAX;

/// Events one `epoll_wait` may return.
const MAX_EVENTS: usize = 256;

fn main() -> ExitCode {
    exit_with("epoll-echo", run(ServerFlags::parse()))
}

fn run(flags: ServerFlags) -> io::Result<()> {
    // Every client is a descriptor, and the usual soft limit (1024) is low.
    chat_core::net::raise_fd_limit()?;
    let listener = listen(flags.addr)?;
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    // The listener is level-triggered: a client left in the backlog (we ran out of descriptors)
    // is reported again on the next turn.
    epoll.add(listener.as_raw_fd(), libc::EPOLLIN as u32, LISTENER)?;
    let mut clients: HashMap<RawFd, Echo> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    loop {
        let ready = match epoll.wait(&mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for event in &events[..ready] {
            let (flags, token) = (event.events, event.u64);
            if token == LISTENER {
                accept_all(&listener, &epoll, &mut clients);
                continue;
            }
            let fd = token as RawFd;
            let Some(client) = clients.get_mut(&fd) else {
                continue; // closed earlier in this turn
            };
            let mut state = State::Open;
            if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                state = client.on_readable();
            } else if flags & libc::EPOLLOUT as u32 != 0 {
                state = client.on_writable();
            }
            // Our own backpressure stopped a read with bytes left in the socket: no edge will
            // tell us again, so read them now that the writes made room.
            while state == State::Open && client.has_unread() {
                state = client.on_readable();
            }
            if state == State::Done {
                // Closing the descriptor removes it from the epoll set (it is the only one).
                clients.remove(&fd);
            }
        }
    }
}

/// Accepts every waiting client and adds it to the set, edge-triggered, for both directions.
fn accept_all(listener: &TcpListener, epoll: &Epoll, clients: &mut HashMap<RawFd, Echo>) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let fd = stream.as_raw_fd();
                let interest = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32;
                let added = Echo::new(stream).and_then(|client| {
                    epoll.add(fd, interest, fd as u64)?;
                    Ok(client)
                });
                match added {
                    Ok(client) => {
                        clients.insert(fd, client);
                    }
                    Err(e) => eprintln!("epoll-echo: {peer}: {e}"),
                }
            }
            Err(e) => {
                if !keep_accepting("epoll-echo", &e) {
                    return;
                }
            }
        }
    }
}

/// An epoll instance.
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes flags only and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// `epoll_ctl(ADD)`: watch `fd` for `events`, reported with `token`.
    fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` lives across the call; the kernel copies it.
        let r =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        match r {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        }
    }

    /// `epoll_wait` with no timeout; returns how many entries of `events` it filled.
    fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel writes at most `max` events into the slice.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, -1) };
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }
}
