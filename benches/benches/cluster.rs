//! # Beyond one process: what the cluster costs, and 100,000 connections on one machine
//!
//! Three measurements of `chat-cluster`, side by side in one run, each driving the load
//! generator's binary (`loadgen run`, release build) with its multi-address and multi-process
//! flags, and reading its JSON report:
//!
//! 1. **Cross-node fan-out.** Rooms of 10 whose members are spread over three nodes, every
//!    member sending 1 message/s: the fan-out p99 (a message's due time to each member's
//!    receipt) of three `chat-cluster` nodes on one Redis, against one `chat-async` process at
//!    the same load. The difference is what the trip through Redis costs.
//! 2. **Deliveries per second against Redis alone.** The same workload straight on Redis
//!    pub/sub (`loadgen run --target redis`: SUBSCRIBE to the room, PUBLISH to it), against
//!    the cluster's: how much of the cluster's ceiling is Redis's.
//! 3. **100,000 connections on this machine.** `chat-cluster --processes 6` (each worker under
//!    the 20,000-descriptor limit), the generator over several processes (`--procs`) and
//!    source addresses (127.0.0.2...; one address has ~28,000 ephemeral ports), one message
//!    per connection per minute in rooms of 10: connected, lost, connect latency, and the
//!    workers' memory per connection (their resident memory, summed, before and at the peak).
//!
//! ```text
//! cargo bench -p c10k-benches --bench cluster                      # the real run (minutes)
//! C10K_BENCH_QUICK=1 cargo bench -p c10k-benches --bench cluster   # smoke test, small numbers
//! ```
//!
//! Output: the tables on stdout, and `target/cluster/results.md` and `results.json` beside the
//! generator's reports (`*.run.json`). Needs `redis-server` (skipped with a note without it,
//! except under CI).

use c10k_benches::loadgen_cli::{machine_line, run_loadgen};
use c10k_benches::{entry, quick_mode};
use loadgen::server_process::ServerProcess;
use loadgen::sweep::RedisServer;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name `cargo bench -- <filter>` must match for this target to run.
const NAME: &str = "cluster";

/// The sizes of one run.
struct Plan {
    quick: bool,
    /// Connections of the comparisons (1 and 2).
    compare_conns: usize,
    duration: &'static str,
    warmup: &'static str,
    /// Connections, worker processes and generator processes of the big run (3).
    big_conns: usize,
    big_workers: usize,
    big_procs: usize,
    /// Messages per second per connection in the big run.
    big_rate: f64,
    big_duration: &'static str,
    big_warmup: &'static str,
    /// How many source addresses (127.0.0.1, 127.0.0.2, …) the generator's sockets use in the
    /// big run: one per process, so that no process runs out of ephemeral ports.
    big_sources: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                compare_conns: 300,
                duration: "2s",
                warmup: "1s",
                big_conns: 3_000,
                big_workers: 2,
                big_procs: 2,
                big_rate: 1.0 / 60.0,
                big_duration: "5s",
                big_warmup: "1s",
                big_sources: 1,
            }
        } else {
            Plan {
                quick,
                compare_conns: 10_000,
                duration: "20s",
                warmup: "5s",
                big_conns: 100_000,
                big_workers: 6,
                big_procs: 7,
                big_rate: 1.0 / 60.0,
                big_duration: "120s",
                big_warmup: "10s",
                big_sources: 7,
            }
        }
    }
}

fn main() -> ExitCode {
    entry::run_with_redis(NAME, |redis| measure(&Plan::new(quick_mode()), redis))
}

