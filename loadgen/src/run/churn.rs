//! `--churn RATE`: connections closed and reopened all the time, while messages flow.
//!
//! The last member of every full room churns; the others stay. The churn events are spread
//! evenly over the sending window like the messages are (a [`Schedule`] over the churners, each
//! churner taking its turn every `churners / RATE` seconds), and at its turn a churner:
//!
//! 1. **leaves**: it stops sending and waits until its last message has come back to it, so
//!    that every message it sent was handled by the server and every member that stayed must
//!    have it (after `--connect-timeout` it gives up waiting, and its receivers no longer trust
//!    its count);
//! 2. **closes** its socket (a WebSocket says goodbye with a close frame first);
//! 3. **reconnects** at once, and joins the same room under a fresh nickname;
//! 4. **carries on** with the schedule where it is now: the messages that fell due while it
//!    was away are skipped and counted, not sent late (they would be the generator's lateness,
//!    not the server's). Its sequence numbers go on from where they were, so the members that
//!    stayed check its messages across every reconnect for loss, duplication and order.
//!
//! What the churners receive is counted, not checked for loss: they are away part of the time.
//! A reconnect that fails is counted with its reason, and tried again at the next turn.

use super::conn::{Conn, State};
use super::event_loop::{EventLoop, BATCH};
use super::schedule::Schedule;
use super::shard::Plan;

impl EventLoop {
    /// The churn schedule over this thread's churners that joined, or `None` without churn.
    pub(super) fn churn_schedule(&self, plan: &Plan) -> Option<Schedule> {
        let rate = self.shared.config.churn?;
        let churners = self.shared.layout.churners();
        if churners == 0 {
            return None;
        }
        let room_size = self.shared.layout.room_size;
        let ring: Vec<(usize, u32)> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.churn.is_some() && c.is_joined())
            .map(|(slot, c)| (slot, c.index / room_size as u32))
            .collect();
        let t = plan.times;
        // Each churner's turn comes every `churners / rate` seconds.
        Some(Schedule::new(
            t.start_us..t.send_until_us,
            rate / churners as f64,
            churners,
            ring,
        ))
    }

    /// The churn turns due by `now`.
    pub(super) fn churn_due(&mut self, now: u64) {
        for _ in 0..BATCH {
            let Some(slot) = self.churn.as_mut().and_then(|s| s.pop_due(now)) else {
                return;
            };
            self.churn_turn(slot, now);
        }
    }

    /// One churner's turn: leave if it is in, come back if its last reconnect failed.
    fn churn_turn(&mut self, slot: usize, now: u64) {
        let conn = &mut self.conns[slot];
        let Some(churn) = conn.churn.as_mut() else {
            return;
        };
        match conn.state {
            State::Joined if churn.leaving_since.is_none() => {
                churn.leaving_since = Some(now);
                let deadline = now + self.shared.config.connect_timeout.as_micros() as u64;
                self.leaving.push_back((deadline, slot, churn.incarnation));
                if conn.all_acked() {
                    self.leave(slot, now);
                }
            }
            State::Failed(_) if churn.incarnation > 0 => self.reconnect(slot, now),
            // Still on its way out or back (or dropped by the server): it misses this turn.
            _ => self.tally.churn.busy += 1,
        }
    }

    /// Churners that waited too long for their last message: they leave anyway, and their
    /// receivers stop trusting their count (the server may not have handled what was in
    /// flight).
    pub(super) fn on_leave_timeouts(&mut self, now: u64) {
        // As with the connect and join deadlines (`on_ramp`), a stale one (that incarnation
        // has left already) leaves the queue's front at once, so the loop never wakes for it.
        while let Some(&(deadline, slot, incarnation)) = self.leaving.front() {
            let conn = &self.conns[slot];
            let current = conn.is_joined()
                && conn.churn.as_ref().is_some_and(|churn| {
                    churn.incarnation == incarnation && churn.leaving_since.is_some()
                });
            if current && deadline > now {
                break;
            }
            self.leaving.pop_front();
            if !current {
                continue;
            }
            if let Some(churn) = self.conns[slot].churn.as_mut() {
                churn.timed_out = true;
            }
            self.tally.churn.ack_timeouts += 1;
            self.leave(slot, now);
        }
    }

    /// Its last message came back (or the wait timed out): close, and reconnect.
    pub(super) fn leave(&mut self, slot: usize, now: u64) {
        self.close(slot);
        self.tally.churn.closes += 1;
        self.reconnect(slot, now);
    }

    /// Starts the next incarnation: a fresh socket, the same room, a new nickname.
    fn reconnect(&mut self, slot: usize, now: u64) {
        let conn: &mut Conn = &mut self.conns[slot];
        if let Some(churn) = conn.churn.as_mut() {
            churn.incarnation += 1;
            churn.leaving_since = None;
        }
        conn.state = State::Waiting;
        conn.tail.clear();
        conn.unsent.clear();
        conn.ws = None;
        conn.was_blocked = false;
        conn.ack_pending = false;
        self.start_connect(slot, now);
    }

    /// A churner joined again: it picks the schedule up where it is now.
    pub(super) fn rejoined(&mut self, slot: usize, now: u64) {
        self.tally.churn.reconnects += 1;
        if let Some(schedule) = &self.schedule {
            let conn = &mut self.conns[slot];
            let from = conn.next_slot;
            while schedule.in_window(schedule.due(conn.index, conn.next_slot))
                && schedule.due(conn.index, conn.next_slot) < now
            {
                conn.next_slot += 1;
            }
            self.tally.churn.skipped += conn.next_slot - from;
        } else if let Some(plan) = &self.plan {
            // Closed loop: its next message goes now.
            if now >= plan.times.start_us && now < plan.times.send_until_us {
                self.send_closed(slot, now);
            }
        }
    }
}
