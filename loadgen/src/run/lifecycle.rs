//! A connection's life in an engine thread: the ramp starts it (a non-blocking connect, watched
//! by the poller), the socket's first readiness finishes the connect and sends the handshake,
//! the handshake's reply joins it, and a timeout, an error reply or a closed socket ends it. A
//! joined connection that ends before the run does is *dropped*. This is the other half of
//! `event_loop.rs`; the traffic of a joined connection is `traffic.rs`.

use super::conn::State;
use super::connect::{self, Failure};
use super::event_loop::{EventLoop, BATCH};
use super::Transport;
use polling::{Event, PollMode};
use std::collections::VecDeque;
use std::time::Duration;

/// The two steps of a connection's start that have a deadline (`--connect-timeout` each).
#[derive(Clone, Copy)]
enum Handshake {
    /// The TCP connect, from its start.
    Connect,
    /// The handshake's reply (the WebSocket upgrade's too), from the connect.
    Join,
}

impl Handshake {
    fn timed_out(self, timeout: Duration) -> Failure {
        match self {
            Handshake::Connect => Failure::new(
                "connect_timeout",
                format!("no TCP connection within {timeout:?}"),
            ),
            Handshake::Join => Failure::new(
                "join_timeout",
                format!(
                    "connected, but no reply to the handshake within {timeout:?} (a server that \
                     is not accepting, or serves one connection at a time, leaves us in its \
                     listen backlog)"
                ),
            ),
        }
    }
}

impl EventLoop {
    /// Starts the connections the ramp has reached by `now`, and fails those whose connect or
    /// handshake has taken too long.
    pub(super) fn on_ramp(&mut self, now: u64) {
        let rate = self.shared.config.connect_rate;
        let mut started = 0;
        while self.ramp_next < self.conns.len() && started < BATCH {
            let index = self.conns[self.ramp_next].index;
            if self.ramp_due(index, rate) > now {
                break;
            }
            self.start_connect(self.ramp_next, now);
            self.ramp_next += 1;
            started += 1;
        }
        self.expire(Handshake::Connect, now);
        self.expire(Handshake::Join, now);
    }

    /// Fails the connections whose `step` has passed its deadline by `now`. A deadline whose
    /// attempt has finished is stale: it leaves the queue's front at once, due or not, so that
    /// the loop never wakes for it (`next_deadline` reads the fronts).
    fn expire(&mut self, step: Handshake, now: u64) {
        while let Some((deadline, slot)) = self.deadlines(step).front().copied() {
            let current = self.still_in(step, slot, deadline);
            if current && deadline > now {
                return;
            }
            self.deadlines(step).pop_front();
            if current {
                let timeout = self.shared.config.connect_timeout;
                self.fail(slot, step.timed_out(timeout));
            }
        }
    }

    /// The queue of `step`'s deadlines, `(deadline, slot)` in the order they were set.
    fn deadlines(&mut self, step: Handshake) -> &mut VecDeque<(u64, usize)> {
        match step {
            Handshake::Connect => &mut self.connecting,
            Handshake::Join => &mut self.joining,
        }
    }

    /// Whether `slot` is still in `step`, with `deadline` as its deadline. A churner may have
    /// closed and reconnected since an earlier deadline was set: only the deadline of the
    /// attempt in progress counts (`started + timeout` for a connect, `connected + timeout` for
    /// a join).
    fn still_in(&self, step: Handshake, slot: usize, deadline: u64) -> bool {
        let timeout = self.shared.config.connect_timeout.as_micros() as u64;
        match (step, &self.conns[slot].state) {
            (Handshake::Connect, State::Connecting { started_us }) => {
                *started_us + timeout == deadline
            }
            (
                Handshake::Join,
                State::Joining {
                    started_us,
                    connect_us,
                }
                | State::Upgrading {
                    started_us,
                    connect_us,
                },
            ) => *started_us + *connect_us + timeout == deadline,
            _ => false,
        }
    }

    /// When connection `index` of the run is due to connect.
    pub(super) fn ramp_due(&self, index: u32, rate: f64) -> u64 {
        self.shared.ramp_start_us + (index as f64 * 1e6 / rate) as u64
    }

    /// Starts a non-blocking connect and watches the socket for its outcome.
    pub(super) fn start_connect(&mut self, slot: usize, now: u64) {
        let conn = &self.conns[slot];
        let addr = self.shared.config.addrs[conn.addr_slot];
        let sources = &self.shared.sources;
        // A churner's reconnects take the next source address each time, so that the churn
        // spreads over all of them.
        let turn = conn.index as usize + conn.churn.as_ref().map_or(0, |c| c.incarnation as usize);
        let source = (!sources.is_empty()).then(|| sources[turn % sources.len()]);
        match connect::start(addr, source) {
            Ok(stream) => {
                // SAFETY: the socket is deleted from the poller before it is dropped (`close`).
                let added = unsafe {
                    self.poller
                        .add_with_mode(&stream, Event::all(slot), PollMode::Level)
                };
                self.conns[slot].stream = Some(stream);
                match added {
                    Ok(()) => {
                        self.conns[slot].state = State::Connecting { started_us: now };
                        let timeout = self.shared.config.connect_timeout.as_micros() as u64;
                        self.connecting.push_back((now + timeout, slot));
                    }
                    Err(e) => self.fail(slot, Failure::io("poller", &e)),
                }
            }
            Err(failure) => self.fail(slot, failure),
        }
    }

