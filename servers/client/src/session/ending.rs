//! Leaving the chat: `/quit`, and the end of input.
//!
//! At the end of a piped script the client must not just exit: the server may not have
//! answered (and we may not have printed) the last lines yet. So it sends one more `ping` with
//! a unique id. Replies come in request order (`PROTOCOL.md`, guarantee 1), so when its `pong`
//! arrives, everything sent before has been answered. Then it sends `quit` and exits 0 at the
//! server's `bye`.

use super::{Exit, Flow, Link, Session};
use crate::render::problem;
use chat_core::Request;
use chrono::Local;
use std::time::{Duration, Instant};

/// After the end of input: how long to wait for the replies to what was sent.
const DRAIN_WAIT: Duration = Duration::from_secs(10);
/// After `quit`: how long to wait for `bye` before leaving anyway.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// How the session is winding down, if it is.
pub(super) enum Ending {
    Running,
    /// Input ended: a `ping` with [`Session::drain_id`] follows everything sent, and its `pong`
    /// proves the server has answered all of it. Then we quit.
    Draining {
        /// Whether that ping went out on the current connection (a lost one loses it).
        ping_sent: bool,
        /// Give up waiting at this time (set while a ping is outstanding).
        deadline: Option<Instant>,
    },
    /// `quit` was sent: leave at `bye`, at the connection's end, or at the deadline.
    Quitting {
        deadline: Instant,
    },
}

impl Session {
    /// End of input: make sure the server answered everything, then quit (see [`Ending`]).
    pub(super) fn on_input_closed(&mut self) -> Flow {
        if !matches!(self.ending, Ending::Running) {
            return Ok(());
        }
        self.ending = Ending::Draining {
            ping_sent: false,
            deadline: None,
        };
        self.send_drain_ping()
    }

    /// Leave: `quit` now if connected (then wait for `bye`), else exit at once.
    pub(super) fn quit(&mut self) -> Flow {
        if !matches!(self.link, Link::Up { .. }) {
            return Err(Exit(0));
        }
        self.ending = Ending::Quitting {
            deadline: Instant::now() + QUIT_WAIT,
        };
        self.send(&Request::Quit)
    }

    /// Sends the end-of-input ping now if joined (else [`resume_draining`](Self::resume_draining)
    /// sends it after the next `welcome`), and starts the wait for its `pong`.
    fn send_drain_ping(&mut self) -> Flow {
        if !matches!(self.link, Link::Up { joined: true, .. }) {
            return Ok(());
        }
        self.ending = Ending::Draining {
            ping_sent: true,
            deadline: Some(Instant::now() + DRAIN_WAIT),
        };
        self.send(&Request::Ping {
            id: Some(self.drain_id.clone()),
        })
    }

    /// After a `welcome`: send the end-of-input ping if input ended before it could go out
    /// (ended before the first `welcome`, or the connection carrying it was lost).
    pub(super) fn resume_draining(&mut self) -> Flow {
        if matches!(
            self.ending,
            Ending::Draining {
                ping_sent: false,
                ..
            }
        ) {
            self.send_drain_ping()?;
        }
        Ok(())
    }

    /// A lost connection takes the ping with it: send it again after the re-join.
    pub(super) fn forget_drain_ping(&mut self) {
        if let Ending::Draining { .. } = self.ending {
            self.ending = Ending::Draining {
                ping_sent: false,
                deadline: None,
            };
        }
    }

    pub(super) fn is_quitting(&self) -> bool {
        matches!(self.ending, Ending::Quitting { .. })
    }

    /// When the current way of ending times out, if it can.
    pub(super) fn ending_deadline(&self) -> Option<Instant> {
        match self.ending {
            Ending::Running => None,
            Ending::Draining { deadline, .. } => deadline,
            Ending::Quitting { deadline } => Some(deadline),
        }
    }

    /// Stops the session if it has waited long enough for `bye` (exit 0: we are leaving
    /// anyway) or for the last replies (exit 1: the server did not answer everything).
    pub(super) fn check_ending_deadline(&mut self, now: Instant) -> Flow {
        match self.ending {
            Ending::Quitting { deadline } if now >= deadline => Err(Exit(0)),
            Ending::Draining {
                deadline: Some(deadline),
                ..
            } if now >= deadline => {
                self.show(&problem(
                    &format!(
                        "no reply from the server within {} s after the end of input",
                        DRAIN_WAIT.as_secs()
                    ),
                    &Local::now(),
                ));
                Err(Exit(1))
            }
            _ => Ok(()),
        }
    }
}
