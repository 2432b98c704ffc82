//! One connection's life: open it, wait for the start signal, then send on schedule and read
//! everything that arrives, until told to stop.
//!
//! The sending half is in `sender.rs`, the reading half in `receiver.rs`. They run as two
//! futures of one task (`tokio::join!`), so reading never waits for a write (a generator that
//! stops reading while the server stalls would be measuring itself), and both socket halves
//! stay open until the end: dropping the write half early would send a FIN, and the server
//! would hang up before the last deliveries arrive.

use super::codec::Codec;
use super::connect::{self, Dial, Failure};
use super::receiver::read_loop;
use super::sender::send_loop;
use super::sequence::StreamCheck;
use super::stats::{Counters, Recorders};
use super::workload::{Clock, Layout, Membership};
use super::Workload;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// What every connection task shares (read-only but for the atomics and recorders).
pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub codec: Codec,
    pub workload: Workload,
    /// Messages per second per connection; `None` is closed loop.
    pub rate: Option<f64>,
    pub connect_timeout: Duration,
    pub layout: Layout,
    pub clock: Clock,
    /// The `content` of every message.
    pub padding: String,
    /// Source addresses to spread over (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    pub counters: Counters,
    pub recorders: Recorders,
    /// Which connections joined (read by the engine to plan the rooms).
    pub joined: Vec<AtomicBool>,
    /// Messages each connection has written (for the loss check's tails).
    pub sent: Vec<AtomicU64>,
}

/// The schedule, published once every connection attempt has finished.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Clock time of the first send (the start of the warm-up).
    pub start_us: u64,
    /// Measuring starts here (after the warm-up)…
    pub measure_from_us: u64,
    /// …and sending ends here.
    pub send_until_us: u64,
    pub membership: Membership,
}

impl Plan {
    /// Whether a message meant to be sent at `intended_us` counts in the statistics.
    pub(crate) fn measured(&self, intended_us: u64) -> bool {
        (self.measure_from_us..self.send_until_us).contains(&intended_us)
    }

    /// Frames (acknowledgement plus deliveries) one message of `conn` should produce.
    pub(crate) fn copies_per_message(&self, shared: &Shared, conn: u32) -> u64 {
        match shared.workload {
            Workload::Chat => self.membership.room_members(&shared.layout, conn).len() as u64,
            Workload::Private => 2,
            Workload::Ping => 1,
            Workload::Idle => 0,
        }
    }
}

/// How a connection ended.
pub(crate) enum Outcome {
    Failed(Failure),
    Joined {
        conn: u32,
        /// Per sender, the stream as this connection received it.
        streams: HashMap<u32, StreamCheck>,
        /// Why the connection ended before the run did (server closed it, reset, write error).
        dropped: Option<String>,
    },
}

pub(crate) async fn connection(
    shared: Arc<Shared>,
    conn: u32,
    mut plan: watch::Receiver<Option<Arc<Plan>>>,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let index = conn as usize;
    let layout = &shared.layout;
    let nickname = layout.nickname(index);
    let room = layout.room_name(layout.room_of(index));
    let dial = Dial {
        addr: shared.addr,
        source: (!shared.sources.is_empty()).then(|| shared.sources[index % shared.sources.len()]),
        codec: shared.codec,
        nickname: &nickname,
        room: &room,
        timeout: shared.connect_timeout,
        clock: shared.clock,
    };
    let counters = &shared.counters;
    let attempt = Attempt {
        counters,
        counted: false,
    };
    let mut opened = match connect::open(&dial).await {
        Ok(opened) => opened,
        Err(failure) => {
            attempt.finish(false);
            return Outcome::Failed(failure);
        }
    };
    {
        let mut rec = shared.recorders.shard(index);
        rec.connect.record(opened.connect_us);
        rec.join.record(opened.join_us);
    }
    shared.joined[index].store(true, Ordering::Relaxed);
    attempt.finish(true);

    // Wait for the schedule (every attempt finished). Meanwhile the server may send a few
    // `joined` notices; they wait in the socket buffer.
    let plan = match plan.wait_for(Option::is_some).await {
        Ok(plan) => plan.clone().expect("waited for Some"),
        Err(_) => {
            return Outcome::Joined {
                conn,
                streams: HashMap::new(),
                dropped: None,
            }
        }
    };
    let ack = Notify::new();
    let (read_half, write_half) = opened.stream.split();
    let reading = read_loop(
        &shared,
        &plan,
        conn,
        read_half,
        (&mut opened.leftover, std::mem::take(&mut opened.pending)),
        &ack,
        stop.clone(),
    );
    let sending = until_stopped(stop, send_loop(&shared, &plan, conn, write_half, &ack));
    let ((streams, read_end), send_end) = tokio::join!(reading, sending);
    let dropped = read_end.or(send_end.flatten());
    if dropped.is_some() {
        Counters::add(&counters.dropped, 1);
    }
    Outcome::Joined {
        conn,
        streams,
        dropped,
    }
}

/// Runs `fut` until it ends or the run is stopped (a write blocked on a stalled server must not
/// keep the run waiting).
async fn until_stopped<T>(
    mut stop: watch::Receiver<bool>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        out = fut => Some(out),
        _ = stop.wait_for(|s| *s) => None,
    }
}

/// Counts a connection attempt as finished exactly once, also if its task panics: the engine
/// waits for every attempt before it starts the clock.
struct Attempt<'a> {
    counters: &'a Counters,
    counted: bool,
}

impl Attempt<'_> {
    fn finish(mut self, joined: bool) {
        self.count(joined);
    }

    fn count(&mut self, joined: bool) {
        if !self.counted {
            self.counted = true;
            let c = self.counters;
            Counters::add(if joined { &c.connected } else { &c.failed }, 1);
            Counters::add(&c.attempts_done, 1);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.count(false);
    }
}
