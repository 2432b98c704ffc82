//! # chat-ext: the chat server with login, message history and file transfer
//!
//! The model answer to exercises 12, 13 and 14, the source course's 练习4 ("聊天室扩展：登录、消息
//! 历史、文件传输"). It serves PROTOCOL.md unchanged, so `loadgen check` passes as it does for
//! every server of the course, plus three extensions an old client never notices:
//!
//! | extension | frames | specified in |
//! |---|---|---|
//! | login | `join` / `nick` with `password`; error `bad_password` | `lessons/exercises/12-login/README.md` |
//! | history | `history` request and reply: a room's last messages | `lessons/exercises/13-history/README.md` |
//! | file | `file` request and event: a base64 file for one user | `lessons/exercises/14-file-transfer/README.md` |
//!
//! `loadgen check --extension login,history,file` grades them. The chat rules stay in chat-core's
//! `Hub`, untouched: `extensions.rs` is a layer around it, which is the lesson of the model
//! answer (extend a protocol without forking its core). The I/O is lesson 04's: one thread, every
//! socket non-blocking, poll(2).
//!
//! ```text
//! cargo run -p exercises --bin chat-ext -- --addr 127.0.0.1:8888   # listening on 127.0.0.1:8888
//! loadgen check --addr 127.0.0.1:8888 --extension login,history,file
//! ```
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | the flags and the loop: wait, accept, read, write out |
//! | `extensions.rs` | the layer around the Hub: login, history, file; who is who |
//! | `requests.rs` | reading the extensions' requests (`bad_request` for bad fields) |
//! | `history.rs` | each room's last messages, bounded in count and bytes |
//! | `peers.rs` | the connections: queues, closing with a linger, the executor's sink |

mod extensions;
mod history;
mod peers;
mod requests;

use chat_core::net::{self, AcceptFailed};
use chat_core::shutdown::STOP_GRACE;
use chat_core::{error_frame, time, ConnId, ErrorCode, LineDecoder, Outbox, ServerArgs, Shutdown};
use chat_readiness::{SpareFd, WakePipe};
use clap::Parser;
use extensions::Extended;
use history::Limits;
use peers::{Peer, Peers, State};
use std::io::{self, ErrorKind, Read};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The chat server of PROTOCOL.md with the login, history and file extensions.
#[derive(Parser, Debug)]
#[command(name = "chat-ext", version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Messages kept per room for `history` (exercise 13 asks for 20).
    #[arg(long, default_value_t = 20)]
    history: usize,

    /// Bytes of messages kept per room for `history` (exercise 13 asks for 64 KiB).
    #[arg(long, default_value_t = 65536)]
    history_bytes: usize,
}

/// Bytes taken from a socket per `read`.
const READ_BUFFER: usize = 64 * 1024;

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    let fd_limit = net::raise_fd_limit()?;
    let listener = net::bind_listener(args.server.addr, &args.server.socket)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // SIGINT/SIGTERM: the signal thread writes a byte into this pipe, which the loop watches.
    let wake = WakePipe::new()?;
    let shutdown = Shutdown::on_signal(wake.waker()?)?;
    let limits = Limits {
        messages: args.history,
        bytes: args.history_bytes,
    };
    let mut server = Server {
        chat: Extended::new(args.server.hub_config(), limits),
        peers: Peers::default(),
        listener: Some(listener),
        spare: SpareFd::new()?,
        wake,
        shutdown,
        args: args.server,
        accept_paused_until: None,
        stop_deadline: None,
    };
    net::announce(addr);
    tracing::info!(%addr, fd_limit, "chat-ext: login, history and file transfer");
    server.serve()
}

/// Everything the loop owns.
struct Server {
    /// The chat and its extensions.
    chat: Extended,
    /// The connections.
    peers: Peers,
    /// `None` once stopping (dropped: the kernel refuses newcomers).
    listener: Option<TcpListener>,
    /// A descriptor in reserve, to refuse a client when `accept` fails with EMFILE.
    spare: SpareFd,
    /// Wakes the loop on SIGINT/SIGTERM.
    wake: WakePipe,
    shutdown: Shutdown,
    /// The limits each new connection's framing and queue get.
    args: ServerArgs,
    /// While out of descriptors, accepting pauses until then.
    accept_paused_until: Option<Instant>,
    /// Set on SIGINT/SIGTERM: the loop ends then, or once every peer is flushed.
    stop_deadline: Option<Instant>,
}

/// What a poll entry is for.
#[derive(Clone, Copy)]
enum Entry {
    Listener,
    Wake,
    Peer(ConnId),
}