    /// The connect finished (the socket turned ready): upgrade to WebSocket, or send the
    /// handshake.
    pub(super) fn on_connected(&mut self, slot: usize, started_us: u64) {
        let stream = self.conns[slot].stream.as_ref().expect("connecting socket");
        if let Err(failure) = connect::finished(stream) {
            return self.fail(slot, failure);
        }
        let now = self.now_us();
        let connect_us = now.saturating_sub(started_us);
        let timeout = self.shared.config.connect_timeout.as_micros() as u64;
        self.joining.push_back((now + timeout, slot));
        if self.shared.config.transport == Transport::Ws {
            return self.start_upgrade(slot, started_us, connect_us);
        }
        self.conns[slot].state = State::Joining {
            started_us,
            connect_us,
        };
        self.send_handshake(slot, now);
    }

    /// Sends the handshake (`join` under the connection's nickname, or Redis' subscribe); a
    /// protocol without one (an echo server) is ready at once.
    pub(super) fn send_handshake(&mut self, slot: usize, now: u64) {
        if !self.shared.codec.has_handshake() {
            self.on_joined(slot, now);
            return self.watch_if_idle(slot);
        }
        let (layout, index) = (&self.shared.layout, self.conns[slot].index as usize);
        let incarnation = self.conns[slot].churn.as_ref().map_or(0, |c| c.incarnation);
        let mut hello = Vec::new();
        self.shared.codec.handshake(
            &mut hello,
            &layout.nickname_of(index, incarnation),
            &layout.room_name(layout.room_of(index)),
        );
        self.send_lines(slot, &hello);
        self.watch_if_idle(slot);
    }

    /// The handshake's reply arrived: the connection is part of the run.
    pub(super) fn on_joined(&mut self, slot: usize, now: u64) {
        let conn = &mut self.conns[slot];
        if let State::Joining {
            started_us,
            connect_us,
        } = conn.state
        {
            if conn.churn.as_ref().is_some_and(|c| c.incarnation > 0) {
                self.rec.churn_rejoin.record(now.saturating_sub(started_us));
                conn.state = State::Joined;
                return self.rejoined(slot, now);
            }
            self.rec.connect.record(connect_us);
            self.rec.join.record(now.saturating_sub(started_us));
        }
        conn.state = State::Joined;
        let at = conn.index as usize - self.shared.conns.start;
        self.shared.joined[at].store(true, std::sync::atomic::Ordering::Relaxed);
        self.tally.connected += 1;
        self.tally.per_addr[conn.addr_slot].connected += 1;
        self.attempt_over(slot, now);
    }

    /// The connection never joined.
    pub(super) fn fail(&mut self, slot: usize, failure: Failure) {
        self.close(slot);
        let conn = &mut self.conns[slot];
        if conn.churn.as_ref().is_some_and(|c| c.incarnation > 0) {
            // A churning connection that could not come back: the churn's failure, not the
            // ramp's. It tries again at its next turn.
            self.tally.churn.failed += 1;
            if self.churn_failure_example.is_none() {
                self.churn_failure_example = Some(format!("{}: {}", failure.kind, failure.detail));
            }
            conn.state = State::Failed(failure);
            return;
        }
        conn.state = State::Failed(failure);
        self.tally.failed += 1;
        self.tally.per_addr[conn.addr_slot].failed += 1;
        let now = self.now_us();
        self.attempt_over(slot, now);
    }

    fn attempt_over(&mut self, slot: usize, now: u64) {
        self.tally.attempted += 1;
        self.tally.per_addr[self.conns[slot].addr_slot].attempted += 1;
        self.last_attempt_us = self.last_attempt_us.max(now);
    }

    /// A joined connection ended before the run did.
    pub(super) fn drop_conn(&mut self, slot: usize, reason: String) {
        self.close(slot);
        let conn = &mut self.conns[slot];
        if conn.is_joined() {
            conn.state = State::Dropped(reason);
            self.tally.dropped += 1;
            self.tally.per_addr[conn.addr_slot].dropped += 1;
        }
    }

    pub(super) fn close(&mut self, slot: usize) {
        self.say_goodbye(slot);
        if let Some(stream) = self.conns[slot].stream.take() {
            let _ = self.poller.delete(&stream);
        }
    }

    /// Watches a socket for reading only, unless bytes wait to be written.
    fn watch_if_idle(&mut self, slot: usize) {
        let conn = &self.conns[slot];
        if matches!(conn.state, State::Joining { .. } | State::Joined) {
            let waiting = !conn.unsent.is_empty();
            self.watch(slot, waiting);
        }
    }

    /// Watches a socket for reading, and for writing while bytes wait to be written.
    pub(super) fn watch(&mut self, slot: usize, writable: bool) {
        let Some(stream) = &self.conns[slot].stream else {
            return;
        };
        let interest = if writable {
            Event::all(slot)
        } else {
            Event::readable(slot)
        };
        if let Err(e) = self
            .poller
            .modify_with_mode(stream, interest, PollMode::Level)
        {
            let reason = format!("poller: {e}");
            if self.conns[slot].is_joined() {
                self.drop_conn(slot, reason);
            } else {
                self.fail(slot, Failure::new("io_error", reason));
            }
        }
    }
}
