//! One event loop: a mio `Poll` (epoll underneath), its own listening socket, and the peers it
//! accepted. The callbacks have the names they have in chat-readiness, the loop of chat-poll and
//! chat-epoll (`on_listener_ready`, `on_peer_connected`, `on_peer_ready_recv`,
//! `on_peer_hung_up`, `on_peer_ready_send`, `carry_out`, `write_out`, `on_tick`), so the two
//! read side by side into the lesson: what changes when the chat rules move to a worker pool and
//! the sockets to several loops.
//!
//! One turn of the loop:
//! 1. `poll` sleeps until a socket is ready, the waker fires (mail arrived, or a signal), or a
//!    timer is due (idle-timeout tick, end of an accept pause, a closing peer's deadline, the
//!    shutdown deadline);
//! 2. each event: accept new peers, read ready peers (their bytes become a `Batch`), write to
//!    peers whose sockets can take more;
//! 3. `hand_off`: all of this turn's batches go to the workers in at most `--workers` jobs, or,
//!    when the turn read less than `--offload-min-bytes`, are handled right here;
//! 4. read the mailbox: the Hub's orders (`carry_out`), decoders back from workers;
//! 5. `write_out`: flush every peer that got frames this turn, once (all in one `writev`);
//! 6. `on_tick`: resume accepting, drop peers that took too long to close, tick the Hub; then
//!    notice a shutdown request.
//!
//! This file is the loop and its timers; the callbacks are in `reactor/callbacks.rs`.

mod callbacks;

use crate::peer::Peer;
use crate::shared::{Mail, Mailbox, Shared};
use crate::worker::Batch;
use chat_core::net::CLOSE_LINGER;
use chat_core::shutdown::STOP_GRACE;
use chat_core::{time, ConnId, ServerArgs, Shutdown};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Token of the listening socket. Peers use their slab index, which never gets this high.
const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the waker: another thread posted mail, or a signal arrived.
const WAKER: Token = Token(usize::MAX);

/// Mails handled per turn, so a flood of mail cannot starve the sockets.
const MAIL_PER_TURN: usize = 1024;

/// A reactor's parts that must exist before the shared state (which holds every reactor's
/// waker), so that they can be created first.
pub struct Seed {
    poll: Poll,
    listener: TcpListener,
    mailbox: Receiver<Mail>,
}

/// Creates a reactor's poll, waker and channel around its (non-blocking) listener.
pub fn seed(listener: std::net::TcpListener) -> io::Result<(Seed, Mailbox)> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let (sender, mailbox) = mpsc::channel();
    let seed = Seed {
        poll,
        listener,
        mailbox,
    };
    Ok((seed, Mailbox::new(sender, waker)))
}

pub struct Reactor {
    /// This reactor's index: routes in the shared table point here.
    index: usize,
    poll: Poll,
    /// `None` once shutting down.
    listener: Option<TcpListener>,
    /// Mail from workers and other reactors.
    mailbox: Receiver<Mail>,
    /// The peers this reactor owns, by token (a slab: O(1) lookup, slots reused).
    peers: Slab<Peer>,
    /// Peers that got frames this turn, to flush once after all events.
    dirty: Vec<Token>,
    /// Closing peers, with the time they will be dropped if still not flushed (in order).
    closing: VecDeque<(Instant, Token, ConnId)>,
    /// Input read this turn, handed to the workers once at the end of the turn.
    batches: Vec<Batch>,
    /// `--offload-min-bytes`: a turn that read less is handled by the loop itself.
    offload_min: usize,
    /// Set while accepting is paused for lack of file descriptors.
    accept_paused_until: Option<Instant>,
    /// When to call `hub.tick` next. Only reactor 0 ticks (one timer is enough: the Hub is
    /// shared), and only with an idle timeout.
    next_tick: Option<Instant>,
    /// The last turn stopped reading mail before the channel was empty.
    mail_left: bool,
    /// One read buffer for all peers: bytes are copied into the peer's inbound buffer, so an
    /// idle connection costs no buffer at all.
    scratch: Vec<u8>,
    args: ServerArgs,
    shared: Arc<Shared>,
}