fn measure(plan: &Plan, redis_program: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let workspace = entry::prepare(NAME)?;
    let bins = &workspace.bins;
    let redis = RedisServer::start(redis_program).map_err(anyhow::Error::msg)?;
    let redis_url = format!("redis://{}", redis.addr());
    let load = Load {
        loadgen: bins.join("loadgen"),
        out: workspace.out.clone(),
    };

    // 1. One chat-async process, then three cluster nodes, at the same load.
    println!(
        "\n{NAME}: cross-node fan-out, {} connections",
        plan.compare_conns
    );
    let single = {
        let server = ServerProcess::spawn(bins.join("chat-async"), ["--idle-timeout", "0"])?;
        load.run(plan, "chat-async", &[server.addr()], &[])?
    };
    let cluster = {
        let nodes: Vec<ServerProcess> = (0..3)
            .map(|i| {
                ServerProcess::spawn(
                    bins.join("chat-cluster"),
                    node_args(&redis_url, &format!("bench-fanout-{i}"), "bench-fanout:"),
                )
            })
            .collect::<Result<_, _>>()?;
        let addrs: Vec<SocketAddr> = nodes.iter().map(ServerProcess::addr).collect();
        load.run(plan, "cluster-3-nodes", &addrs, &[])?
    };

    // 2. Redis pub/sub alone.
    println!("\n{NAME}: the same workload on Redis pub/sub alone");
    let redis_alone = load.run(plan, "redis", &[redis.addr()], &["--target", "redis"])?;

    // 3. The big run.
    println!(
        "\n{NAME}: {} connections on one machine: --processes {}",
        plan.big_conns, plan.big_workers
    );
    let big = big_run(plan, &load, bins, &redis_url)?;

    let summary = summarize(plan, &single, &cluster, &redis_alone, &big);
    let json = json!({
        "schema": "c10k-lab/cluster-bench/v1",
        "quick": plan.quick,
        "machine": machine_line(),
        "fanout": {"chat_async": single, "cluster_3_nodes": cluster},
        "redis_alone": redis_alone,
        "big": big,
        "wall_s": started.elapsed().as_secs_f64(),
    });
    workspace.write_results(NAME, &summary, &json)?;

    // The big run's promise: everyone connected, nothing lost.
    let perfect = big["report"]["ok"] == true
        && big["report"]["messages"]["lost"] == 0
        && big["report"]["connections"]["connected"] == plan.big_conns as u64;
    Ok(if perfect || plan.quick && big["report"]["ok"] == true {
        ExitCode::SUCCESS
    } else {
        eprintln!("{NAME}: the big run did not connect everyone or lost messages");
        ExitCode::FAILURE
    })
}

