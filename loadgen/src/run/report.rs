//! The run's report: what `--json` writes (schema `c10k-lab/loadgen-run/v1`), what the summary
//! table prints, and what the benches and `loadgen sweep` read.
//!
//! Conventions: latencies are in microseconds (`*_us`), rates per second (`*_per_sec`), times
//! in seconds (`*_s`), memory in KiB (`*_kib`) or bytes (`*_bytes`). "Measured" counts cover
//! messages whose *intended* send time lies in the measured window (after the warm-up); the
//! loss, duplicate and order checks cover every message of the run, warm-up included.
//! Fields are only ever added within v1; a change of meaning gets a new version.

use super::stats::LatencySummary;
use super::{Target, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schema` value of this version of the report.
pub const SCHEMA: &str = "c10k-lab/loadgen-run/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// One line saying how the run went; the summary's first line.
    pub headline: String,
    /// All connections opened, none dropped, nothing lost, duplicated or reordered.
    pub ok: bool,
    /// Everything that went wrong or should not be trusted, one sentence each (may be
    /// non-empty when `ok`: e.g. the generator could not keep the offered rate).
    pub problems: Vec<String>,
    pub config: ConfigReport,
    pub connections: ConnectionReport,
    pub messages: MessageReport,
    pub latency_us: LatencyReport,
    /// `error` frames received from the server during the run, by code.
    pub errors: BTreeMap<String, u64>,
    pub generator: GeneratorReport,
    /// Present when the server's pid was given.
    pub server: Option<ServerReport>,
    /// Wall time of the whole run, ramp-up and drain included.
    pub wall_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReport {
    pub addr: String,
    pub target: Target,
    pub workload: Workload,
    /// `open` (fixed schedule, coordinated-omission corrected) or `closed`.
    pub mode: String,
    pub conns: usize,
    pub room_size: usize,
    pub rooms: usize,
    /// Messages per second per connection in open loop; absent in closed loop.
    pub rate_per_conn: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connect_rate: f64,
    pub message_size: usize,
    pub source_addrs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionReport {
    pub attempted: usize,
    /// Connections that completed the handshake (`welcome`).
    pub connected: usize,
    pub failed: usize,
    /// Failures by kind: `refused`, `connect_timeout`, `join_timeout`, `reset`, `closed`,
    /// `server_full` (or another error code), `no_local_port`, `local_fd_limit`, `io_error`.
    pub failures: BTreeMap<String, u64>,
    /// One example message per failure kind.
    pub failure_examples: Vec<String>,
    /// Joined connections that ended before the run did (closed or reset by the server).
    pub dropped: usize,
    /// Example reasons for the drops.
    pub drop_examples: Vec<String>,
    /// Seconds from the first connect to the last attempt's end.
    pub ramp_s: f64,
    /// TCP connect latency.
    pub connect_us: LatencySummary,
    /// From the start of the connect to the handshake's reply.
    pub join_us: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageReport {
    /// Messages per second the schedule offered in total (open loop).
    pub offered_per_sec: Option<f64>,
    /// Messages the schedule wanted written during the measured window (open loop).
    pub scheduled: Option<u64>,
    /// Messages written in the measured window.
    pub sent: u64,
    /// Measured messages whose sender got its acknowledgement (own broadcast, receipt, pong).
    pub acked: u64,
    /// `acked` per second of measured time: the throughput.
    pub qps: f64,
    /// Copies of measured messages received by *other* members (fan-out).
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    /// Over the whole run: messages written, and the copies (acknowledgements plus deliveries)
    /// they should produce / that arrived.
    pub sent_total: u64,
    pub expected_copies: u64,
    pub received_copies: u64,
    /// Copies that never arrived (to receivers still connected at the end, after the drain).
    pub lost: u64,
    pub duplicated: u64,
    /// Copies that arrived after a later message of the same sender.
    pub out_of_order: u64,
    /// Frames that were not the protocol, or carried an id that is not ours.
    pub unparsed: u64,
    /// Whether the generator sent on schedule (open loop): under 1% of the measured window's
    /// messages unsent, and send lag p99 under 50 ms. When false, the figures describe a lower
    /// rate than was asked for.
    pub rate_kept: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Sender to its own acknowledgement, from the intended send time (corrected).
    pub round_trip: LatencySummary,
    /// The same from the actual write: what a closed-loop tool would report.
    pub round_trip_uncorrected: LatencySummary,
    /// Sender to each other member of the room, from the intended send time.
    pub fanout: LatencySummary,
    pub fanout_uncorrected: LatencySummary,
    /// How late the generator wrote messages compared with the schedule.
    pub send_lag: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// Runtime worker threads.
    pub threads: usize,
    /// Cores of this machine.
    pub cores: usize,
    /// CPU seconds the generator used during the measured window.
    pub cpu_s: f64,
    /// …as a percentage of one core (200 = two cores busy).
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    pub pid: u32,
    /// CPU seconds the server used during the measured window, and as % of one core.
    pub cpu_s: f64,
    pub cpu_percent: f64,
    /// Resident memory before the first connection, once all were open, and the peak.
    pub rss_before_kib: u64,
    pub rss_connected_kib: u64,
    pub rss_peak_kib: u64,
    /// (connected − before) / connections: what one connection costs the server.
    pub rss_per_conn_bytes: Option<f64>,
}

impl RunReport {
    /// Parses a report written by `--json`, refusing another schema.
    pub fn from_json(text: &str) -> anyhow::Result<RunReport> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("");
        anyhow::ensure!(
            schema == SCHEMA,
            "not a loadgen run report of schema {SCHEMA} (found {schema:?})"
        );
        Ok(serde_json::from_value(value)?)
    }
}
