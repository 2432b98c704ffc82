//! Latency histograms and counters: what each engine thread records, and how the pieces of a
//! run add up into one.
//!
//! Latencies go into HdrHistograms covering 1 µs to 1 hour at 3 significant digits: nothing a
//! run can measure overflows them, and a value outside the range is clamped into it *and
//! counted* (`clamped` in the report), never silently dropped. Each engine thread owns its own
//! [`Recorder`] (no lock on the path of a message) and its own [`Tally`] of counts; at the end
//! the threads' recorders are merged, and a worker process sends its merged recorder to the
//! parent in HdrHistogram's V2 format (base64 inside a JSON line). Adding histograms is exact:
//! percentiles of the merged histogram are those of all the samples together, which averaging
//! per-process percentiles would not be.
//!
//! [`Live`] is the other kind of counter: a few atomics that the threads bump once per loop
//! turn, for the progress line and for knowing when every copy has arrived.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The smallest latency the histograms resolve, in microseconds (0 is recorded as 1).
const LOWEST_US: u64 = 1;
/// The largest: one hour. Anything above is clamped to it and counted.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds that cannot overflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "LatencyWire", into = "LatencyWire")]
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
        // Both have the same bounds (a deserialized one is checked), so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.clamped += other.clamped;
    }

    /// How many samples lie above `us` (whole buckets of the histogram: three significant
    /// digits).
    pub(crate) fn count_above(&self, us: u64) -> u64 {
        self.hist
            .iter_recorded()
            .filter(|v| self.hist.lowest_equivalent(v.value_iterated_to()) > us)
            .map(|v| v.count_at_value())
            .sum()
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

/// A [`Latency`] as it travels between processes.
#[derive(Serialize, Deserialize)]
struct LatencyWire {
    clamped: u64,
    /// The histogram in HdrHistogram's V2 encoding, base64.
    v2: String,
}

impl From<Latency> for LatencyWire {
    fn from(latency: Latency) -> LatencyWire {
        let mut bytes = Vec::new();
        // Serializing into memory fails only on a histogram too large to encode, which ours
        // (fixed bounds) never is; an empty string would then read back as an error.
        let _ = V2Serializer::new().serialize(&latency.hist, &mut bytes);
        LatencyWire {
            clamped: latency.clamped,
            v2: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

impl TryFrom<LatencyWire> for Latency {
    type Error = String;

    fn try_from(wire: LatencyWire) -> Result<Latency, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(wire.v2)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        let hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| format!("histogram is not V2: {e:?}"))?;
        let mut latency = Latency {
            clamped: wire.clamped,
            ..Latency::default()
        };
        // Adding checks the ranges: a histogram with other bounds is refused, not misread.
        latency
            .hist
            .add(&hist)
            .map_err(|e| format!("histogram out of range: {e:?}"))?;
        Ok(latency)
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

/// Every latency distribution of a run (or of one thread's share of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Recorder {
    /// Sender's own acknowledgement, from the intended send time (coordinated-omission corrected).
    pub round_trip: Latency,
    /// The same, from the moment the message was really written (what naive tools report).
    pub round_trip_uncorrected: Latency,
    /// Delivery to another member of the room, from the intended send time.
    pub fanout: Latency,
    pub fanout_uncorrected: Latency,
    /// Deliveries whose sender and receiver talk to different servers (`--addr A,B`): what
    /// crossing between the nodes of a cluster costs. Empty with one server.
    pub fanout_cross: Latency,
    /// How late the generator wrote a message compared with its schedule (open loop), for
    /// messages whose socket could take them (a full socket is the server's doing).
    pub send_lag: Latency,
    /// TCP connect.
    pub connect: Latency,
    /// From the start of the TCP connect until the server's `welcome` (or Redis' reply).
    pub join: Latency,
    /// The same for the reconnects of churning connections (`--churn`).
    #[serde(default)]
    pub churn_rejoin: Latency,
    /// `error` frames received, by code.
    pub errors: BTreeMap<String, u64>,
    /// Per server address, in `--addr` order.
    pub per_addr: Vec<AddrRecorder>,
}

/// The latencies of one server address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AddrRecorder {
    /// Round trips of the senders connected to this address (corrected).
    pub round_trip: Latency,
    /// Deliveries to the receivers connected to this address (corrected).
    pub fanout: Latency,
}

impl Recorder {
    pub(crate) fn new(addrs: usize) -> Recorder {
        Recorder {
            per_addr: vec![AddrRecorder::default(); addrs],
            ..Recorder::default()
        }
    }

    pub(crate) fn merge(&mut self, other: &Recorder) {
        self.round_trip.merge(&other.round_trip);
        self.round_trip_uncorrected
            .merge(&other.round_trip_uncorrected);
        self.fanout.merge(&other.fanout);
        self.fanout_uncorrected.merge(&other.fanout_uncorrected);
        self.fanout_cross.merge(&other.fanout_cross);
        self.send_lag.merge(&other.send_lag);
        self.connect.merge(&other.connect);
        self.join.merge(&other.join);
        self.churn_rejoin.merge(&other.churn_rejoin);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        if self.per_addr.len() < other.per_addr.len() {
            self.per_addr
                .resize(other.per_addr.len(), AddrRecorder::default());
        }
        for (mine, theirs) in self.per_addr.iter_mut().zip(&other.per_addr) {
            mine.round_trip.merge(&theirs.round_trip);
            mine.fanout.merge(&theirs.fanout);
        }
    }
}

/// Counts of one thread, process or run. "Measured" counts cover messages whose intended send
/// time lies in the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tally {
    /// Connections tried, joined, failed; joined ones the server closed before the end.
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Messages written, all of them / those due in the measured window.
    pub sent: u64,
    pub sent_measured: u64,
    /// Messages of the measured window the schedule wanted written but that never were:
    /// all of them, and those held back because the connection's socket was full (the server
    /// was not reading).
    pub unsent_measured: u64,
    pub unsent_blocked: u64,
    /// Messages written late because their socket was full when they were due.
    pub blocked: u64,
    /// Sender's own acknowledgements received, all / measured.
    pub acked: u64,
    pub acked_measured: u64,
    /// Deliveries to other members, all / measured.
    pub delivered: u64,
    pub delivered_measured: u64,
    /// Acknowledgements plus deliveries the messages sent should produce.
    pub expected: u64,
    /// Frames that were not the protocol, or not the generator's own ids.
    pub unparsed: u64,
    /// What the churning connections did (`--churn`).
    #[serde(default)]
    pub churn: ChurnTally,
    /// Per server address, in `--addr` order.
    pub per_addr: Vec<AddrTally>,
}

/// The counts of `--churn` (see `churn.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChurnTally {
    /// Churners that closed (after their last message came back, or after giving up on it),
    /// and reconnects that joined again.
    pub closes: u64,
    pub reconnects: u64,
    /// Reconnects that failed (refused, timed out, `server_full`…).
    pub failed: u64,
    /// Churners that gave up waiting for their last message before closing.
    pub ack_timeouts: u64,
    /// Turns a churner missed because it was still on its way out or back.
    pub busy: u64,
    /// Messages the churners sent, and the schedule's messages they skipped while away.
    pub sent: u64,
    pub skipped: u64,
    /// Copies of other members' messages the churners received (counted, not checked).
    pub received: u64,
}

