//! The hot path of an engine thread: sending messages on schedule and reading what comes back.
//!
//! **Sending.** Open loop: the ring of `schedule.rs` says which connection is due; that
//! connection writes every message it owes up to now in one `write` (normally one; several
//! when the generator or the socket fell behind), each stamped with the time it was *due*, so
//! lateness is measured instead of hidden (coordinated omission). How late the generator itself
//! was is the send lag. A message whose socket is full when it falls due waits until the socket
//! drains; that wait is the server's (it is not reading), so it counts in the corrected latency
//! and in `blocked`, not in the send lag. Closed loop: a connection writes its next message as
//! soon as the acknowledgement of the previous one is read.
//!
//! **Receiving.** One read per readiness into the thread's buffer, the frames decoded without
//! building JSON (`codec.rs`), each tagged copy checked against its sender's sequence and
//! timed from its intended send time (corrected) and from its real one (uncorrected).

use super::codec::{Incoming, Outgoing};
use super::conn::{Got, Sends, State};
use super::connect::Failure;
use super::event_loop::EventLoop;
use super::workload::MsgId;

impl EventLoop {
    /// Sends everything due by `now`, at most a batch of connections at a time.
    pub(super) fn send_due(&mut self, now: u64) {
        if let Some(mut next) = self.closed_start {
            // Closed loop: everyone's first message, then one per acknowledgement.
            let end = (next + super::event_loop::BATCH).min(self.conns.len());
            while next < end {
                self.send_closed(next, now);
                next += 1;
            }
            self.closed_start = (next < self.conns.len()).then_some(next);
            return;
        }
        for _ in 0..super::event_loop::BATCH {
            let Some(slot) = self.schedule.as_mut().and_then(|s| s.pop_due(now)) else {
                return;
            };
            if self.conns[slot].is_joined() {
                self.catch_up(slot, now);
            }
        }
    }

