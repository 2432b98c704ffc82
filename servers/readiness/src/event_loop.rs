//! The loop: one thread, every socket non-blocking, one system call that sleeps until some are
//! ready. Everything it owns is in [`EventLoop`], so nothing needs a lock; another thread (the
//! signal watcher) only writes a byte into the wake pipe.
//!
//! One turn ([`EventLoop::run`]):
//! 1. [`wait`](EventLoop::wait) in the readiness API, with a timeout that ends at the next
//!    timer: the Hub's next idle deadline, a closing peer's linger deadline, the end of an
//!    accept pause, the shutdown deadline;
//! 2. [`dispatch`](EventLoop::dispatch): call `on_peer_ready_recv` / `on_peer_ready_send` for
//!    each ready peer, then `on_listener_ready` (the callbacks, in `callbacks.rs`);
//! 3. `on_tick`: idle timeouts, lingering closes, the start of a shutdown;
//! 4. `write_out`: flush every peer that got frames this turn, once: all its frames of the turn
//!    in one `writev`.

use crate::os::{SpareFd, WakePipe};
use crate::peers::Peers;
use crate::readiness::{Interest, Readiness, Ready, Token, Trigger};
use crate::LoopArgs;
use chat_core::{time, ConnId, Hub, Outbox, ServerArgs, Shutdown};
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tracing::info;

/// Bytes taken from a socket per `read`. One buffer serves every peer: one thread reads one
/// socket at a time, and each peer keeps only its unfinished line (in its decoder).
const READ_BUFFER: usize = 64 * 1024;

/// Everything the loop owns.
pub struct EventLoop<R> {
    /// The limits: each new connection's decoder and queue are made from them.
    pub(crate) args: ServerArgs,
    /// The chat: nicknames, rooms, idle deadlines. Owned by the loop, not shared.
    pub(crate) hub: Hub,
    /// What the Hub asked for, carried out after each request (its allocation is reused).
    pub(crate) outbox: Outbox,
    /// The connections, and the readiness API that watches them (and the two sockets below).
    pub(crate) peers: Peers<R>,
    /// `None` once shutting down (dropping it closes it: the kernel refuses newcomers).
    pub(crate) listener: Option<TcpListener>,
    /// When [`Hub::tick`] next has work (the earliest idle deadline).
    pub(crate) hub_deadline: Option<Instant>,
    /// While out of descriptors, accepting pauses until then.
    pub(crate) accept_paused_until: Option<Instant>,
    /// Set by SIGINT/SIGTERM: the loop ends then, or once every peer has been flushed.
    pub(crate) stop_deadline: Option<Instant>,
    /// Whether SIGINT/SIGTERM arrived (set by the signal thread, read every turn).
    pub(crate) shutdown: Shutdown,
    /// The self-pipe the signal thread writes into to wake the loop.
    pub(crate) wake: WakePipe,
    /// A descriptor in reserve, to refuse a connection when `accept` fails with EMFILE.
    pub(crate) spare: SpareFd,
    /// The buffer every `read` fills. The requests of a read borrow their strings from it, on
    /// their way through the Hub.
    pub(crate) read_buf: Vec<u8>,
    /// The peers to flush at the end of a turn (kept to reuse its allocation).
    pub(crate) to_flush: Vec<ConnId>,
    /// Edge-triggered only: sockets a callback left before `EAGAIN` (at its budget). The kernel
    /// will not report them again (nothing *changed*), so the loop must come back by itself.
    pub(crate) unfinished: Vec<Token>,
    /// The ready sockets found by the last wait.
    pub(crate) ready: Vec<Ready>,
}

