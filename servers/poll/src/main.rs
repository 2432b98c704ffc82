//! # chat-poll: one thread, every socket, poll(2) or select(2)
//!
//! The first server of the course that serves thousands of clients with **one thread**. Every
//! socket is non-blocking; the thread sleeps in one system call that watches *all* of them, and
//! for each ready socket does only what can be done without waiting. The loop, its callbacks
//! and the per-connection state are `chat-readiness` (shared with chat-epoll); this file is the
//! one thing that makes it chat-poll: [`Poll`], an implementation of the `Readiness` trait with
//! poll(2) and select(2). `diff` it with chat-epoll's `main.rs`: what differs is the I/O model.
//!
//! ## What poll and select cost: O(n) per wait
//! They are stateless: the kernel remembers nothing between two calls. So the interest set
//! lives here, in [`Poll::interest`], and every wait copies *all* of it into the kernel, which
//! checks every socket (and hooks itself onto each one's wait queue, then unhooks), and then we
//! scan every answer to find the ready few. The `Readiness` trait's docs compare that with
//! epoll call by call; lesson 04 measures it.
//!
//! `select` is poll with a worse interface. Its set is a bitmap (`fd_set`) of FD_SETSIZE = 1024
//! bits, so it cannot watch descriptor 1024 or above *at all*, and a server with 1,100
//! connections has such descriptors. With `--backend select` those connections get
//! `server_full` and are closed ([`Poll::refuse_fd`](Readiness::refuse_fd)); they are never
//! written into an `fd_set` (in C, `FD_SET(1500, &set)` writes past the end of the struct).
//!
//! ## Run it, poke it, watch it
//! ```text
//! cargo run -p chat-poll -- --addr 127.0.0.1:8888                  # or --backend select
//! nc 127.0.0.1 8888
//! {"type":"join","nickname":"ada"}
//! ```
//! - `strace -e trace=poll -p $(pgrep chat-poll)`: each call shows its whole array; watch it
//!   grow with every client you connect.
//! - `strace -f -c -p $(pgrep chat-poll)`, then Ctrl-C: the system calls, to compare with
//!   chat-epoll under the same load (lessons 04 and 05 do).
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | the interest set, poll and select: the readiness API (what differs from chat-epoll) |
//! | `sys.rs` | the `unsafe` calls: poll(2), select(2) and `fd_set` |
//! | chat-readiness | the loop, the callbacks, the peers (shared with chat-epoll) |

mod sys;

use chat_core::net;
use chat_readiness::{Interest, LoopArgs, Readiness, Ready, Token, Trigger};
use clap::Parser;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::time::Duration;
use sys::{FdSet, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

/// A chat server on one thread, with poll(2) or select(2).
#[derive(Parser, Debug)]
#[command(name = "chat-poll", version)]
struct Args {
    #[command(flatten)]
    common: LoopArgs,

    /// The readiness system call: poll(2), or select(2) with its 1024-descriptor limit.
    #[arg(long, value_enum, default_value_t = Backend::Poll)]
    backend: Backend,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    tracing::info!("readiness: {:?}", args.backend);
    chat_readiness::serve(args.common, Poll::new(args.backend))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Poll,
    Select,
}

// ---- the readiness API: poll(2) and select(2) -------------------------------------------------

/// The interest set, kept in our process and handed whole to the kernel on every wait.
struct Poll {
    /// Which of the two system calls.
    backend: Backend,
    /// What is watched, by token. Ordered, so the array goes to the kernel as listener, wake
    /// pipe, then the peers in the order they connected.
    interest: BTreeMap<Token, (RawFd, Interest)>,
    /// The array poll(2) takes, rebuilt from `interest` on every wait (it writes its answers
    /// into it).
    pollfds: Vec<sys::pollfd>,
    /// Who each entry is for: `pollfds[i]` watches `tokens[i]`.
    tokens: Vec<Token>,
}

impl Readiness for Poll {
    /// poll and select report a socket on every call for as long as it is ready.
    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    /// An entry in our table; the kernel hears about it on the next wait.
    fn watch(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.interest.insert(token, (fd, interest));
        Ok(())
    }

    fn set_interest(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.watch(fd, token, interest)
    }

    fn unwatch(&mut self, _fd: RawFd, token: Token) -> io::Result<()> {
        self.forget(token);
        Ok(())
    }

    fn forget(&mut self, token: Token) {
        self.interest.remove(&token);
    }

    /// The whole set goes in, the whole set comes out, and we scan all of it.
    fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.build_pollfds();
        match self.backend {
            Backend::Poll => self.wait_poll(timeout, ready),
            Backend::Select => self.wait_select(timeout, ready),
        }
    }

    /// select(2) cannot watch a descriptor at or above FD_SETSIZE.
    fn refuse_fd(&self, fd: RawFd) -> Option<String> {
        (self.backend == Backend::Select && !sys::fits(fd)).then(|| {
            format!(
                "select() cannot watch descriptor {fd} (FD_SETSIZE is {}); try --backend poll",
                sys::FD_SETSIZE
            )
        })
    }
}

impl Poll {
    fn new(backend: Backend) -> Self {
        Poll {
            backend,
            interest: BTreeMap::new(),
            pollfds: Vec::new(),
            tokens: Vec::new(),
        }
    }

    /// The whole interest set as poll(2)'s array, from scratch: the kernel kept nothing.
    fn build_pollfds(&mut self) {
        self.pollfds.clear();
        self.tokens.clear();
        for (&token, &(fd, interest)) in &self.interest {
            let mut events = 0;
            if interest.read {
                events |= POLLIN;
            }
            if interest.write {
                events |= POLLOUT;
            }
            self.pollfds.push(sys::pollfd {
                fd,
                events,
                revents: 0,
            });
            self.tokens.push(token);
        }
    }

    fn wait_poll(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        // The kernel walks all n entries...
        if sys::poll(&mut self.pollfds, timeout)? == 0 {
            return Ok(());
        }
        // ...and so do we, to find the few that are ready.
        for (pollfd, &token) in self.pollfds.iter().zip(&self.tokens) {
            if pollfd.revents != 0 {
                ready.push(Ready {
                    token,
                    readable: pollfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL) != 0,
                    writable: pollfd.revents & POLLOUT != 0,
                    read_closed: pollfd.revents & POLLHUP != 0,
                });
            }
        }
        Ok(())
    }

    fn wait_select(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        // The same interest set, as two bitmaps. Every descriptor here is below FD_SETSIZE:
        // `refuse_fd` turned the others away when they connected.
        let (mut readable, mut writable) = (FdSet::new(), FdSet::new());
        let mut max_fd = 0;
        for pollfd in &self.pollfds {
            if pollfd.events & POLLIN != 0 {
                readable.insert(pollfd.fd);
            }
            if pollfd.events & POLLOUT != 0 {
                writable.insert(pollfd.fd);
            }
            max_fd = max_fd.max(pollfd.fd);
        }
        if sys::select(max_fd, &mut readable, &mut writable, timeout)? == 0 {
            return Ok(());
        }
        for (pollfd, &token) in self.pollfds.iter().zip(&self.tokens) {
            let event = Ready {
                token,
                readable: readable.contains(pollfd.fd),
                writable: writable.contains(pollfd.fd),
                // select(2) has no hang-up set: level-triggered, the next read finds the EOF.
                read_closed: false,
            };
            if event.readable || event.writable {
                ready.push(event);
            }
        }
        Ok(())
    }
}