impl ChurnTally {
    fn add(&mut self, o: &ChurnTally) {
        self.closes += o.closes;
        self.reconnects += o.reconnects;
        self.failed += o.failed;
        self.ack_timeouts += o.ack_timeouts;
        self.busy += o.busy;
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.received += o.received;
    }
}

/// The counts of one server address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AddrTally {
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Measured messages sent by its connections, and acknowledged to them.
    pub sent_measured: u64,
    pub acked_measured: u64,
    /// Measured deliveries its connections received.
    pub delivered_measured: u64,
}

impl Tally {
    pub(crate) fn new(addrs: usize) -> Tally {
        Tally {
            per_addr: vec![AddrTally::default(); addrs],
            ..Tally::default()
        }
    }

    pub(crate) fn add(&mut self, o: &Tally) {
        self.attempted += o.attempted;
        self.connected += o.connected;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.sent += o.sent;
        self.sent_measured += o.sent_measured;
        self.unsent_measured += o.unsent_measured;
        self.unsent_blocked += o.unsent_blocked;
        self.blocked += o.blocked;
        self.acked += o.acked;
        self.acked_measured += o.acked_measured;
        self.delivered += o.delivered;
        self.delivered_measured += o.delivered_measured;
        self.expected += o.expected;
        self.unparsed += o.unparsed;
        self.churn.add(&o.churn);
        if self.per_addr.len() < o.per_addr.len() {
            self.per_addr.resize(o.per_addr.len(), AddrTally::default());
        }
        for (mine, theirs) in self.per_addr.iter_mut().zip(&o.per_addr) {
            mine.attempted += theirs.attempted;
            mine.connected += theirs.connected;
            mine.failed += theirs.failed;
            mine.dropped += theirs.dropped;
            mine.sent_measured += theirs.sent_measured;
            mine.acked_measured += theirs.acked_measured;
            mine.delivered_measured += theirs.delivered_measured;
        }
    }
}

