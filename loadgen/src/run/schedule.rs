//! The open-loop schedule (wrk2's discipline): message `k` of connection `c` is due at
//! `start + phase(c) + k / rate`, whatever happened to the previous ones, with the phases
//! spread evenly over one interval by connection index (`phase(c) = c / conns` of an
//! interval), so no two connections of the whole run, in whatever process, are due together.
//!
//! One thread's senders, taken in index order, are then also in due order, round after round.
//! So the thread needs no timer per connection and no heap: [`Schedule`] is a ring with a
//! cursor, and the next due message is always the one under the cursor.

use std::ops::Range;

/// The schedule of one engine thread's senders.
#[derive(Debug)]
pub(crate) struct Schedule {
    /// When round 0 of connection 0 is due.
    start_us: u64,
    /// Nothing due at or after this is sent.
    until_us: u64,
    /// Microseconds between two messages of one connection.
    interval_us: f64,
    /// Phase difference between consecutive connection indices: `interval / conns`.
    step_us: f64,
    /// The senders as (slot in the thread's connection list, connection index), in index order.
    ring: Vec<(usize, u32)>,
    /// The cursor: ring position and round.
    pos: usize,
    round: u64,
}

impl Schedule {
    /// `rate` messages per second per connection for `conns` connections in the whole run,
    /// sending during `window` (µs on the run's clock).
    pub(crate) fn new(
        window: Range<u64>,
        rate: f64,
        conns: usize,
        ring: Vec<(usize, u32)>,
    ) -> Schedule {
        let interval_us = 1e6 / rate;
        Schedule {
            start_us: window.start,
            until_us: window.end,
            interval_us,
            step_us: interval_us / conns.max(1) as f64,
            ring,
            pos: 0,
            round: 0,
        }
    }

    /// When message `seq` of connection `index` is due.
    pub(crate) fn due(&self, index: u32, seq: u64) -> u64 {
        self.start_us + (index as f64 * self.step_us + seq as f64 * self.interval_us) as u64
    }

    /// Whether a message due at `due_us` is sent at all.
    pub(crate) fn in_window(&self, due_us: u64) -> bool {
        due_us < self.until_us
    }

    /// The due time under the cursor, or `None` when every message of the window is past it.
    pub(crate) fn next_due(&self) -> Option<u64> {
        let &(_, index) = self.ring.get(self.pos)?;
        let due = self.due(index, self.round);
        self.in_window(due).then_some(due)
    }

    /// The slot under the cursor if its message is due by `now`, moving the cursor on.
    pub(crate) fn pop_due(&mut self, now_us: u64) -> Option<usize> {
        if self.next_due()? > now_us {
            return None;
        }
        let (slot, _) = self.ring[self.pos];
        self.pos += 1;
        if self.pos == self.ring.len() {
            self.pos = 0;
            self.round += 1;
        }
        Some(slot)
    }

    /// Messages of connection `index` from `from_seq` on that were due in the window, and how
    /// many of them were due at or after `measure_from_us`: what it never sent.
    pub(crate) fn remaining(&self, index: u32, from_seq: u64, measure_from_us: u64) -> (u64, u64) {
        let (mut all, mut measured) = (0, 0);
        let mut seq = from_seq;
        loop {
            let due = self.due(index, seq);
            if !self.in_window(due) {
                return (all, measured);
            }
            all += 1;
            if due >= measure_from_us {
                measured += 1;
            }
            seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cursor visits the senders in due order, round after round, and stops at the end of
    /// the window; what was never popped is counted as remaining.
    #[test]
    fn ring_in_due_order() {
        // 4 connections in the run, 2 msg/s: an interval of 500 ms, phases 125 ms apart; this
        // thread holds connections 1 and 3 (slots 0 and 1).
        let mut s = Schedule::new(1_000..2_100_000, 2.0, 4, vec![(0, 1), (1, 3)]);
        assert_eq!(s.next_due(), Some(1_000 + 125_000));
        assert_eq!(s.pop_due(1_000), None);
        let mut popped = Vec::new();
        let mut now = 0;
        while let Some(due) = s.next_due() {
            now = now.max(due);
            popped.push((s.pop_due(now).expect("due"), due));
        }
        let dues: Vec<u64> = popped.iter().map(|p| p.1).collect();
        assert_eq!(
            dues,
            vec![126_000, 376_000, 626_000, 876_000, 1_126_000, 1_376_000, 1_626_000, 1_876_000]
        );
        assert!(popped.iter().step_by(2).all(|p| p.0 == 0));
        assert_eq!(s.remaining(3, 2, 1_000_000), (2, 2));
        assert_eq!(s.remaining(1, 0, 1_000_000), (4, 2));
        assert_eq!(s.remaining(1, 9, 0), (0, 0));
    }

    /// With nobody to send, nothing is ever due.
    #[test]
    fn empty_ring() {
        let mut s = Schedule::new(0..1_000_000, 1.0, 10, Vec::new());
        assert_eq!(s.next_due(), None);
        assert_eq!(s.pop_due(u64::MAX), None);
    }
}
