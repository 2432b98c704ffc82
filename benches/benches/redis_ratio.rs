//! # Against Redis: chat-epoll, chat-async and chat-reactor beside `redis-server`
//!
//! Redis is a single-threaded epoll server written in C, tuned for years, and it speaks a
//! protocol far cheaper to parse than JSON: the fairest yardstick on this machine for what our
//! servers do per request. This bench runs the three fastest servers of the workspace and
//! `redis-server` side by side, with the same load generator (`loadgen run`, release build;
//! `--target redis` speaks RESP3 to Redis), in alternating rounds, and writes one table with
//! the ratios, the machine and the load it carried, and the generator's send lag and CPU beside
//! each server's (`c10k_benches::ratio` says what runs, and how the figures are made).
//!
//! ```text
//! cargo bench -p c10k-benches --bench redis_ratio                      # ~4 min of runs
//! C10K_BENCH_QUICK=1 cargo bench -p c10k-benches --bench redis_ratio   # smoke test
//! C10K_SERVER_CPUS=0-1 C10K_GENERATOR_CPUS=2-15 cargo bench -p c10k-benches --bench redis_ratio
//! ```
//!
//! The last pins every server to CPUs 0–1 and the generator to 2–15 (`c10k_benches::placement`):
//! on a machine with more than two cores, the way to compare the servers on the same cores.
//!
//! Output: the table on stdout, and `target/redis_ratio/results.md` and `results.json`, beside
//! every run's own report (`<target>-<workload>-<round>.run.json`). Every server is a fresh
//! process for every run. Needs `redis-server` on `PATH` (skipped with a note without it, except
//! under CI). Fails when a run could not open its connections or lost messages; ratios below
//! their goals are reported in the table, not failed on: they are measurements.