impl Reactor {
    pub fn new(
        index: usize,
        seed: Seed,
        shared: Arc<Shared>,
        args: ServerArgs,
        offload_min: usize,
    ) -> Self {
        let next_tick = args
            .idle_timeout()
            .filter(|_| index == 0)
            .map(|timeout| Instant::now() + timeout);
        Reactor {
            index,
            poll: seed.poll,
            listener: Some(seed.listener),
            mailbox: seed.mailbox,
            peers: Slab::new(),
            dirty: Vec::new(),
            closing: VecDeque::new(),
            batches: Vec::new(),
            offload_min,
            accept_paused_until: None,
            next_tick,
            mail_left: false,
            scratch: vec![0; 64 * 1024],
            args,
            shared,
        }
    }

    /// The event loop. Returns after a shutdown, once every peer is closed (or the grace
    /// period is over).
    pub fn run(mut self, shutdown: &Shutdown) {
        crate::shared::enter_reactor(self.index);
        let mut events = Events::with_capacity(1024);
        let mut stop_at: Option<Instant> = None;
        loop {
            if let Err(e) = self.poll.poll(&mut events, self.next_timeout(stop_at)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("reactor {}: poll failed: {e}", self.index);
                return;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.on_listener_ready(),
                    WAKER => {} // the mailbox is read below, on every turn
                    token => {
                        let read_closed = event.is_read_closed() || event.is_error();
                        if event.is_readable() || read_closed {
                            self.on_peer_ready_recv(token, read_closed);
                        }
                        // Peers are watched for WRITABLE all the time (see `Peer::blocked`):
                        // only one whose queue the kernel refused has anything to do now; the
                        // others are written once, at the end of the turn.
                        if event.is_writable() && self.peers.get(token.0).is_some_and(|p| p.blocked)
                        {
                            self.on_peer_ready_send(token);
                        }
                    }
                }
            }
            self.hand_off();
            self.read_mail();
            self.write_out();

            let now = Instant::now();
            self.on_tick(now);
            if shutdown.is_requested() && stop_at.is_none() {
                stop_at = Some(now + STOP_GRACE);
                self.begin_shutdown();
            }
            if let Some(deadline) = stop_at {
                // Peers that only linger have been told everything: no need to wait for them.
                let all_lingering = self.peers.iter().all(|(_, peer)| peer.lingering);
                if all_lingering || now >= deadline {
                    return;
                }
            }
        }
    }

    // ---- timers ---------------------------------------------------------------------------

    /// Time passed: resume accepting after a back-off, drop closing peers that took too long,
    /// and (reactor 0 only) enforce the idle timeout when the Hub's next deadline is due.
    fn on_tick(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| now >= until) {
            self.resume_accepting();
        }
        while let Some(&(deadline, token, id)) = self.closing.front() {
            if deadline > now {
                break;
            }
            self.closing.pop_front();
            if self.peers.get(token.0).is_some_and(|p| p.id == id) {
                tracing::debug!("{id} did not read its last frames in {CLOSE_LINGER:?}: dropped");
                self.peers.remove(token.0);
            }
        }
        let Some(due) = self.next_tick else {
            return;
        };
        if now < due {
            return;
        }
        // With no deadline pending, look again one timeout from now: a connection accepted
        // later cannot be due before that.
        let timeout = self.args.idle_timeout().unwrap_or(Duration::from_secs(1));
        self.next_tick = Some(self.shared.tick(now).unwrap_or(now + timeout));
    }

    /// How long `poll` may sleep: until the nearest timer, or not at all when mail is waiting
    /// (left from this turn, or posted by this reactor itself, which does not wake itself).
    fn next_timeout(&self, stop_at: Option<Instant>) -> Option<Duration> {
        if self.mail_left || !self.batches.is_empty() || self.shared.mail_pending(self.index) {
            return Some(Duration::ZERO);
        }
        let first_close = self.closing.front().map(|&(deadline, _, _)| deadline);
        let timers = [
            self.next_tick,
            self.accept_paused_until,
            first_close,
            stop_at,
        ];
        time::until_earliest(Instant::now(), timers)
    }
}

/// Lists a peer for this turn's flush (once).
fn mark_dirty(dirty: &mut Vec<Token>, peer: &mut Peer, token: Token) {
    if !peer.dirty {
        peer.dirty = true;
        dirty.push(token);
    }
}
