//! The loop's timer: one timeout operation in the ring, at the earliest deadline.
//!
//! chat-epoll passes a timeout to `epoll_wait`. Here waiting is `io_uring_enter` asking for one
//! completion, so time passing must itself be a completion: a `IORING_OP_TIMEOUT` submission
//! completes (with `-ETIME`) when its time is up, and that wakes the loop like any other
//! completion. One timeout serves every deadline of the loop: the Hub's next idle deadline
//! ([`Hub::tick`](chat_core::Hub::tick) says when), the first lingering close, the shutdown.
//!
//! The kernel keeps the timeout, so it is set once and left alone while the earliest deadline
//! stays the same or moves later (it then fires early: the loop finds nothing due and sets the
//! next). Only when a deadline appears *earlier* than the one set do we move it, with
//! `IORING_TIMEOUT_UPDATE` (`opcode::TimeoutUpdate`), which completes only if it fails
//! (`IOSQE_CQE_SKIP_SUCCESS`): no completion, no wake-up, for a successful move.
//!
//! Why not a timeout per connection, linked to its receive (`IORING_OP_LINK_TIMEOUT`, which
//! cancels the receive if no data comes in time)? Three reasons. Activity is a *complete line*
//! (PROTOCOL.md, "Activity"), which only the Hub sees, not the kernel: bytes of a dribbled line
//! must not push the deadline back. A multishot receive is one operation for the connection's
//! whole life, and a linked timeout bounds that whole operation, not the gap between two
//! chunks. And 10,000 connections would mean 10,000 timers in the kernel, each one cancelled
//! and set again on every message, against one timer for all of them. Linked timeouts serve
//! where one operation must wait a fixed time: the pause in front of a re-armed accept
//! (`Server::resume_accepting`).

use crate::token::Token;
use io_uring::{opcode, squeue, types};
use std::time::{Duration, Instant};

/// The timer the loop keeps in the ring.
#[derive(Debug)]
pub struct LoopTimer {
    /// The duration the kernel reads when it takes the submission (`Timeout` and
    /// `TimeoutUpdate` both copy it then). Boxed: it must be at a stable address until the
    /// submission has been handed over, whatever happens to the struct around it.
    spec: Box<types::Timespec>,
    /// The deadline of the timeout the kernel holds now; `None` when none is set.
    armed: Option<Instant>,
}

impl LoopTimer {
    pub fn new() -> LoopTimer {
        LoopTimer {
            spec: Box::new(types::Timespec::new()),
            armed: None,
        }
    }

    /// The submission that makes the kernel's timer fire `timeout` after `now` (`None`: no
    /// deadline): a new timeout if none is set, a move if the deadline is earlier than the one
    /// set, nothing otherwise.
    pub fn set(&mut self, timeout: Option<Duration>, now: Instant) -> Option<squeue::Entry> {
        let timeout = timeout?;
        let deadline = now + timeout;
        if self.armed.is_some_and(|armed| armed <= deadline) {
            return None;
        }
        // A relative timeout: the submission leaves within this turn.
        *self.spec = types::Timespec::from(timeout);
        let entry = match self.armed {
            None => opcode::Timeout::new(&*self.spec)
                .build()
                .user_data(Token::Timer.encode()),
            Some(_) => opcode::TimeoutUpdate::new(Token::Timer.encode(), &*self.spec)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(Token::TimerUpdate.encode()),
        };
        self.armed = Some(deadline);
        Some(entry)
    }

    /// The timeout completed: it fired (`-ETIME`) or was removed. None is set any more.
    pub fn on_fired(&mut self) {
        self.armed = None;
    }

    /// A move failed, most likely because the timeout had fired already (its completion is on
    /// its way). Set a new one next turn.
    pub fn on_update_failed(&mut self) {
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_once_and_moves_only_earlier() {
        let mut timer = LoopTimer::new();
        let now = Instant::now();
        let secs = |s| Some(Duration::from_secs(s));
        assert!(timer.set(None, now).is_none());
        let first = timer.set(secs(5), now);
        assert!(first.is_some_and(|e| e.get_user_data() == Token::Timer.encode()));
        assert!(timer.set(secs(9), now).is_none());
        let moved = timer.set(secs(1), now);
        assert!(moved.is_some_and(|e| e.get_user_data() == Token::TimerUpdate.encode()));
        timer.on_fired();
        let again = timer.set(secs(9), now);
        assert!(again.is_some_and(|e| e.get_user_data() == Token::Timer.encode()));
    }
}