use c10k_benches::loadgen_cli::{load_average, run_loadgen_on};
use c10k_benches::placement::Placement;
use c10k_benches::ratio::{
    to_markdown, Load, RatioPlan, Results, Sample, Target, EPOLL, REDIS, TARGETS,
};
use c10k_benches::{entry, quick_mode};
use loadgen::server_process::{ServerProcess, SpawnOptions};
use loadgen::sweep::{Machine, RedisServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The name `cargo bench -- <filter>` must match for this target to run.
const NAME: &str = "redis_ratio";

fn main() -> ExitCode {
    entry::run_with_redis(NAME, |redis| measure(&RatioPlan::new(quick_mode()), redis))
}

fn measure(plan: &RatioPlan, redis: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let placement = Placement::from_env().map_err(anyhow::Error::msg)?;
    println!("{NAME}: {}", placement.describe());
    let entry::Workspace { out, bins } = entry::prepare(NAME)?;
    let bench = Bench {
        bins,
        redis: redis.to_path_buf(),
        out: out.clone(),
        plan: plan.clone(),
        placement: placement.clone(),
    };
    let load_before = load_average();

    let mut results = Results::default();
    let mut failed = Vec::new();
    for round in 0..plan.rounds {
        for load in Load::ALL {
            for target in plan.order(round) {
                let name = format!("{}-{}-{}", slug(&TARGETS[target]), load.name(), round + 1);
                println!(
                    "{NAME}: round {}/{}: {} {}",
                    round + 1,
                    plan.rounds,
                    TARGETS[target].name,
                    load.name()
                );
                let report = bench.run(&TARGETS[target], Some(load), &name)?;
                if let Some(why) = broken(&report) {
                    failed.push(format!("{name}: {why}"));
                }
                results.samples[load as usize][target].push(sample(load, &report));
            }
        }
    }
    for (t, target) in TARGETS.iter().enumerate() {
        println!(
            "{NAME}: {} idle connections on {}",
            plan.idle_conns, target.name
        );
        let name = format!("{}-idle", slug(target));
        let report = bench.run(target, None, &name)?;
        if let Some(why) = broken(&report) {
            failed.push(format!("{name}: {why}"));
        }
        results.idle_bytes[t] = report["server"]["rss_per_conn_bytes"].as_f64();
    }
    let load_after = load_average();

    let machine = Machine::detect().describe();
    let context = format!(
        "load average (1 min) {load_before} at the start, {load_after} at the end; {}; \
         generator: `loadgen run` (polling engine), its own processes; {}",
        redis_version(redis),
        placement.describe()
    );
    let table = to_markdown(plan, &machine, &context, &results);
    println!("\n{table}");
    std::fs::write(out.join("results.md"), &table)?;
    let json = json!({
        "schema": "c10k-lab/redis-ratio-bench/v1",
        "machine": machine,
        "context": context,
        "plan": plan,
        "placement": {
            "server_cpus": placement.server.as_ref().map(ToString::to_string),
            "generator_cpus": placement.generator.as_ref().map(ToString::to_string),
        },
        "targets": TARGETS,
        "results": results,
        "ratios": {
            "epoll_vs_redis": {
                "ping": results.ratio(Load::Ping, EPOLL, REDIS),
                "chat": results.ratio(Load::Chat, EPOLL, REDIS),
            },
            "async_vs_epoll": {
                "ping": results.ratio(Load::Ping, 1, EPOLL),
                "chat": results.ratio(Load::Chat, 1, EPOLL),
            },
            "reactor_vs_epoll": {
                "ping": results.ratio(Load::Ping, 2, EPOLL),
                "chat": results.ratio(Load::Chat, 2, EPOLL),
            },
        },
        "wall_s": started.elapsed().as_secs_f64(),
    });
    std::fs::write(out.join("results.json"), serde_json::to_vec_pretty(&json)?)?;
    println!(
        "{NAME}: reports in {} ({:.0} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{NAME}: runs that did not serve every connection or lost messages:");
    for failure in &failed {
        eprintln!("  - {failure}");
    }
    Ok(ExitCode::FAILURE)
}

/// Where the binaries are and the reports go, and the plan.
struct Bench {
    bins: PathBuf,
    redis: PathBuf,
    out: PathBuf,
    plan: RatioPlan,
    /// The server's CPUs and the generator's, when pinned.
    placement: Placement,
}

impl Bench {
    /// One run: a fresh server, `loadgen run` against it (`load`; `None` is the idle run),
    /// its report. The server is stopped when this returns.
    fn run(&self, target: &Target, load: Option<Load>, name: &str) -> anyhow::Result<Value> {
        let (redis, server);
        let (addr, pid) = match target.program {
            None => {
                redis = RedisServer::start_pinned(&self.redis, self.placement.server.as_ref())
                    .map_err(anyhow::Error::msg)?;
                (redis.addr(), redis.pid())
            }
            Some(program) => {
                let mut args = vec!["--idle-timeout", "0"];
                args.extend_from_slice(target.args);
                let options = SpawnOptions {
                    cpus: self.placement.server.clone(),
                    ..SpawnOptions::default()
                };
                server = ServerProcess::spawn_with(self.bins.join(program), &args, &options)?;
                (server.addr(), server.pid())
            }
        };
        self.loadgen(target, load, name, addr, pid)
    }

    /// `loadgen run … --json <out>/<name>.run.json`, with the generator's table on stdout.
    fn loadgen(
        &self,
        target: &Target,
        load: Option<Load>,
        name: &str,
        addr: SocketAddr,
        pid: u32,
    ) -> anyhow::Result<Value> {
        let plan = &self.plan;
        let secs = |d: std::time::Duration| format!("{}ms", d.as_millis());
        let mut args: Vec<String> = Vec::new();
        let mut push = |words: &[&str]| args.extend(words.iter().map(|w| w.to_string()));
        push(&[
            "--addr",
            &addr.to_string(),
            "--server-pid",
            &pid.to_string(),
        ]);
        if target.is_redis() {
            push(&["--target", "redis"]);
        }
        match load {
            Some(load) => {
                push(&["--workload", load.name(), "--closed", "--room-size", "10"]);
                push(&["--conns", &plan.conns.to_string()]);
                push(&[
                    "--warmup",
                    &secs(plan.warmup),
                    "--duration",
                    &secs(plan.duration),
                ]);
            }
            None => {
                push(&["--workload", "idle", "--room-size", "10"]);
                push(&["--conns", &plan.idle_conns.to_string()]);
                push(&["--warmup", "1s", "--duration", &secs(plan.idle_duration)]);
            }
        }
        // A run that failed (lost messages, a generator that fell behind) exits 1 and still
        // writes its report: that is a result.
        let json = self.out.join(format!("{name}.run.json"));
        let cpus = self.placement.generator.as_ref();
        run_loadgen_on(cpus, &self.bins.join("loadgen"), &args, &json)
    }
}

/// What one run measured, from its report.
fn sample(load: Load, report: &Value) -> Sample {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let rate = match load {
        Load::Ping => f(&report["messages"]["qps"]),
        Load::Chat => f(&report["messages"]["deliveries_per_sec"]),
    };
    let problems = match report["ok"].as_bool() {
        Some(true) => Vec::new(),
        _ => report["problems"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    Sample {
        rate,
        send_lag_p50_us: f(&report["latency_us"]["send_lag"]["p50"]),
        send_lag_p99_us: f(&report["latency_us"]["send_lag"]["p99"]),
        generator_us_per_msg: f(&report["generator"]["cpu_us_per_msg"]),
        server_us_per_msg: f(&report["server"]["cpu_us_per_msg"]),
        server_cpu_percent: f(&report["server"]["cpu_percent"]),
        problems,
    }
}

/// Why a run is no measurement at all: not every connection opened, or messages were lost.
/// (A generator that fell behind is a problem the table shows, not a broken run.)
fn broken(report: &Value) -> Option<String> {
    let attempted = report["connections"]["attempted"].as_u64().unwrap_or(0);
    let connected = report["connections"]["connected"].as_u64().unwrap_or(0);
    let lost = report["messages"]["lost"].as_u64().unwrap_or(0);
    if connected < attempted {
        return Some(format!("{connected} of {attempted} connections opened"));
    }
    (lost > 0).then(|| format!("{lost} copies lost"))
}

/// A file-name-friendly form of a target's name.
fn slug(target: &Target) -> String {
    target.program.unwrap_or("redis").to_string()
}

/// `Redis 7.0.15`, from `redis-server --version`.
fn redis_version(program: &Path) -> String {
    let output = Command::new(program).arg("--version").output();
    let text = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .map(|v| format!("Redis {v}"))
        .unwrap_or_else(|| "Redis (version unknown)".into())
}
