//! # `loadgen run`: honest throughput, latency, fan-out and loss at 100 to 10,000+ connections
//!
//! ```text
//! loadgen run --addr 127.0.0.1:8888 --conns 1000 --room-size 10 --rate 2 \
//!             --duration 10s --warmup 2s --connect-rate 2000 --workload chat \
//!             --json run.json --server-pid $(pgrep chat-epoll)
//! ```
//!
//! What makes it honest, and where each part lives:
//!
//! | concern | file |
//! |---|---|
//! | flags, [`RunConfig`], workloads and targets | `args.rs` |
//! | rooms, partners, the `id` every message carries | `workload.rs` |
//! | chat JSON lines and Redis RESP3 framing | `codec.rs`, `resp.rs` |
//! | connect (from several 127.0.0.x source addresses), handshake, failure kinds | `connect.rs` |
//! | one connection's life; its open-loop / closed-loop sender; its reader | `driver.rs`, `sender.rs`, `receiver.rs` |
//! | the phases: ramp, warm-up, measure, drain, accounting | `engine.rs` |
//! | lost / duplicated / out-of-order detection | `sequence.rs` |
//! | HdrHistograms that cannot overflow, shared counters | `stats.rs` |
//! | own CPU, server CPU and RSS | `sysstat.rs` |
//! | the JSON schema `c10k-lab/loadgen-run/v1` | `report.rs` |
//! | verdict and summary table; live progress line | `summary.rs`, `progress.rs` |
//!
//! * **Open loop by default.** Each connection sends on a fixed schedule and latency is taken
//!   from the time a message was *due*, not when it was finally written: a server that stalls
//!   for a second shows a second of latency for every message that waited, instead of one slow
//!   sample (coordinated omission, as wrk2 corrects it). The uncorrected figures are reported
//!   beside them. `--closed` sends the next message when the previous one is acknowledged.
//! * **Nothing is hidden.** Failed connects are counted by kind (refused, timed out,
//!   `server_full`, reset…); every copy of every message is checked at every receiver for
//!   loss, duplication and order; the generator's own CPU is reported next to the server's; a
//!   generator that could not keep the offered rate says so in the first line.
//!
//! As a library: [`run`] takes a [`RunConfig`] and returns the [`RunReport`] (the benches and
//! `loadgen sweep` call it in-process).

mod args;
mod codec;
mod connect;
mod driver;
mod engine;
mod progress;
mod receiver;
mod report;
mod resp;
mod sender;
mod sequence;
mod stats;
mod summary;
mod sysstat;
mod workload;

pub use args::{parse_duration, RunArgs, RunConfig, Target, Workload, CONNS_PER_SOURCE};
pub use report::{
    ConfigReport, ConnectionReport, GeneratorReport, LatencyReport, MessageReport, RunReport,
    ServerReport, SCHEMA,
};
pub use stats::LatencySummary;
pub use summary::render as render_summary;

use std::process::ExitCode;

/// Runs the workload described by `config` and returns the report. Blocking: it builds its own
/// multi-threaded tokio runtime (one worker per core unless `config.threads` says otherwise),
/// so call it from synchronous code, not from inside another runtime.
pub fn run(config: &RunConfig) -> anyhow::Result<RunReport> {
    config.validate()?;
    // One descriptor per connection: lift the soft limit (often 1024) to the hard limit.
    if let Ok(limit) = chat_core::net::raise_fd_limit() {
        anyhow::ensure!(
            config.conns as u64 + 64 <= limit,
            "{} connections need more open files than this process may have ({limit}); raise \
             the hard limit (ulimit -Hn) or use fewer connections",
            config.conns
        );
    }
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    runtime.block_on(engine::drive(config, threads))
}

/// `loadgen run`: prints the summary (first line: the verdict), writes `--json` if asked.
/// Exit status 0 when every connection opened and nothing was lost, duplicated or reordered,
/// 1 otherwise.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = RunConfig::from_args(&args)?;
    let report = run(&config)?;
    print!("{}", render_summary(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
