//! The sweep's results (schema `c10k-lab/loadgen-sweep/v2`) and their files: `results.json`
//! (everything, each level's full run report included), `results.csv` (one row per model and
//! level), `results.md` (the same as a Markdown table, ready for a README).
//!
//! v2 added the `behind` status (the server served the level, but the generator fell behind,
//! so the figures bound the generator) and the generator's send lag and CPU per message beside
//! the server's in every row, table and CSV.

use crate::run::RunReport;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The `schema` value of this version of `results.json`.
pub const SWEEP_SCHEMA: &str = "c10k-lab/loadgen-sweep/v2";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResults {
    pub schema: String,
    /// Seconds since the Unix epoch when the sweep started.
    pub started_unix_s: u64,
    pub machine: Machine,
    pub settings: SweepSettings,
    /// One row per model and connection level, in sweep order.
    pub rows: Vec<SweepRow>,
}

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
}

/// The workload every model was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSettings {
    pub workload: String,
    pub mode: String,
    pub rate_per_conn: Option<f64>,
    pub room_size: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub levels: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every connection opened and stayed, nothing lost, duplicated or reordered.
    Ok,
    /// Ran, but the model could not serve this level (see `reason`).
    Failed,
    /// The model served the level cleanly, but the generator fell behind: the figures bound
    /// the generator, not the server (see `reason`). Not plotted.
    Behind,
    /// Not run: the model already failed to open all connections at a lower level, or it cannot
    /// run on this machine at all (`models::unavailable_here`: chat-uring without io_uring).
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRow {
    pub model: String,
    pub conns: usize,
    pub status: Status,
    /// Why it failed or was skipped, in words.
    pub reason: Option<String>,
    pub connected: usize,
    /// Acknowledged messages per second.
    pub qps: f64,
    pub deliveries_per_sec: f64,
    /// Round trip, coordinated-omission corrected.
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub fanout_p99_us: u64,
    pub lost: u64,
    pub mem_per_conn_bytes: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub loadgen_cpu_percent: f64,
    /// CPU per acknowledged message, server and generator (µs).
    pub server_cpu_us_per_msg: Option<f64>,
    pub loadgen_cpu_us_per_msg: Option<f64>,
    /// How late the generator sent (p99, µs): the floor under every corrected latency.
    pub send_lag_p99_us: u64,
    /// Whether the generator kept the offered rate (false: the figures describe less load).
    pub rate_kept: bool,
    /// The level's full run report (absent when it did not run).
    pub report: Option<RunReport>,
}

impl SweepRow {
    /// A row for a level that did not produce a report.
    pub fn without_report(model: &str, conns: usize, status: Status, reason: String) -> SweepRow {
        SweepRow {
            model: model.to_string(),
            conns,
            status,
            reason: Some(reason),
            connected: 0,
            qps: 0.0,
            deliveries_per_sec: 0.0,
            p50_us: 0,
            p99_us: 0,
            p999_us: 0,
            fanout_p99_us: 0,
            lost: 0,
            mem_per_conn_bytes: None,
            server_cpu_percent: None,
            loadgen_cpu_percent: 0.0,
            server_cpu_us_per_msg: None,
            loadgen_cpu_us_per_msg: None,
            send_lag_p99_us: 0,
            rate_kept: true,
            report: None,
        }
    }

    /// A row from a run report; `limit_note` explains a failure by the model's known limit.
    pub fn from_report(model: &str, report: RunReport, limit_note: Option<&str>) -> SweepRow {
        // Behind, not failed, when the generator's lateness is the only problem; behind too
        // when it was tolerated (`--tolerate-generator-lag`): its figures still bound the
        // generator, so they are not plotted.
        let status = match (report.ok, report.generator.behind, report.problems.len()) {
            (true, false, _) => Status::Ok,
            (true, true, _) | (false, true, 1) => Status::Behind,
            _ => Status::Failed,
        };
        let reason = (status != Status::Ok).then(|| {
            let mut reason = report.problems.join("; ");
            if let (Some(note), Status::Failed) = (limit_note, &status) {
                let _ = write!(reason, " ({model} {note})");
            }
            reason
        });
        let l = &report.latency_us;
        SweepRow {
            model: model.to_string(),
            conns: report.config.conns,
            status,
            reason,
            connected: report.connections.connected,
            qps: report.messages.qps,
            deliveries_per_sec: report.messages.deliveries_per_sec,
            p50_us: l.round_trip.p50,
            p99_us: l.round_trip.p99,
            p999_us: l.round_trip.p999,
            fanout_p99_us: l.fanout.p99,
            lost: report.messages.lost,
            mem_per_conn_bytes: report.server.as_ref().and_then(|s| s.rss_per_conn_bytes),
            server_cpu_percent: report.server.as_ref().map(|s| s.cpu_percent),
            loadgen_cpu_percent: report.generator.cpu_percent,
            server_cpu_us_per_msg: report.server.as_ref().and_then(|s| s.cpu_us_per_msg),
            loadgen_cpu_us_per_msg: report.generator.cpu_us_per_msg,
            send_lag_p99_us: l.send_lag.p99,
            rate_kept: report.messages.rate_kept,
            report: Some(report),
        }
    }
}

