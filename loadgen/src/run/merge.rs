//! One shard's results, and how the parent adds the shards up into one run.
//!
//! Every part adds exactly: counts add, failure kinds add, histograms add bucket by bucket (so
//! the merged percentiles are those of all samples together), the loss and order checks add
//! (each shard checked whole rooms), CPU times add, and the busiest thread is the busiest of
//! all. A run in several processes therefore reports what one process would have reported for
//! the same traffic; the test below checks exactly that on recorded data.

use super::stats::{Recorder, Tally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Failure and drop examples kept for the report.
pub(crate) const EXAMPLES: usize = 5;

/// What one shard (one process's rooms) measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ShardResult {
    pub tally: Tally,
    pub recorder: Recorder,
    /// Failed connection attempts by kind, with one example per kind (at most [`EXAMPLES`]).
    pub failures: BTreeMap<String, u64>,
    pub failure_examples: Vec<String>,
    /// Why connections were dropped, a few examples.
    pub drop_examples: Vec<String>,
    /// Copies lost, duplicated, out of order (the shard's rooms checked whole).
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// CPU time of all engine threads during the measured window, nanoseconds.
    pub cpu_ns: u64,
    /// The busiest engine thread's CPU time in the window, spinning excluded.
    pub busiest_thread_ns: u64,
    /// Time spent spinning to the due time (`--spin-us`) in the window, all threads.
    pub spin_ns: u64,
    /// Engine threads.
    pub threads: usize,
    /// When the shard's last connection attempt ended (µs on the run's clock).
    pub ramp_end_us: u64,
    /// The first reason a churning connection could not reconnect (`--churn`).
    #[serde(default)]
    pub churn_failure_example: Option<String>,
    /// The longest scheduler slice an engine thread was left with (µs; `--slice-us`), and the
    /// first reason a thread could not have one.
    #[serde(default)]
    pub slice_us: Option<u64>,
    #[serde(default)]
    pub slice_error: Option<String>,
}

impl ShardResult {
    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: &ShardResult) {
        self.tally.add(&other.tally);
        self.recorder.merge(&other.recorder);
        for (kind, n) in &other.failures {
            *self.failures.entry(kind.clone()).or_default() += n;
        }
        for example in &other.failure_examples {
            let kind = example.split(':').next().unwrap_or("");
            let known = self
                .failure_examples
                .iter()
                .any(|e| e.split(':').next() == Some(kind));
            if !known && self.failure_examples.len() < EXAMPLES {
                self.failure_examples.push(example.clone());
            }
        }
        for example in &other.drop_examples {
            if self.drop_examples.len() < EXAMPLES {
                self.drop_examples.push(example.clone());
            }
        }
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.cpu_ns += other.cpu_ns;
        self.busiest_thread_ns = self.busiest_thread_ns.max(other.busiest_thread_ns);
        self.spin_ns += other.spin_ns;
        self.threads += other.threads;
        self.ramp_end_us = self.ramp_end_us.max(other.ramp_end_us);
        if self.churn_failure_example.is_none() {
            self.churn_failure_example = other.churn_failure_example.clone();
        }
        self.slice_us = self.slice_us.max(other.slice_us);
        if self.slice_error.is_none() {
            self.slice_error = other.slice_error.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a shard result as an engine would, from numbered samples (the number decides the
    /// address and the odd error, as a message's sender would).
    fn record(result: &mut ShardResult, samples: impl Iterator<Item = (u64, u64)>) {
        for (i, us) in samples {
            let i = i as usize;
            let rec = &mut result.recorder;
            rec.round_trip.record(us);
            rec.round_trip_uncorrected.record(us / 2);
            rec.fanout.record(us + 17);
            rec.send_lag.record(us % 97);
            rec.per_addr[i % 2].round_trip.record(us);
            rec.per_addr[(i + 1) % 2].fanout.record(us * 3);
            if i.is_multiple_of(1000) {
                *rec.errors.entry("rate_limited".into()).or_default() += 1;
            }
            let t = &mut result.tally;
            t.sent += 1;
            t.sent_measured += 1;
            t.acked += 1;
            t.acked_measured += 1;
            t.delivered += 9;
            t.expected += 10;
            t.per_addr[i % 2].sent_measured += 1;
        }
    }

    fn empty() -> ShardResult {
        ShardResult {
            tally: Tally::new(2),
            recorder: Recorder::new(2),
            ..ShardResult::default()
        }
    }

    /// Two shards that recorded halves of the same traffic, sent through JSON as worker
    /// processes send them, merge into exactly what one shard recording all of it holds: the
    /// counts add up and every percentile comes out the same, as it would not if percentiles
    /// were averaged.
    #[test]
    fn merged_shards_equal_one_shard_on_the_same_data() {
        // A skewed distribution: most samples fast, a tail of slow ones in one shard only.
        let sample = |i: u64| {
            let us = if i.is_multiple_of(50) {
                40_000 + i
            } else {
                100 + i % 700
            };
            (i, us)
        };
        let mut whole = empty();
        record(&mut whole, (0..20_000u64).map(sample));
        let mut first = empty();
        record(
            &mut first,
            (0..20_000u64).filter(|i| !i.is_multiple_of(3)).map(sample),
        );
        let mut second = empty();
        record(
            &mut second,
            (0..20_000u64).filter(|i| i.is_multiple_of(3)).map(sample),
        );
        first.failures.insert("refused".into(), 2);
        first
            .failure_examples
            .push("refused: connect: refused".into());
        second.failures.insert("refused".into(), 3);
        second.failures.insert("server_full".into(), 1);
        second
            .failure_examples
            .push("refused: connect: refused".into());
        second
            .failure_examples
            .push("server_full: the server answered".into());
        (first.lost, second.lost, first.cpu_ns, second.cpu_ns) = (1, 2, 10, 30);
        (first.busiest_thread_ns, second.busiest_thread_ns) = (10, 25);
        (first.threads, second.threads) = (1, 1);

        let wire = |r: &ShardResult| -> ShardResult {
            let json = serde_json::to_string(r).expect("serializes");
            serde_json::from_str(&json).expect("deserializes")
        };
        let mut merged = empty();
        merged.merge(&wire(&first));
        merged.merge(&wire(&second));

        let (m, w) = (&merged.recorder, &whole.recorder);
        assert_eq!(m.round_trip.summary(), w.round_trip.summary());
        assert_eq!(m.round_trip.summary().count, 20_000);
        assert_eq!(
            m.round_trip_uncorrected.summary(),
            w.round_trip_uncorrected.summary()
        );
        assert_eq!(m.fanout.summary(), w.fanout.summary());
        assert_eq!(m.send_lag.summary(), w.send_lag.summary());
        assert_eq!(m.errors, w.errors);
        for a in 0..2 {
            assert_eq!(
                m.per_addr[a].round_trip.summary(),
                w.per_addr[a].round_trip.summary()
            );
            assert_eq!(
                m.per_addr[a].fanout.summary(),
                w.per_addr[a].fanout.summary()
            );
        }
        assert_eq!(merged.tally, whole.tally);
        // The slow tail (2 % of the samples, split unevenly between the shards) sets the p99.
        assert!(m.round_trip.summary().p99 >= 40_000);
        assert_eq!(merged.failures.get("refused"), Some(&5));
        assert_eq!(merged.failures.get("server_full"), Some(&1));
        assert_eq!(merged.failure_examples.len(), 2, "one example per kind");
        assert_eq!(
            (merged.lost, merged.cpu_ns, merged.busiest_thread_ns),
            (3, 40, 25)
        );
        assert_eq!(merged.threads, 2);
    }
}
