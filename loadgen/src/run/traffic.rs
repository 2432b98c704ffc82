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
use crate::ws::Opcode;

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
        if !conn.is_sending() {
            return; // a churning connection on its way out, or away: it skips its turns
        }
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
            let conn = &self.conns[slot];
            let intended = schedule.due(conn.index, conn.next_slot);
            if intended > now || !schedule.in_window(intended) {
                break;
            }
            self.encode_next(slot, intended, now);
            self.conns[slot].next_slot += 1;
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
        if !conn.is_sending() || matches!(conn.sends, Sends::Nothing) {
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
            Sends::Echo => Outgoing::Echo,
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
        if conn.churn.is_some() {
            self.tally.churn.sent += count;
        }
        let out = std::mem::take(&mut self.out);
        self.send_lines(slot, &out);
        self.out = out;
    }

    /// Writes protocol lines (each ending in `\n`) to `slot`: as they are over TCP, one text
    /// message each over WebSocket. A full socket keeps the rest and is watched; an error ends
    /// the connection.
    pub(super) fn send_lines(&mut self, slot: usize, lines: &[u8]) {
        let result = if self.conns[slot].ws.is_some() {
            self.ws_out.clear();
            for line in lines.split_inclusive(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let key = self.mask_keys.next_key();
                crate::ws::push_frame(&mut self.ws_out, Opcode::Text, true, line, Some(key));
            }
            self.conns[slot].write(&self.ws_out)
        } else {
            self.conns[slot].write(lines)
        };
        match result {
            Ok(false) => {}
            Ok(true) => self.watch(slot, true),
            Err(reason) => self.ended(slot, reason),
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
            let now = self.now_us();
            let taken = if self.conns[slot].ws.is_some() {
                self.take_ws(slot, len, now)
            } else {
                self.take_lines(slot, len, now)
            };
            if let Err(reason) = taken {
                return self.ended(slot, reason);
            }
            if !self.conns[slot].is_joined() {
                if matches!(
                    self.conns[slot].state,
                    State::Joining { .. } | State::Upgrading { .. }
                ) && len == self.read_buf.len()
                {
                    continue;
                }
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
            if self.conns[slot]
                .churn
                .as_ref()
                .is_some_and(|c| c.leaving_since.is_some())
                && self.conns[slot].all_acked()
            {
                return self.leave(slot, now);
            }
            if len < self.read_buf.len() {
                return; // the socket is drained for now
            }
        }
    }

    /// Decodes the lines in the first `len` bytes of the read buffer; an unfinished one is kept
    /// for the next read.
    fn take_lines(&mut self, slot: usize, len: usize, now: u64) -> Result<(), String> {
        self.frames.clear();
        let decoded = self
            .shared
            .codec
            .decode(&self.read_buf[..len], &mut self.frames);
        match decoded {
            Ok(used) => {
                let rest = &self.read_buf[used..len];
                self.conns[slot].tail.extend_from_slice(rest);
                self.take_frames(slot, now);
                Ok(())
            }
            Err(e) => {
                self.take_frames(slot, now);
                Err(format!("unreadable stream: {e}"))
            }
        }
    }

    /// The stream of `slot` ended: a drop if it had joined, a failed attempt if not.
    pub(super) fn ended(&mut self, slot: usize, reason: String) {
        if self.conns[slot].is_joined() {
            self.drop_conn(slot, reason);
        } else {
            let kind = if reason.starts_with("closed") {
                "closed".to_string()
            } else {
                let cause = reason.strip_prefix("write failed: ").unwrap_or(&reason);
                cause.split(' ').next().unwrap_or("io_error").to_string()
            };
            self.fail(
                slot,
                Failure::new(kind, format!("before the handshake's reply: {reason}")),
            );
        }
    }

    /// Handles the frames just decoded for `slot`, received at `now`.
    pub(super) fn take_frames(&mut self, slot: usize, now: u64) {
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            match self.conns[slot].state {
                State::Joining { .. } => match frame {
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
            Incoming::Ready | Incoming::Other => return,
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
        // With one address its figures are the totals: no need to record them twice. In
        // closed loop a message is sent when it is meant to be, so its corrected and
        // uncorrected latencies are the same: recorded once, copied at the end (`finish`).
        let per_addr = self.rec.per_addr.len() > 1;
        let open = self.shared.config.rate.is_some();
        if id.sender == conn.index {
            self.tally.acked += 1;
            conn.ack_pending = !open;
            if measured {
                self.tally.acked_measured += 1;
                self.tally.per_addr[at].acked_measured += 1;
                self.rec.round_trip.record(corrected);
                if open {
                    self.rec.round_trip_uncorrected.record(uncorrected);
                }
                if per_addr {
                    self.rec.per_addr[at].round_trip.record(corrected);
                }
            }
        } else if conn.churn.is_some() {
            // A churning receiver's copies are counted, not checked: it is away part of the time.
            self.tally.churn.received += 1;
        } else {
            self.tally.delivered += 1;
            if measured {
                self.tally.delivered_measured += 1;
                self.tally.per_addr[at].delivered_measured += 1;
                self.rec.fanout.record(corrected);
                if open {
                    self.rec.fanout_uncorrected.record(uncorrected);
                }
                if per_addr {
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
}
