//! Timers as the event loops use them: a loop sleeps in one system call whose timeout is the
//! earliest of its deadlines, and that timeout is given to the kernel in whole milliseconds.

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

#[cfg(test)]
mod tests {
    use super::*;

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
