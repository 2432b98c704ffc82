//! Timers as the event loops use them: a loop sleeps in one system call whose timeout is the
//! earliest of its deadlines, and that timeout is given to the kernel in whole milliseconds; the
//! deadlines of closing connections wait in a [`LingerQueue`].

use crate::net::CLOSE_LINGER;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a loop may sleep at `now`: until the earliest of `deadlines` (`None`: no deadline,
/// sleep until an event).
pub fn until_earliest(
    now: Instant,
    deadlines: impl IntoIterator<Item = Option<Instant>>,
) -> Option<Duration> {
    deadlines
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(now))
}

/// A timeout for poll(2), select(2)'s caller or epoll_wait(2), in whole milliseconds, rounded
/// *up*: rounding down would wake the loop just before the deadline, find nothing due, and go
/// round again with a zero timeout (a busy loop). `None` is -1: wait forever.
pub fn millis(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Connections being closed, each with the moment it is dropped anyway: [`CLOSE_LINGER`] after
/// its close began, long enough to read its last frames and hang up. Every close gets the same
/// delay, so the queue is in deadline order: a FIFO is a timer queue here, with no heap.
#[derive(Debug)]
pub struct LingerQueue<K> {
    /// `(deadline, connection)`, earliest first.
    queue: VecDeque<(Instant, K)>,
}

impl<K: Copy> Default for LingerQueue<K> {
    fn default() -> Self {
        LingerQueue {
            queue: VecDeque::new(),
        }
    }
}

impl<K: Copy> LingerQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `conn` began closing at `now`.
    pub fn push(&mut self, conn: K, now: Instant) {
        self.queue.push_back((now + CLOSE_LINGER, conn));
    }

    /// When the first close is due (a deadline for the loop's timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.front().map(|&(deadline, _)| deadline)
    }

    /// The next connection whose close is due at `now`, taken off the queue, or `None`. The
    /// caller drops it if it is still closing (it may have finished, or gone, meanwhile).
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        match self.queue.front() {
            Some(&(deadline, conn)) if deadline <= now => {
                self.queue.pop_front();
                Some(conn)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_fall_due_in_order_after_the_linger() {
        let start = Instant::now();
        let mut lingering = LingerQueue::new();
        lingering.push(1, start);
        lingering.push(2, start + Duration::from_millis(10));
        assert_eq!(lingering.next_deadline(), Some(start + CLOSE_LINGER));
        assert_eq!(lingering.pop_due(start), None);
        let later = start + CLOSE_LINGER + Duration::from_millis(5);
        assert_eq!(lingering.pop_due(later), Some(1));
        assert_eq!(lingering.pop_due(later), None, "2 is due 5 ms later");
        assert_eq!(lingering.pop_due(later + Duration::from_millis(5)), Some(2));
        assert_eq!(lingering.next_deadline(), None);
    }

    #[test]
    fn millis_round_up_and_saturate() {
        assert_eq!(millis(None), -1);
        assert_eq!(millis(Some(Duration::ZERO)), 0);
        assert_eq!(millis(Some(Duration::from_micros(1))), 1);
        assert_eq!(millis(Some(Duration::from_micros(1500))), 2);
        assert_eq!(
            millis(Some(Duration::from_secs(u64::MAX))),
            libc::c_int::MAX
        );
    }

    #[test]
    fn the_earliest_deadline_wins() {
        let now = Instant::now();
        let later = |ms| Some(now + Duration::from_millis(ms));
        assert_eq!(until_earliest(now, [None, None]), None);
        assert_eq!(
            until_earliest(now, [later(30), None, later(10)]),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            until_earliest(now + Duration::from_secs(1), [later(10)]),
            Some(Duration::ZERO)
        );
    }
}
