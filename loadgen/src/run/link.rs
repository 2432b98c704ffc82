//! What the parent and a shard (one process's share of the run) say to each other.
//!
//! The same messages serve both kinds of shard: one on threads of the parent's own process
//! (through channels), and one in a worker process (as JSON lines on the worker's stdin and
//! stdout, see `worker.rs`). The conversation:
//!
//! ```text
//! parent                                   shard
//!   ── spec (its rooms, the clock base) ──▶
//!                                     ◀── Ready        (descriptors raised, threads ready)
//!   ── Ramp { at_us } ──────────────────▶               (every shard ramps on one timeline)
//!                                     ◀── Progress …   (every 200 ms, for the progress line)
//!                                     ◀── Connected    (every attempt finished)
//!   ── Plan { start, measure, until, drain } ──▶        (once every shard is connected)
//!                                     ◀── Done(result) (counts, histograms, loss checks)
//! ```

use super::args::RunConfig;
use super::merge::ShardResult;
use super::stats::Snapshot;
use super::workload::{Clock, Layout};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::ops::Range;

/// Everything one shard needs to run its share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShardSpec {
    /// Its number, for messages and for choosing its source addresses.
    pub index: usize,
    pub config: RunConfig,
    /// The run's rooms and names (the same in every shard).
    pub layout: Layout,
    /// Its rooms: whole rooms only, so that every sender's receivers are in the same process
    /// and the loss and order checks stay local.
    pub rooms: Range<usize>,
    /// The run's clock, shared by every process.
    pub clock: Clock,
    /// Source addresses to bind before connecting (empty: the kernel chooses). Each shard has
    /// its own, so shards never compete for the same ephemeral ports.
    pub sources: Vec<IpAddr>,
    /// Engine threads.
    pub threads: usize,
}

/// The schedule every shard follows, in µs on the run's clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlanTimes {
    /// The first message (the warm-up starts).
    pub start_us: u64,
    /// The measured window starts…
    pub measure_from_us: u64,
    /// …and sending ends.
    pub send_until_us: u64,
    /// Waiting for the last copies ends here at the latest.
    pub drain_until_us: u64,
}

/// Parent to shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Command {
    /// Start connecting: connection `i` at `at_us + i / connect_rate`.
    Ramp { at_us: u64 },
    /// Every shard has connected: run this schedule.
    Plan(PlanTimes),
}

/// Shard to parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    /// Ready to ramp.
    Ready,
    /// Counters for the progress line.
    Progress(Snapshot),
    /// Every connection attempt has finished.
    Connected { connected: u64, failed: u64 },
    /// The shard's results.
    Done(Box<ShardResult>),
    /// The shard could not run (with the reason); the run fails.
    Failed(String),
}
