//! The run's report: what `--json` writes (schema `c10k-lab/loadgen-run/v2`), what the summary
//! table prints, and what the benches and `loadgen sweep` read.
//!
//! Conventions: latencies are in microseconds (`*_us`), rates per second (`*_per_sec`), times
//! in seconds (`*_s`), memory in KiB (`*_kib`) or bytes (`*_bytes`). "Measured" counts cover
//! messages whose *intended* send time lies in the measured window (after the warm-up); the
//! loss, duplicate and order checks cover every message of the run, warm-up included.
//! Fields are only ever added within a version; a change of meaning gets a new one.
//!
//! v2 (the `polling` engine, several processes and servers) changed meanings: `ok` is false when
//! the generator fell behind (unless `config.tolerate_generator_lag`); the generator's CPU counts its engine threads only (not the
//! process, which may hold an in-process test server); `server` adds up several processes
//! (`pids`); `config.addr` may list several addresses. It added `config.addrs`, `spread`,
//! `procs`, `threads`, `max_send_lag_us`, `spin_us`; `messages.unsent` and `blocked`;
//! `latency_us.fanout_cross`; `generator.procs`, `cpu_us_per_msg`, `busiest_thread_percent`,
//! `spin_s`, `behind`; `server.cpu_us_per_msg`; and `per_addr`. Later, within v2: the `echo`
//! workload; `config.transport`, `ws_path`, `churn_per_sec`, `sample_every_s`,
//! `tolerate_generator_lag`; `churn`; `series` and `soak`; `config.slice_us`, `generator.slice_us`
//! and `slice_error`.