impl Server {
    /// The loop: wait, then accept, read and write what is ready, until stopped.
    fn serve(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUFFER];
        let mut hub_deadline = None;
        loop {
            let now = Instant::now();
            let deadlines = [
                hub_deadline,
                self.peers.next_deadline(),
                self.accept_paused_until,
                self.stop_deadline,
            ];
            let (mut fds, entries) = self.interest(now);
            poll(&mut fds, time::until_earliest(now, deadlines))?;
            let now = Instant::now();
            for (fd, entry) in fds.iter().zip(entries) {
                if fd.revents == 0 {
                    continue;
                }
                match entry {
                    Entry::Listener => self.accept_all(now),
                    Entry::Wake => self.wake.drain(),
                    Entry::Peer(id) => {
                        if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                            self.on_readable(id, &mut buf, now);
                        }
                    }
                }
            }
            if self.shutdown.is_requested() && self.stop_deadline.is_none() {
                self.listener = None;
                self.chat.shutdown(&mut self.peers);
                self.stop_deadline = Some(now + STOP_GRACE);
            }
            hub_deadline = self.chat.tick(now, &mut self.peers);
            self.peers.drop_expired(now);
            self.peers.write_out(now);
            for id in std::mem::take(&mut self.peers.failed) {
                self.chat.disconnect(id, &mut self.peers);
            }
            if let Some(deadline) = self.stop_deadline {
                if self.peers.by_id.is_empty() || now >= deadline {
                    tracing::info!("stopped");
                    return Ok(());
                }
            }
        }
    }

    /// The poll array for this turn: the listener (unless paused), the wake pipe, and each peer
    /// for reading (unless it hung up or is flushing) and for writing (only with bytes queued).
    fn interest(&self, now: Instant) -> (Vec<libc::pollfd>, Vec<Entry>) {
        let mut fds = Vec::with_capacity(self.peers.by_id.len() + 2);
        let mut entries = Vec::with_capacity(fds.capacity());
        let mut watch = |fd: RawFd, events: libc::c_short, entry: Entry| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            entries.push(entry);
        };
        let paused = self.accept_paused_until.is_some_and(|until| now < until);
        if let (Some(listener), false) = (&self.listener, paused) {
            watch(listener.as_raw_fd(), libc::POLLIN, Entry::Listener);
        }
        watch(self.wake.fd(), libc::POLLIN, Entry::Wake);
        for (&id, peer) in &self.peers.by_id {
            let mut events = 0;
            if !peer.hung_up && peer.state != State::Flushing {
                events |= libc::POLLIN;
            }
            if !peer.queue.is_empty() {
                events |= libc::POLLOUT;
            }
            watch(peer.socket.as_raw_fd(), events, Entry::Peer(id));
        }
        (fds, entries)
    }

    /// Accepts every waiting client; the Hub admits it or answers `server_full`.
    fn accept_all(&mut self, now: Instant) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let (socket, peer_addr) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if net::is_fd_exhaustion(&e) => {
                    // Out of descriptors: refuse the newcomer with the reserve descriptor, so it
                    // leaves the backlog (else the listener stays readable: a hot loop).
                    let full = error_frame(ErrorCode::ServerFull, "out of file descriptors");
                    if !self.spare.refuse_one(listener, &full) {
                        self.accept_paused_until = Some(now + net::ACCEPT_PAUSE);
                        return;
                    }
                    continue;
                }
                Err(e) => match net::accept_failed(&e) {
                    AcceptFailed::Retry => continue,
                    AcceptFailed::Pause => {
                        self.accept_paused_until = Some(now + net::ACCEPT_PAUSE);
                        return;
                    }
                },
            };
            let configured = socket
                .set_nonblocking(true)
                .and_then(|()| net::configure_accepted(&socket, &self.args.socket));
            if let Err(e) = configured {
                tracing::debug!("{peer_addr}: {e}");
                continue;
            }
            let peer = Peer {
                socket,
                decoder: LineDecoder::new(self.args.max_line),
                queue: self.args.send_queue(),
                state: State::Open,
                hung_up: false,
            };
            // The Hub names it (or refuses it: `server_full`, written out like any last frame).
            let mut out = Outbox::new();
            let id = self.chat.connect_from(now, peer_addr.ip(), &mut out);
            self.peers.by_id.insert(id, peer);
            self.chat.carry_out(&mut out, &mut self.peers);
        }
    }

    /// A peer is readable: one read, its complete lines to the chat one at a time.
    fn on_readable(&mut self, id: ConnId, buf: &mut [u8], now: Instant) {
        let Some(peer) = self.peers.by_id.get_mut(&id) else {
            return;
        };
        let n = match (&peer.socket).read(buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return,
            Err(_) => 0, // reset: the same as a hang-up, for us
        };
        if n == 0 {
            peer.hung_up = true;
            match peer.state {
                // It left: its room hears `left`; what is queued for it still goes out.
                State::Open => {
                    peer.state = State::Flushing;
                    self.chat.disconnect(id, &mut self.peers);
                }
                State::Lingering(_) => {
                    self.peers.by_id.remove(&id);
                }
                State::Flushing => {}
            }
            return;
        }
        if peer.state != State::Open {
            return; // closing: input is read and dropped
        }
        // chat-core's framing, unparsed: the extensions' lines (`login`, `history`, `file`)
        // are not requests chat-core knows, so `extensions.rs` parses each one. The decoder
        // leaves the peer while its lines go through the chat (as in chat-poll's callbacks):
        // they borrow from it and from `buf`, and the chat's frames go to the peers meanwhile.
        let mut decoder = std::mem::take(&mut peer.decoder);
        for line in decoder.feed_lines(&buf[..n]) {
            if !self.peers.is_open(id) {
                break; // `quit` or `line_too_long`: nothing after it counts
            }
            let line = line.as_deref().map_err(Clone::clone);
            self.chat.handle(id, line, now, &mut self.peers);
        }
        if let Some(peer) = self.peers.by_id.get_mut(&id) {
            peer.decoder = decoder;
        }
    }
}

/// poll(2) over `fds`, sleeping at most `timeout` (`None`: until something is ready).
fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
    let n = unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            time::millis(timeout),
        )
    };
    if n == -1 {
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
