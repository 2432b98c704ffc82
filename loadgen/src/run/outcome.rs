//! What an engine thread hands back when its share is over: every connection's end (failed,
//! or joined with the streams it received, dropped or not, churned or not), its counts and
//! histograms, and its CPU. The shard adds the threads up and checks the streams
//! (`shard.rs`).

use super::conn::State;
use super::connect::Failure;
use super::event_loop::EventLoop;
use super::sequence::Streams;
use super::stats::{Recorder, Tally};

/// How a connection ended, for the shard's accounting.
pub(crate) enum Outcome {
    /// It never joined: connect, handshake or join failed.
    Failed(Failure),
    /// It joined (and may have been dropped or churned since).
    Joined {
        /// Per sender, the stream as this connection received it.
        streams: Streams,
        /// Why the connection ended before the run did (server closed it, reset, write error).
        dropped: Option<String>,
        /// Messages it wrote.
        sent: u64,
        /// It churned (`--churn`): what it received is not checked for loss.
        churned: bool,
        /// Its receivers may check its messages against `sent`: false when it left once
        /// without its last message coming back.
        trusted: bool,
    },
}

/// One connection's end.
pub(crate) struct ConnEnd {
    /// The connection's index in the run (its nickname and place in the rooms).
    pub index: u32,
    /// How it ended.
    pub outcome: Outcome,
}

/// What one engine thread hands back.
pub(crate) struct ThreadResult {
    /// The thread's counters (sent, received, connects, drops...).
    pub tally: Tally,
    /// The thread's latency and send-lag histograms.
    pub recorder: Recorder,
    /// Every connection of the thread, and how it ended.
    pub ends: Vec<ConnEnd>,
    /// CPU time this thread used during the measured window.
    pub cpu_ns: u64,
    /// The first reason a churner could not reconnect.
    pub churn_failure_example: Option<String>,
    /// How much of `cpu_ns` was spent spinning (`--spin-us`).
    pub spin_ns: u64,
    /// When its last connection attempt ended (µs on the run's clock).
    pub last_attempt_us: u64,
    /// The scheduler slice the kernel reported after the thread asked for one (µs), or why it
    /// could not; `None`: it did not ask (`--slice-us 0`).
    pub slice: Option<Result<u64, String>>,
}

impl EventLoop {
    /// Closes every socket and hands back what the thread saw.
    pub(super) fn finish(mut self) -> ThreadResult {
        for slot in 0..self.conns.len() {
            self.close(slot);
        }
        let ends = self
            .conns
            .into_iter()
            .map(|conn| {
                // A churner that joined once is in the run whatever state its last reconnect
                // reached; its receipts are counted, not checked.
                let churned = conn.churn.as_ref().map(|c| {
                    let joined_once = c.incarnation > 0
                        || matches!(conn.state, State::Joined | State::Dropped(_));
                    (joined_once, !c.timed_out)
                });
                let outcome = match (conn.state, churned) {
                    (State::Dropped(reason), churned) => Outcome::Joined {
                        streams: conn.streams,
                        dropped: Some(reason),
                        sent: conn.next_seq,
                        churned: churned.is_some(),
                        trusted: churned.is_none_or(|c| c.1),
                    },
                    (State::Joined, churned) | (_, churned @ Some((true, _))) => Outcome::Joined {
                        streams: conn.streams,
                        dropped: None,
                        sent: conn.next_seq,
                        churned: churned.is_some(),
                        trusted: churned.is_none_or(|c| c.1),
                    },
                    (State::Failed(f), _) => Outcome::Failed(f),
                    // The thread only ends after every attempt did.
                    (
                        State::Waiting
                        | State::Connecting { .. }
                        | State::Upgrading { .. }
                        | State::Joining { .. },
                        _,
                    ) => Outcome::Failed(Failure::new("internal", "the attempt never finished")),
                };
                ConnEnd {
                    index: conn.index,
                    outcome,
                }
            })
            .collect();
        // Closed loop recorded each latency once (see `on_frame`).
        if self.shared.config.rate.is_none() {
            self.rec.round_trip_uncorrected = self.rec.round_trip.clone();
            self.rec.fanout_uncorrected = self.rec.fanout.clone();
        }
        ThreadResult {
            tally: self.tally,
            recorder: self.rec,
            ends,
            cpu_ns: self.window.cpu_ns.unwrap_or(0),
            churn_failure_example: self.churn_failure_example,
            spin_ns: self.window.spin_ns,
            last_attempt_us: self.last_attempt_us,
            slice: self.slice,
        }
    }
}