use super::series::{SeriesSample, SoakReport};
use super::stats::LatencySummary;
use super::{Spread, Target, Transport, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schema` value of this version of the report.
pub const SCHEMA: &str = "c10k-lab/loadgen-run/v2";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// One line saying how the run went; the summary's first line.
    pub headline: String,
    /// All connections opened, none dropped, nothing lost, duplicated or reordered, and the
    /// generator kept up (its figures describe the server), or fell behind with
    /// `--tolerate-generator-lag` given (then `problems` still says so).
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
    /// One entry per server address, in `--addr` order.
    pub per_addr: Vec<AddrReport>,
    /// What the churning connections did (`--churn`).
    #[serde(default)]
    pub churn: Option<ChurnReport>,
    /// Memory and descriptors over time, every `config.sample_every_s`.
    #[serde(default)]
    pub series: Vec<SeriesSample>,
    /// Whether the servers' memory stayed flat and their descriptors came back (with
    /// `--server-pid`).
    #[serde(default)]
    pub soak: Option<SoakReport>,
    /// Wall time of the whole run, ramp-up and drain included.
    pub wall_s: f64,
}

/// `--churn`: connections closed and reopened while messages flow (see `churn.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Closes and reopens per second asked for, over this many churning connections (the last
    /// member of every full room).
    pub rate_per_sec: f64,
    pub churners: usize,
    /// Churners that closed, and that joined again; closes per second over the sending time.
    pub closes: u64,
    pub reconnects: u64,
    pub achieved_per_sec: f64,
    /// Reconnects that failed, and the first reason.
    pub reconnect_failures: u64,
    pub failure_example: Option<String>,
    /// Churners that gave up waiting for their last message before closing (their receivers
    /// then cannot check their messages for loss).
    pub ack_timeouts: u64,
    /// Turns missed because the churner was still on its way out or back.
    pub busy: u64,
    /// Messages the churners sent (checked at every member that stayed), the schedule's
    /// messages they skipped while away, and copies of others' messages they received
    /// (counted, not checked).
    pub sent: u64,
    pub skipped: u64,
    pub received: u64,
    /// From the start of a reconnect to the server's `welcome`.
    pub rejoin_us: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReport {
    /// The server addresses as `--addr` takes them (comma-separated), and as a list.
    pub addr: String,
    pub addrs: Vec<String>,
    /// How the connections were spread over several addresses.
    pub spread: Spread,
    pub target: Target,
    pub workload: Workload,
    /// `tcp` or `ws`, and the WebSocket path.
    #[serde(default = "tcp")]
    pub transport: Transport,
    #[serde(default)]
    pub ws_path: Option<String>,
    /// Closes and reopens per second (`--churn`).
    #[serde(default)]
    pub churn_per_sec: Option<f64>,
    /// The time series' sampling interval.
    #[serde(default)]
    pub sample_every_s: f64,
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
    /// 127.0.0.x source addresses over all processes (1: the kernel chose).
    pub source_addrs: usize,
    /// Generator processes, and engine threads in each.
    pub procs: usize,
    pub threads: usize,
    /// Send lag p99 above which the generator counts as fallen behind.
    pub max_send_lag_us: u64,
    /// `--tolerate-generator-lag`: a generator that fell behind made the run a warning, not a
    /// failure (`generator.behind` and `problems` still say so).
    #[serde(default)]
    pub tolerate_generator_lag: bool,
    /// Spinning before each due send (0: none).
    pub spin_us: u64,
    /// The scheduler slice the engine threads asked for, µs (0: the kernel's default).
    #[serde(default)]
    pub slice_us: u64,
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
    /// Messages of the measured window never written (open loop), and of those, how many were
    /// held back by a full socket (the server was not reading).
    pub unsent: u64,
    pub unsent_blocked: u64,
    /// Messages written late because their socket was full when they were due: the server's
    /// delay, counted in the corrected latency and not in the send lag.
    pub blocked: u64,
    /// Measured messages sent later than `config.max_send_lag_us` (the send lag row's samples
    /// above it).
    #[serde(default)]
    pub late: u64,
    /// Whether the generator sent on schedule (open loop): under 1% of the measured window's
    /// messages unsent by its own fault, and at most 1% of them `late` (a send lag p99 within
    /// `config.max_send_lag_us`), or just one.
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
    /// Fan-out between members connected to different addresses (cross-node, corrected).
    pub fanout_cross: LatencySummary,
    /// How late the generator wrote messages compared with the schedule.
    pub send_lag: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// Processes, and engine threads over all of them.
    pub procs: usize,
    pub threads: usize,
    /// Cores of this machine.
    pub cores: usize,
    /// CPU seconds the engine threads used during the measured window…
    pub cpu_s: f64,
    /// …as a percentage of one core (200 = two cores busy)…
    pub cpu_percent: f64,
    /// …and per acknowledged message (µs), to set beside the server's.
    pub cpu_us_per_msg: Option<f64>,
    /// The busiest engine thread's CPU over the window, % of one core (spinning excluded): at
    /// 90 % and more that thread was saturated.
    pub busiest_thread_percent: f64,
    /// CPU seconds spent spinning to due times (`--spin-us`), included in `cpu_s`.
    pub spin_s: f64,
    /// The scheduler slice the kernel reported for the engine threads after they asked for one
    /// (µs, the longest of them; `--slice-us`), absent when they did not ask; and why a thread
    /// could not have one.
    #[serde(default)]
    pub slice_us: Option<u64>,
    #[serde(default)]
    pub slice_error: Option<String>,
    /// The generator fell behind (send lag, unsent messages or a saturated thread): the
    /// figures bound the generator, not the server. `problems` says which.
    pub behind: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    /// The server processes sampled; the figures below add them up.
    pub pids: Vec<u32>,
    /// CPU seconds the servers used during the measured window, as % of one core, and per
    /// acknowledged message (µs).
    pub cpu_s: f64,
    pub cpu_percent: f64,
    pub cpu_us_per_msg: Option<f64>,
    /// Resident memory before the first connection, once all were open, and the peak.
    pub rss_before_kib: u64,
    pub rss_connected_kib: u64,
    pub rss_peak_kib: u64,
    /// (connected − before) / connections: what one connection costs the server.
    pub rss_per_conn_bytes: Option<f64>,
}

/// What one server address saw (`--addr A,B,C`: one each, in that order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddrReport {
    pub addr: String,
    /// Connections dealt to it, joined, failed, dropped during the run.
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Measured messages its connections sent, and that were acknowledged to them.
    pub sent: u64,
    pub acked: u64,
    /// Measured deliveries its connections received.
    pub deliveries: u64,
    /// Round trips of its senders, and deliveries to its receivers (corrected).
    pub round_trip_us: LatencySummary,
    pub fanout_us: LatencySummary,
}

fn tcp() -> Transport {
    Transport::Tcp
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