    /// Open loop: writes every message connection `slot` owes by `now`.
    fn catch_up(&mut self, slot: usize, now: u64) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        let conn = &mut self.conns[slot];
        if !conn.unsent.is_empty() {
            // The socket is full: the server is not reading. Write them when it drains.
            conn.was_blocked = true;
            return;
        }
        // Borrowed out while the messages are encoded (they need the loop mutably).
        let Some(schedule) = self.schedule.take() else {
            return;
        };
        let blocked = std::mem::take(&mut self.conns[slot].was_blocked);
        let (mut count, mut measured) = (0, 0);
        self.out.clear();
        loop {
            let intended = schedule.due(self.conns[slot].index, self.conns[slot].next_seq);
            if intended > now || !schedule.in_window(intended) {
                break;
            }
            self.encode_next(slot, intended, now);
            count += 1;
            if plan.measured(intended) {
                measured += 1;
                if !blocked {
                    self.rec.send_lag.record(now - intended);
                }
            }
        }
        self.schedule = Some(schedule);
        if blocked {
            self.tally.blocked += count;
        }
        self.written(slot, count, measured);
    }

    /// Closed loop: writes connection `slot`'s next message now.
    pub(super) fn send_closed(&mut self, slot: usize, now: u64) {
        let Some(plan) = &self.plan else {
            return;
        };
        let measured = u64::from(plan.measured(now));
        let conn = &mut self.conns[slot];
        conn.ack_pending = false;
        if !conn.is_joined() || matches!(conn.sends, Sends::Nothing) {
            return;
        }
        self.out.clear();
        self.encode_next(slot, now, now);
        self.written(slot, 1, measured);
    }

    /// Appends connection `slot`'s next message to `self.out`, meant for `intended_us` and
    /// written at `now`.
    fn encode_next(&mut self, slot: usize, intended_us: u64, now: u64) {
        let conn = &mut self.conns[slot];
        let msg = match &conn.sends {
            Sends::Room(room) => Outgoing::Room(room),
            Sends::Private(to) => Outgoing::Private(to),
            Sends::Ping => Outgoing::Ping,
            Sends::Nothing => return,
        };
        self.id_buf.clear();
        MsgId {
            sender: conn.index,
            seq: conn.next_seq,
            intended_us,
            sent_us: now,
        }
        .write_to(&mut self.id_buf);
        self.shared
            .codec
            .encode(&mut self.out, msg, &self.id_buf, &self.shared.padding);
        conn.next_seq += 1;
    }

    /// Writes `self.out` (holding `count` messages, `measured` of them in the window) and
    /// counts them.
    fn written(&mut self, slot: usize, count: u64, measured: u64) {
        if count == 0 {
            return;
        }
        let conn = &mut self.conns[slot];
        // Expect the copies before writing: a fast server may answer before we count.
        self.tally.expected += count * conn.copies;
        self.tally.sent += count;
        self.tally.sent_measured += measured;
        self.tally.per_addr[conn.addr_slot].sent_measured += measured;
        match conn.write(&self.out) {
            Ok(false) => {}
            Ok(true) => self.watch(slot, true),
            Err(reason) => self.drop_conn(slot, reason),
        }
    }

    /// A socket with bytes waiting turned writable.
    pub(super) fn on_writable(&mut self, slot: usize) {
        match self.conns[slot].flush_unsent() {
            Ok(true) => {}
            Ok(false) => {
                self.watch(slot, false);
                // Messages that fell due while the socket was full go now.
                if self.conns[slot].was_blocked && !self.done_sending {
                    let now = self.now_us();
                    self.catch_up(slot, now);
                }
            }
            Err(reason) => self.drop_conn(slot, reason),
        }
    }

    /// Reads what arrived on `slot` and handles every complete frame.
    pub(super) fn on_readable(&mut self, slot: usize) {
        // Up to a few reads while each fills the buffer; the rest waits for the next turn.
        for _ in 0..4 {
            let (tail, got) = self.conns[slot].read_into(&mut self.read_buf);
            let n = match got {
                Got::Data(n) => n,
                Got::Nothing => {
                    let conn = &mut self.conns[slot];
                    conn.tail.extend_from_slice(&self.read_buf[..tail]);
                    return;
                }
                Got::Ended(reason) => return self.ended(slot, reason),
            };
            let len = tail + n;
            self.frames.clear();
            let decoded = self
                .shared
                .codec
                .decode(&self.read_buf[..len], &mut self.frames);
            let now = self.now_us();
            match decoded {
                Ok(used) => {
                    let rest = &self.read_buf[used..len];
                    self.conns[slot].tail.extend_from_slice(rest);
                    self.take_frames(slot, now);
                }
                Err(e) => {
                    self.take_frames(slot, now);
                    return self.ended(slot, format!("unreadable stream: {e}"));
                }
            }
            if !self.conns[slot].is_joined()
                && !matches!(self.conns[slot].state, State::Joining { .. })
            {
                return;
            }
            if self.conns[slot].ack_pending {
                if let Some(plan) = &self.plan {
                    if now >= plan.times.start_us && now < plan.times.send_until_us {
                        self.send_closed(slot, now);
                    }
                }
                self.conns[slot].ack_pending = false;
            }
            if len < self.read_buf.len() {
                return; // the socket is drained for now
            }
        }
    }

    /// The stream of `slot` ended: a drop if it had joined, a failed attempt if not.
    fn ended(&mut self, slot: usize, reason: String) {
        if self.conns[slot].is_joined() {
            self.drop_conn(slot, reason);
        } else {
            let kind = if reason.starts_with("closed") {
                "closed".to_string()
            } else {
                reason.split(' ').next().unwrap_or("io_error").to_string()
            };
            self.fail(
                slot,
                Failure::new(kind, format!("before the handshake's reply: {reason}")),
            );
        }
    }

    /// Handles the frames just decoded for `slot`, received at `now`.
    fn take_frames(&mut self, slot: usize, now: u64) {
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            match self.conns[slot].state {
                State::Joining { .. } => match frame {
                    Incoming::Upgraded => self.on_upgraded(slot),
                    Incoming::Ready => self.on_joined(slot, now),
                    Incoming::Error(code) => {
                        let detail = format!("the server answered the handshake with `{code}`");
                        self.fail(slot, Failure::new(code, detail));
                    }
                    _ => {}
                },
                State::Joined => self.on_frame(slot, frame, now),
                _ => {}
            }
        }
        self.frames = frames;
    }

    /// One frame on a joined connection.
    fn on_frame(&mut self, slot: usize, frame: Incoming, now: u64) {
        let id = match frame {
            Incoming::Tagged(id) => id,
            Incoming::Error(code) => {
                *self.rec.errors.entry(code).or_default() += 1;
                return;
            }
            Incoming::Unparsed => {
                self.tally.unparsed += 1;
                return;
            }
            Incoming::Upgraded | Incoming::Ready | Incoming::Other => return,
        };
        let conn = &mut self.conns[slot];
        conn.streams.observe(id.sender, id.seq);
        let measured = self
            .plan
            .as_ref()
            .is_some_and(|p| p.measured(id.intended_us));
        let corrected = now.saturating_sub(id.intended_us);
        let uncorrected = now.saturating_sub(id.sent_us);
        let at = conn.addr_slot;
        // With one address its figures are the totals: no need to record them twice.
        let per_addr = self.rec.per_addr.len() > 1;
        if id.sender == conn.index {
            self.tally.acked += 1;
            conn.ack_pending = self.shared.config.rate.is_none();
            if measured {
                self.tally.acked_measured += 1;
                self.tally.per_addr[at].acked_measured += 1;
                self.rec.round_trip.record(corrected);
                self.rec.round_trip_uncorrected.record(uncorrected);
                if per_addr {
                    self.rec.per_addr[at].round_trip.record(corrected);
                }
            }
        } else {
            self.tally.delivered += 1;
            if measured {
                self.tally.delivered_measured += 1;
                self.tally.per_addr[at].delivered_measured += 1;
                self.rec.fanout.record(corrected);
                self.rec.fanout_uncorrected.record(uncorrected);
                self.rec.per_addr[at].fanout.record(corrected);
                let addrs = self.shared.config.addrs.len();
                let from = self.shared.layout.addr_slot(
                    id.sender as usize,
                    addrs,
                    self.shared.config.spread,
                );
                if from != at {
                    self.rec.fanout_cross.record(corrected);
                }
            }
        }
    }
}