/// A node of the bench's cluster: its own id and prefix, no HTTP, no idle timeout.
fn node_args(redis_url: &str, id: &str, prefix: &str) -> Vec<String> {
    [
        "--redis",
        redis_url,
        "--redis-prefix",
        prefix,
        "--node-id",
        id,
        "--http-addr",
        "off",
        "--idle-timeout",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs `loadgen run` and returns its JSON report.
struct Load {
    loadgen: PathBuf,
    out: PathBuf,
}

impl Load {
    /// The comparison workload (rooms of 10, 1 msg/s each) against `addrs`.
    fn run(
        &self,
        plan: &Plan,
        name: &str,
        addrs: &[SocketAddr],
        extra: &[&str],
    ) -> anyhow::Result<Value> {
        let conns = plan.compare_conns.to_string();
        let mut args = vec![
            "--workload",
            "chat",
            "--room-size",
            "10",
            "--rate",
            "1",
            "--conns",
            &conns,
            "--duration",
            plan.duration,
            "--warmup",
            plan.warmup,
        ];
        args.extend_from_slice(extra);
        self.loadgen(name, addrs, &args)
    }

    /// `loadgen run --addr A,B,C ARGS --json <out>/<name>.run.json`; prints its table.
    fn loadgen(&self, name: &str, addrs: &[SocketAddr], args: &[&str]) -> anyhow::Result<Value> {
        let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
        let addrs = addrs.join(",");
        let mut all = vec!["--addr", addrs.as_str()];
        all.extend_from_slice(args);
        run_loadgen(
            &self.loadgen,
            &all,
            &self.out.join(format!("{name}.run.json")),
        )
    }
}

/// The big run: a supervisor with its workers, the generator in several processes, and the
/// workers' memory sampled meanwhile.
fn big_run(plan: &Plan, load: &Load, bins: &Path, redis_url: &str) -> anyhow::Result<Value> {
    let mut args = node_args(redis_url, "bench-big", "bench-big:");
    args.extend(
        [
            "--processes",
            &plan.big_workers.to_string(),
            "--threads",
            "1",
            "--max-conns",
            "100000",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let supervisor = ServerProcess::spawn(bins.join("chat-cluster"), &args)?;
    let before = workers_rss_kib(supervisor.pid());
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), supervisor.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(workers_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let conns = plan.big_conns.to_string();
    let rate = format!("{:.5}", plan.big_rate);
    let procs = plan.big_procs.to_string();
    let sources = plan.big_sources.to_string();
    let report = load.loadgen(
        "big",
        &[supervisor.addr()],
        &[
            "--workload",
            "chat",
            "--room-size",
            "10",
            "--rate",
            &rate,
            "--conns",
            &conns,
            "--duration",
            plan.big_duration,
            "--warmup",
            plan.big_warmup,
            "--procs",
            &procs,
            "--source-addrs",
            &sources,
            "--connect-timeout",
            "60s",
            // Its promise is everyone connected and nothing lost; a generator that falls
            // behind (on two cores, beside six workers) is said in the report, not a failure.
            "--tolerate-generator-lag",
        ],
    );
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let report = report?;
    let peak = peak.load(Ordering::Relaxed);
    let connected = report["connections"]["connected"].as_u64().unwrap_or(0);
    let per_conn = (peak.saturating_sub(before) * 1024)
        .checked_div(connected)
        .unwrap_or(0);
    Ok(json!({
        "workers": plan.big_workers,
        "generator_procs": plan.big_procs,
        "rss_before_kib": before,
        "rss_peak_kib": peak,
        "rss_per_conn_bytes": per_conn,
        "report": report,
    }))
}

/// The summed resident memory of `pid`'s children (the workers), in KiB.
fn workers_rss_kib(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|child| std::fs::read_to_string(format!("/proc/{child}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// The three tables, in Markdown.
fn summarize(plan: &Plan, single: &Value, cluster: &Value, redis: &Value, big: &Value) -> String {
    let p99 = |r: &Value| {
        r["latency_us"]["fanout"]["p99"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let dps = |r: &Value| {
        r["messages"]["deliveries_per_sec"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let lost = |r: &Value| r["messages"]["lost"].as_u64().unwrap_or(0);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "machine: {}{}\n",
        machine_line(),
        if plan.quick {
            " (QUICK MODE: not a measurement)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "Rooms of 10, 1 msg/s per connection, {} connections, {} measured:\n",
        plan.compare_conns, plan.duration
    );
    let _ = writeln!(md, "| target | fan-out p99 | deliveries/s | lost |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for (name, r) in [
        ("chat-async, one process", single),
        (
            "chat-cluster, 3 nodes (members of each room on all 3)",
            cluster,
        ),
        ("Redis pub/sub alone", redis),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.0} µs | {:.0} | {} |",
            p99(r),
            dps(r),
            lost(r)
        );
    }
    let r = &big["report"];
    let _ = writeln!(
        md,
        "\n{} connections, `--processes {}`, generator `--procs {}`, {:.4} msg/s each:\n",
        plan.big_conns, big["workers"], big["generator_procs"], plan.big_rate
    );
    let _ = writeln!(md, "| connected | lost | connect p50 | connect p99 | fan-out p99 | workers' memory per connection |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        md,
        "| {} | {} | {} µs | {} µs | {:.0} µs | {} bytes |",
        r["connections"]["connected"],
        lost(r),
        r["connections"]["connect_us"]["p50"],
        r["connections"]["connect_us"]["p99"],
        p99(r),
        big["rss_per_conn_bytes"]
    );
    md
}
