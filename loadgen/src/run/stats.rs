//! Latency histograms and the counters every connection task updates.
//!
//! Latencies go into HdrHistograms covering 1 µs to 1 hour at 3 significant digits: nothing a
//! run can measure overflows them, and a value outside the range is clamped into it *and
//! counted* (`clamped` in the report), never silently dropped. A histogram at this precision is
//! about 200 KB, too much to give each of 10,000 connections its own, so the connections share a
//! few [`Recorders`] shards behind short-held `std::sync::Mutex`es: a reader task records a whole
//! read's worth of samples under one lock, and never holds it across an `.await`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The smallest latency the histograms resolve, in microseconds (0 is recorded as 1).
const LOWEST_US: u64 = 1;
/// The largest: one hour. Anything above is clamped to it and counted.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds that cannot overflow.
#[derive(Debug, Clone)]
pub(crate) struct Latency {
    hist: Histogram<u64>,
    /// Samples above `HIGHEST_US`, recorded as `HIGHEST_US`.
    clamped: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            hist: Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, 3)
                .expect("constant bounds are valid"),
            clamped: 0,
        }
    }
}

impl Latency {
    /// Records `us`; 0 is recorded as 1 µs (below the resolution, not an error), anything above
    /// an hour as an hour, and counted.
    pub(crate) fn record(&mut self, us: u64) {
        if us > HIGHEST_US {
            self.clamped += 1;
        }
        self.hist.saturating_record(us.clamp(LOWEST_US, HIGHEST_US));
    }

    pub(crate) fn merge(&mut self, other: &Latency) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.clamped += other.clamped;
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
            clamped: self.clamped,
        }
    }
}

/// Percentiles of one latency distribution, all in microseconds (the JSON report's shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// Samples above one hour, recorded as one hour (0 µs is recorded as 1 µs, uncounted).
    pub clamped: u64,
}

/// Every latency distribution of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder {
    /// Sender's own acknowledgement, from the intended send time (coordinated-omission corrected).
    pub round_trip: Latency,
    /// The same, from the moment the message was really written (what naive tools report).
    pub round_trip_uncorrected: Latency,
    /// Delivery to another member of the room, from the intended send time.
    pub fanout: Latency,
    pub fanout_uncorrected: Latency,
    /// How late the generator wrote a message compared with its schedule (open loop).
    pub send_lag: Latency,
    /// TCP connect.
    pub connect: Latency,
    /// From the start of the TCP connect until the server's `welcome` (or Redis' reply).
    pub join: Latency,
    /// `error` frames received, by code.
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub(crate) fn merge(&mut self, other: &Recorder) {
        self.round_trip.merge(&other.round_trip);
        self.round_trip_uncorrected
            .merge(&other.round_trip_uncorrected);
        self.fanout.merge(&other.fanout);
        self.fanout_uncorrected.merge(&other.fanout_uncorrected);
        self.send_lag.merge(&other.send_lag);
        self.connect.merge(&other.connect);
        self.join.merge(&other.join);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }
}

/// A few [`Recorder`]s; connection `i` uses shard `i % len`.
pub(crate) struct Recorders {
    shards: Vec<Mutex<Recorder>>,
}

impl Recorders {
    pub(crate) fn new(shards: usize) -> Recorders {
        Recorders {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Recorder::default()))
                .collect(),
        }
    }

    /// The shard of connection `conn`. A panic elsewhere does not poison the statistics.
    pub(crate) fn shard(&self, conn: usize) -> MutexGuard<'_, Recorder> {
        self.shards[conn % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn merged(&self) -> Recorder {
        let mut total = Recorder::default();
        for shard in &self.shards {
            total.merge(&shard.lock().unwrap_or_else(|e| e.into_inner()));
        }
        total
    }
}

/// Counters the progress line reads while the run goes on (relaxed atomics: they are
/// statistics, not synchronisation).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Connection attempts finished, successfully or not.
    pub attempts_done: AtomicU64,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    /// Messages written, all of them / those whose intended time is in the measured window.
    pub sent: AtomicU64,
    pub sent_measured: AtomicU64,
    /// Sender's own acknowledgements received, all / measured.
    pub acked: AtomicU64,
    pub acked_measured: AtomicU64,
    /// Deliveries to other members, all / measured.
    pub delivered: AtomicU64,
    pub delivered_measured: AtomicU64,
    /// Acknowledgements plus deliveries the messages sent so far should produce.
    pub expected: AtomicU64,
    /// Messages the open-loop schedule wanted written in the measured window but the
    /// generator did not get out before the window ended.
    pub unsent_measured: AtomicU64,
    /// Frames that were not the protocol, or not the generator's own ids.
    pub unparsed: AtomicU64,
    /// Joined connections that the server closed (or reset) before the end.
    pub dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values outside the range are clamped and counted, never lost or panicking.
    #[test]
    fn clamps_and_counts() {
        let mut l = Latency::default();
        l.record(0);
        l.record(500);
        l.record(u64::MAX);
        let s = l.summary();
        assert_eq!(s.count, 3);
        assert_eq!(s.clamped, 1);
        assert!(s.max >= HIGHEST_US);
        assert_eq!(s.min, 1);
    }
}
