//! # `loadgen sweep`: every server model at several connection counts, in one table and chart
//!
//! ```text
//! cargo build --release --workspace
//! target/release/loadgen sweep --conns 100,1000,10000 --out sweep-results [--with-redis]
//! ```
//!
//! For each model (see [`models::catalogue`]) and each level, the sweep starts a fresh server
//! process on a free port (`--idle-timeout 0`), runs [`crate::run::run`] in-process against it
//! with the server's pid (so CPU and memory are sampled), stops the server, and records a row.
//! A model that cannot serve a level is recorded as failed with the reason (and, if it could
//! not even open all its connections, the higher levels as skipped); a model that cannot run on
//! this machine at all (chat-uring without io_uring) is skipped at every level with the reason:
//! a model is never dropped from the table. Then it writes `results.json`, `results.csv`,
//! `results.md` and the charts `qps.svg`, `p99.svg`, `memory.svg` into `--out`.

mod charts;
pub mod models;
mod redis;
mod results;

pub use charts::write_charts;
pub use models::{find_or_build, Launch, ModelSpec};
pub use redis::{free_port, process_id as redis_process_id, RedisServer};
pub use results::{Machine, Status, SweepResults, SweepRow, SweepSettings, SWEEP_SCHEMA};

use crate::run::{self, parse_duration, RunConfig, Target, Workload};
use crate::server_process::{ServerProcess, SpawnOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// `all`, or a comma-separated list of: blocking, threads, pool, select, poll, epoll-level,
    /// epoll-edge (or `epoll` for both), reactor, async, uring.
    #[arg(long, default_value = "all")]
    pub servers: String,

    /// Connection counts to run each model at.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub conns: Vec<usize>,

    #[arg(long, value_enum, default_value_t = Workload::Chat)]
    pub workload: Workload,

    /// Directory for results.json, results.csv, results.md and the SVG charts.
    #[arg(long, default_value = "sweep-results")]
    pub out: PathBuf,

    /// Members per room.
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,

    /// Messages per second per connection (open loop).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,

    /// Closed loop instead (maximum throughput; hides stalls).
    #[arg(long)]
    pub closed: bool,

    /// Measured time per level.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,

    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,

    /// Per-connection bound on connect and on join (a single-client server makes the others
    /// wait this long before they count as failed).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Also start `redis-server` (if installed) and drive it with the same workload.
    #[arg(long)]
    pub with_redis: bool,

    /// Do not build server binaries that are missing (by default the sweep builds them with
    /// cargo when it was started by cargo).
    #[arg(long)]
    pub no_build: bool,
}

/// Everything a sweep needs.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub models: Vec<ModelSpec>,
    pub levels: Vec<usize>,
    /// The run every level gets; `addrs`, `conns` and `server_pids` are set per level.
    pub run: RunConfig,
    /// Build missing server binaries with cargo.
    pub build_missing: bool,
    /// Print one line per level as the sweep goes.
    pub echo: bool,
}

/// Runs every model at every level and returns the results (write them with
/// [`SweepResults::write_json`], [`SweepResults::write_csv`], [`SweepResults::write_markdown`]
/// and [`write_charts`]). Blocking; each level builds its own runtime.
pub fn sweep(config: &SweepConfig) -> anyhow::Result<SweepResults> {
    anyhow::ensure!(!config.levels.is_empty(), "no connection levels given");
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut rows = Vec::new();
    for model in &config.models {
        let mut failed_at: Option<usize> = None;
        for &conns in &config.levels {
            let row = match failed_at {
                Some(level) => SweepRow::without_report(
                    &model.name,
                    conns,
                    Status::Skipped,
                    format!("not attempted: it could not open all connections at {level}"),
                ),
                None => run_level(config, model, conns),
            };
            if config.echo {
                println!("{}", describe(&row));
            }
            if row.status == Status::Failed && row.connected < conns {
                failed_at.get_or_insert(conns);
            }
            rows.push(row);
        }
    }
    let r = &config.run;
    Ok(SweepResults {
        schema: SWEEP_SCHEMA.to_string(),
        started_unix_s,
        machine: Machine::detect(),
        settings: SweepSettings {
            workload: serde_json::to_value(r.workload)?
                .as_str()
                .unwrap_or("chat")
                .to_string(),
            mode: if r.rate.is_some() { "open" } else { "closed" }.to_string(),
            rate_per_conn: r.rate,
            room_size: r.room_size,
            duration_s: r.duration.as_secs_f64(),
            warmup_s: r.warmup.as_secs_f64(),
            levels: config.levels.clone(),
        },
        rows,
    })
}