impl Machine {
    /// Reads this machine's description from /proc.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
                .unwrap_or_else(|| "unknown".into()),
            memory_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| format!("Linux {}", s.trim()))
                .unwrap_or_else(|_| std::env::consts::OS.to_string()),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {} MiB RAM, {}",
            self.cores, self.cpu_model, self.memory_mib, self.kernel
        )
    }
}

impl SweepResults {
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }

    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut out = String::from(
            "model,conns,status,connected,qps,deliveries_per_sec,p50_us,p99_us,p999_us,\
             fanout_p99_us,lost,mem_per_conn_bytes,server_cpu_percent,loadgen_cpu_percent,\
             server_cpu_us_per_msg,loadgen_cpu_us_per_msg,send_lag_p99_us,rate_kept,reason\n",
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&r.model),
                r.conns,
                status_name(&r.status),
                r.connected,
                r.qps,
                r.deliveries_per_sec,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.fanout_p99_us,
                r.lost,
                opt(r.mem_per_conn_bytes),
                opt(r.server_cpu_percent),
                r.loadgen_cpu_percent,
                opt(r.server_cpu_us_per_msg),
                opt(r.loadgen_cpu_us_per_msg),
                r.send_lag_p99_us,
                r.rate_kept,
                csv_field(r.reason.as_deref().unwrap_or("")),
            );
        }
        std::fs::write(path, out)
    }

    /// The Markdown table: one row per model and level; failures keep their reason.
    pub fn to_markdown(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let load = match s.rate_per_conn {
            Some(rate) => format!("open loop, {rate} msg/s per connection"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(
            out,
            "Workload `{}` in rooms of {}, {load}, {} s measured after {} s warm-up.  \n\
             Machine: {}.\n",
            s.workload,
            s.room_size,
            s.duration_s,
            s.warmup_s,
            self.machine.describe()
        );
        out.push_str(
            "| model | conns | status | msg/s | deliveries/s | p50 ms | p99 ms | fan-out p99 ms \
             | KiB/conn | server CPU % | server µs/msg | loadgen CPU % | loadgen µs/msg \
             | send lag p99 µs | notes |\n\
             |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let us = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
        for r in &self.rows {
            let ran = r.report.is_some();
            let num = |v: String| if ran { v } else { "–".to_string() };
            let notes = r.reason.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.model,
                r.conns,
                status_name(&r.status),
                num(format!("{:.0}", r.qps)),
                num(format!("{:.0}", r.deliveries_per_sec)),
                num(ms(r.p50_us)),
                num(ms(r.p99_us)),
                num(ms(r.fanout_p99_us)),
                r.mem_per_conn_bytes
                    .map_or("–".into(), |b| format!("{:.1}", b / 1024.0)),
                r.server_cpu_percent
                    .map_or("–".into(), |c| format!("{c:.0}")),
                us(r.server_cpu_us_per_msg),
                num(format!("{:.0}", r.loadgen_cpu_percent)),
                us(r.loadgen_cpu_us_per_msg),
                num(r.send_lag_p99_us.to_string()),
                notes.replace('|', "/"),
            );
        }
        out
    }

    pub fn write_markdown(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_markdown())
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub(crate) fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Behind => "behind",
        Status::Skipped => "skipped",
    }
}

/// Quotes a CSV field when it holds a comma, quote or newline.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