impl<R: Readiness> EventLoop<R> {
    /// A loop serving `listener`, woken by `wake`, stopping when `shutdown` is requested.
    pub fn new(
        args: LoopArgs,
        listener: TcpListener,
        readiness: R,
        wake: WakePipe,
        shutdown: Shutdown,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let aborts_on_close = args.server.socket.aborts_on_close();
        let mut peers = Peers::new(readiness, args.flush, aborts_on_close);
        peers
            .readiness
            .watch(listener.as_raw_fd(), Token::Listener, Interest::READ)?;
        peers
            .readiness
            .watch(wake.fd(), Token::Wake, Interest::READ)?;
        Ok(EventLoop {
            hub: Hub::new(args.server.hub_config()),
            args: args.server,
            outbox: Outbox::new(),
            peers,
            listener: Some(listener),
            hub_deadline: None,
            accept_paused_until: None,
            stop_deadline: None,
            shutdown,
            wake,
            spare: SpareFd::new()?,
            read_buf: vec![0; READ_BUFFER],
            to_flush: Vec::new(),
            unfinished: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// The event loop: turns until a shutdown has flushed every peer (or ran out of time).
    pub fn run(mut self) -> io::Result<()> {
        loop {
            let timeout = self.next_timeout(Instant::now());
            self.wait(timeout)?;
            self.dispatch();
            self.on_tick(Instant::now());
            self.write_out();
            if self.finished(Instant::now()) {
                self.close_all();
                info!("stopped");
                return Ok(());
            }
        }
    }

    /// Sleeps until a watched socket is ready or `timeout` passes; fills `self.ready`.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ready.clear();
        // Sockets left unfinished will not be reported again: do not sleep, serve them now.
        let timeout = match self.unfinished.is_empty() {
            true => timeout,
            false => Some(Duration::ZERO),
        };
        self.peers.readiness.wait(timeout, &mut self.ready)?;
        self.ready
            .extend(self.unfinished.drain(..).map(|token| Ready {
                token,
                readable: true,
                writable: false,
                read_closed: false,
            }));
        Ok(())
    }

    /// Calls the callback for each ready socket. Peers first, new connections last: under
    /// load the clients we have come first, and the hang-ups of this turn free descriptors
    /// before we accept.
    pub fn dispatch(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        let mut listener_ready = false;
        for event in ready.drain(..) {
            match event.token {
                Token::Listener => listener_ready = true,
                // The byte only woke us; `on_tick` sees the shutdown flag.
                Token::Wake => self.wake.drain(),
                Token::Peer(id) => {
                    if event.readable
                        && self.on_peer_ready_recv(id, event.read_closed) == Progress::MoreLeft
                    {
                        self.come_back_to(Token::Peer(id));
                    }
                    // Only a peer the kernel refused bytes is written here. The others, even if
                    // reported writable (chat-epoll's edge mode watches output all the time),
                    // wait for `write_out`: all of their frames of this turn in one write.
                    if event.writable && self.peers.is_blocked(id) {
                        self.on_peer_ready_send(id);
                    }
                }
            }
        }
        self.ready = ready;
        if listener_ready && self.on_listener_ready() == Progress::MoreLeft {
            self.come_back_to(Token::Listener);
        }
    }

    /// A callback stopped at its budget with work left. Level-triggered, the kernel reports the
    /// socket again; edge-triggered, it will not (nothing *changed*), so we remember it.
    fn come_back_to(&mut self, token: Token) {
        if self.peers.readiness.trigger() == Trigger::Edge {
            self.unfinished.push(token);
        }
    }

    /// How long the loop may sleep: until the earliest timer (`None`: no timer, forever).
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        time::until_earliest(
            now,
            [
                self.hub_deadline,
                self.peers.next_linger_deadline(),
                self.accept_paused_until,
                self.stop_deadline,
            ],
        )
    }

    /// Whether the loop is done: shutting down, and every peer has been flushed and sent its
    /// FIN (or the time is up).
    fn finished(&self, now: Instant) -> bool {
        let Some(deadline) = self.stop_deadline else {
            return false;
        };
        now >= deadline || self.peers.all_lingering()
    }

    /// The end: closes every remaining peer. Each one's unread input is read and discarded
    /// first, so that the kernel closes with a FIN and goes on delivering what it still holds
    /// for the client; closing a socket with unread input sends a RST, which throws that away.
    fn close_all(&mut self) {
        let buf = &mut self.read_buf;
        for peer in self.peers.drain() {
            for _ in 0..16 {
                // Bounded: a peer still streaming at us gets its RST.
                match (&peer.socket).read(buf) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
        }
    }
}

/// How far a read or accept callback got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The kernel said `EAGAIN`: nothing more until the next readiness event.
    Drained,
    /// The callback stopped at its budget; there may be more. A level-triggered loop will be
    /// told again; an edge-triggered one must remember to come back by itself.
    MoreLeft,
    /// The peer is gone (or the listener, when shutting down).
    Closed,
}