/// One model at one level: start its server, run, stop it. Every failure becomes a row.
fn run_level(config: &SweepConfig, model: &ModelSpec, conns: usize) -> SweepRow {
    let failed =
        |reason: String| SweepRow::without_report(&model.name, conns, Status::Failed, reason);
    let mut run_config = config.run.clone();
    run_config.conns = conns;
    run_config.target = Target::Chat;
    // The server lives as long as this match's value: until the run is over.
    let (addr, pid, _server): (SocketAddr, Option<u32>, Box<dyn std::any::Any>) =
        match &model.launch {
            Launch::External { addr, pid } => (*addr, *pid, Box::new(())),
            Launch::Binary { program, args } => {
                let path = match find_or_build(program, config.build_missing) {
                    Ok(path) => path,
                    Err(reason) => return failed(reason),
                };
                if let Some(why) = models::unavailable_here(program, &path) {
                    return SweepRow::without_report(&model.name, conns, Status::Skipped, why);
                }
                let mut args = args.clone();
                args.extend(["--idle-timeout".to_string(), "0".to_string()]);
                match ServerProcess::spawn_with(&path, &args, &SpawnOptions::default()) {
                    Ok(server) => (server.addr(), Some(server.pid()), Box::new(server)),
                    Err(e) => return failed(format!("could not start the server: {e}")),
                }
            }
            Launch::Redis => {
                run_config.target = Target::Redis;
                let Some(program) = models::redis_server_path() else {
                    return failed(
                        "redis-server is not installed (apt-get install redis-server)".to_string(),
                    );
                };
                match RedisServer::start(&program) {
                    Ok(server) => (server.addr(), Some(server.pid()), Box::new(server)),
                    Err(e) => return failed(e),
                }
            }
        };
    run_config.addrs = vec![addr];
    run_config.server_pids = pid.into_iter().collect();
    match run::run(&run_config) {
        Ok(report) => SweepRow::from_report(&model.name, report, model.limit_note.as_deref()),
        Err(e) => failed(format!("the run could not be made: {e:#}")),
    }
}

/// One line per level, as the sweep goes.
fn describe(row: &SweepRow) -> String {
    let status = results::status_name(&row.status);
    match (&row.status, &row.reason) {
        (Status::Ok | Status::Behind, _) => format!(
            "{:<20} {:>6} conns  {status:<7} {:>9.0} msg/s  p99 {:>9.2} ms  {} KiB/conn  \
             send lag p99 {} µs",
            row.model,
            row.conns,
            row.qps,
            row.p99_us as f64 / 1000.0,
            row.mem_per_conn_bytes
                .map_or("?".into(), |b| format!("{:.1}", b / 1024.0)),
            row.send_lag_p99_us
        ),
        (_, reason) => format!(
            "{:<20} {:>6} conns  {status:<7} {}",
            row.model,
            row.conns,
            reason.as_deref().unwrap_or("")
        ),
    }
}

/// `loadgen sweep`: runs the sweep, writes the files, prints the Markdown table.
pub fn main(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let mut models = models::select(&args.servers)?;
    if args.with_redis {
        if models::redis_server_path().is_none() {
            println!(
                "redis-server is not installed (apt-get install redis-server): the redis row \
                 will say so"
            );
        }
        models.push(models::redis_model());
    }
    let mut run = RunConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), 1);
    run.workload = args.workload;
    run.room_size = args.room_size;
    run.rate = (!args.closed).then_some(args.rate);
    run.duration = args.duration;
    run.warmup = args.warmup;
    run.connect_rate = args.connect_rate;
    run.connect_timeout = args.connect_timeout;
    run.progress = true;
    let mut levels = args.conns.clone();
    levels.sort_unstable();
    levels.dedup();
    let config = SweepConfig {
        models,
        levels,
        run,
        build_missing: !args.no_build,
        echo: true,
    };
    let results = sweep(&config)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.out.display()))?;
    results.write_json(&args.out.join("results.json"))?;
    results.write_csv(&args.out.join("results.csv"))?;
    results.write_markdown(&args.out.join("results.md"))?;
    let charts = write_charts(&results, &args.out)?;
    println!("\n{}", results.to_markdown());
    println!(
        "wrote results.json, results.csv, results.md and {} charts to {}",
        charts.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