/// Counters shared by the threads of one process while the run goes on (relaxed atomics: they
/// are statistics and a stop condition, not synchronisation of data).
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Connection attempts finished, successfully or not.
    pub attempts_done: AtomicU64,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    /// Copies (acknowledgements plus deliveries) the messages sent so far should produce.
    pub expected: AtomicU64,
    /// Threads that have sent their last message (their `expected` is final).
    pub done_sending: AtomicU64,
}

impl Live {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// What the progress line shows.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: Live::get(&self.connected),
            failed: Live::get(&self.failed),
            dropped: Live::get(&self.dropped),
            sent: Live::get(&self.sent),
            acked: Live::get(&self.acked),
            delivered: Live::get(&self.delivered),
            expected: Live::get(&self.expected),
        }
    }
}

/// One process's counters at one moment, for the progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub expected: u64,
}

impl Snapshot {
    pub(crate) fn add(&mut self, o: &Snapshot) {
        self.connected += o.connected;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.sent += o.sent;
        self.acked += o.acked;
        self.delivered += o.delivered;
        self.expected += o.expected;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count_above` counts the samples whose bucket lies above the limit: a sample at the
    /// limit is not above it, one just over is, and so is one far over.
    #[test]
    fn counts_the_samples_above_a_limit() {
        let mut l = Latency::default();
        assert_eq!(l.count_above(1000), 0);
        for us in [40, 60, 1000, 1001, 5_000, 2_000_000] {
            l.record(us);
        }
        assert_eq!(l.count_above(1000), 3);
        assert_eq!(l.count_above(999), 4);
        assert_eq!(l.count_above(10), 6);
        assert_eq!(l.count_above(3_000_000), 0);
    }

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

    /// A histogram survives the trip through JSON unchanged, and a damaged one is refused.
    #[test]
    fn latency_round_trips_through_json() {
        let mut l = Latency::default();
        for us in [1, 7, 99, 1000, 1001, 65_536, 3_000_000, u64::MAX] {
            l.record(us);
        }
        let json = serde_json::to_string(&l).expect("serializes");
        let back: Latency = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back.summary(), l.summary());
        assert_eq!(back.hist, l.hist);
        let broken = json.replace("\"v2\":\"", "\"v2\":\"AAAA");
        assert!(serde_json::from_str::<Latency>(&broken).is_err());
    }
}
