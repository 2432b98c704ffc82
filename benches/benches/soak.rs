//! # Soak and churn: does anything grow?
//!
//! 10,000 connections in rooms of 10, each sending 1 message/s, while the last member of every
//! room closes and reconnects — 500 closes and reopens per second, continuously — for 10
//! minutes against each of chat-epoll, chat-async and chat-reactor (`loadgen run --churn`).
//! The generator samples the server's resident memory and open descriptors every second and
//! judges the run: memory flat (under 5 % growth from the end of the warm-up to the end), and
//! descriptors back to their baseline once every connection is closed; and, as in every run,
//! the members that stayed lost nothing and saw every sender in order.
//!
//! ```text
//! cargo bench -p c10k-benches --bench soak                      # 3 × 10 minutes
//! SOAK_SECS=120 cargo bench -p c10k-benches --bench soak        # 3 × 2 minutes
//! C10K_BENCH_QUICK=1 cargo bench -p c10k-benches --bench soak   # smoke test, small numbers
//! ```
//!
//! Output: the table on stdout; `target/soak/results.md` (the verdicts, and each server's time
//! series), `results.json`, and the generator's reports (`<server>.run.json`).

use c10k_benches::loadgen_cli::{machine, number, run_loadgen};
use c10k_benches::{entry, quick_mode};
use loadgen::server_process::ServerProcess;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

/// The name `cargo bench -- <filter>` must match for this target to run.
const NAME: &str = "soak";

/// The servers soaked, with the flags they run with.
const SERVERS: [(&str, &[&str]); 3] = [
    ("chat-epoll", &["--idle-timeout", "0"]),
    ("chat-async", &["--idle-timeout", "0"]),
    ("chat-reactor", &["--idle-timeout", "0"]),
];

/// The sizes of one run.
struct Plan {
    quick: bool,
    conns: usize,
    churn: f64,
    secs: u64,
    warmup_secs: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let secs = std::env::var("SOAK_SECS")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if quick {
            Plan {
                quick,
                conns: 1_000,
                churn: 100.0,
                secs: secs.unwrap_or(5),
                warmup_secs: 2,
            }
        } else {
            let secs = secs.unwrap_or(600);
            Plan {
                quick,
                conns: 10_000,
                churn: 500.0,
                secs,
                // A tenth of the run, at least 10 s and at most a minute, to settle.
                warmup_secs: (secs / 10).clamp(10, 60),
            }
        }
    }

    fn loadgen_args(&self, addr: &str, pid: u32) -> Vec<String> {
        [
            "--addr",
            addr,
            "--conns",
            &self.conns.to_string(),
            "--room-size",
            "10",
            "--rate",
            "1",
            "--churn",
            &self.churn.to_string(),
            "--duration",
            &format!("{}s", self.secs),
            "--warmup",
            &format!("{}s", self.warmup_secs),
            "--connect-rate",
            "5000",
            "--connect-timeout",
            "30s",
            "--drain",
            "10s",
            // Several source addresses: the churn's closed sockets linger in TIME_WAIT.
            "--source-addrs",
            "4",
            "--server-pid",
            &pid.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

fn main() -> ExitCode {
    entry::run(NAME, || soak(&Plan::new(quick_mode())))
}

fn soak(plan: &Plan) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let workspace = entry::prepare(NAME)?;
    let mut results = Vec::new();
    for (server, flags) in SERVERS {
        println!(
            "\n{NAME}: {server}, {} connections, churn {}/s, {} s",
            plan.conns, plan.churn, plan.secs
        );
        let process = ServerProcess::spawn(workspace.bins.join(server), flags)?;
        let report = run_loadgen(
            &workspace.bins.join("loadgen"),
            &plan.loadgen_args(&process.addr().to_string(), process.pid()),
            &workspace.out.join(format!("{server}.run.json")),
        )?;
        drop(process);
        results.push((server, report));
    }
    let summary = summarize(plan, &results);
    let json = json!({
        "schema": "c10k-lab/soak-bench/v1",
        "quick": plan.quick,
        "machine": machine(),
        "conns": plan.conns,
        "churn_per_sec": plan.churn,
        "secs": plan.secs,
        "servers": results.iter().map(|(s, r)| json!({"server": s, "report": r})).collect::<Vec<_>>(),
        "wall_s": started.elapsed().as_secs_f64(),
    });
    workspace.write_results(NAME, &summary, &json)?;
    // The soak's promise, for every server: the stayers whole, every reconnect back, no leak.
    // (Memory growth is judged by the verdict, and reported; in quick mode the run is too short
    // to judge it.)
    let sound = |r: &Value| {
        r["connections"]["connected"].as_u64() == Some(plan.conns as u64)
            && r["messages"]["lost"] == 0
            && r["messages"]["out_of_order"] == 0
            && r["churn"]["reconnect_failures"] == 0
            && r["soak"]["fds_back"] == true
    };
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| !sound(r))
        .map(|(s, _)| *s)
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{NAME}: lost messages, failed reconnects or leaked descriptors: {}",
            failed.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The verdict table, then each server's time series (every `step`-th sample).
fn summarize(plan: &Plan, results: &[(&str, Value)]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Soak: {} connections, churn {}/s, {} s each{}\n\nMachine: {}\n",
        plan.conns,
        plan.churn,
        plan.secs,
        if plan.quick { " (quick mode)" } else { "" },
        machine()
    );
    let _ = writeln!(
        md,
        "| server | connected | stayers lost / out of order | churn achieved/s | reconnects failed | \
         RSS warm → end (growth) | fds before / peak / after | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for (server, r) in results {
        let soak = &r["soak"];
        let _ = writeln!(
            md,
            "| {server} | {} | {} / {} | {} | {} | {} → {} KiB ({:+} %) | {} / {} / {} | {} |",
            r["connections"]["connected"],
            r["messages"]["lost"],
            r["messages"]["out_of_order"],
            number(r, &["churn", "achieved_per_sec"]),
            r["churn"]["reconnect_failures"],
            soak["rss_warm_kib"],
            soak["rss_end_kib"],
            number(r, &["soak", "rss_growth_percent"]),
            soak["fds_baseline"],
            soak["fds_peak"],
            soak["fds_after"],
            soak["verdict"].as_str().unwrap_or("no server figures")
        );
    }
    for (server, r) in results {
        let series = r["series"].as_array().cloned().unwrap_or_default();
        let step = (series.len() / 30).max(1);
        let _ = writeln!(
            md,
            "\n## {server} over time\n\n| t (s) | connected | server RSS (KiB) | server fds | \
             generator RSS (KiB) | generator fds |\n|---:|---:|---:|---:|---:|---:|"
        );
        for s in series.iter().step_by(step) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s["t_s"],
                s["connected"],
                s["server_rss_kib"],
                s["server_fds"],
                s["generator_rss_kib"],
                s["generator_fds"]
            );
        }
    }
    md
}
