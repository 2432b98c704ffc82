//! # A connect flood past `--max-conns`: do the served clients pay for it?
//!
//! chat-epoll started with `--max-conns` a little above a measured load of 1,000 connections
//! (rooms of 10, 2 messages/s each, open loop). The same load is measured twice: alone, then
//! with a flood of new connections at 2,000/s that the server must refuse (`server_full`, then
//! close; PROTOCOL.md, guarantee 8). Printed side by side: the served clients' round-trip and
//! fan-out p99, and what the flood got. A server that lets the flood into its event loop's way
//! shows it in the second p99.
//!
//! ```text
//! cargo bench -p c10k-benches --bench flood
//! C10K_BENCH_QUICK=1 cargo bench -p c10k-benches --bench flood   # smoke test
//! ```
//!
//! Output: the table on stdout, `target/flood/results.md` and `results.json`, and the
//! generator's reports (`calm.run.json`, `flooded.run.json`).

use c10k_benches::flood::Flood;
use c10k_benches::loadgen_cli::{machine, number, run_loadgen};
use c10k_benches::{entry, quick_mode};
use loadgen::server_process::ServerProcess;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const NAME: &str = "flood";

struct Plan {
    quick: bool,
    conns: usize,
    /// Connections the server serves beyond the measured load, before `server_full`.
    headroom: usize,
    flood_rate: f64,
    duration: &'static str,
    warmup: &'static str,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                conns: 200,
                headroom: 10,
                flood_rate: 300.0,
                duration: "3s",
                warmup: "1s",
            }
        } else {
            Plan {
                quick,
                conns: 1_000,
                headroom: 20,
                flood_rate: 2_000.0,
                duration: "20s",
                warmup: "5s",
            }
        }
    }
}

fn main() -> ExitCode {
    entry::run(NAME, || measure(&Plan::new(quick_mode())))
}

fn measure(plan: &Plan) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let workspace = entry::prepare(NAME)?;
    let max_conns = (plan.conns + plan.headroom).to_string();
    let server = ServerProcess::spawn(
        workspace.bins.join("chat-epoll"),
        ["--idle-timeout", "0", "--max-conns", &max_conns],
    )?;
    let args = |pid: u32| -> Vec<String> {
        [
            "--addr",
            &server.addr().to_string(),
            "--conns",
            &plan.conns.to_string(),
            "--room-size",
            "10",
            "--rate",
            "2",
            "--duration",
            plan.duration,
            "--warmup",
            plan.warmup,
            "--server-pid",
            &pid.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let loadgen = workspace.bins.join("loadgen");
    println!("\n{NAME}: {} connections, no flood", plan.conns);
    let calm = run_loadgen(
        &loadgen,
        &args(server.pid()),
        &workspace.out.join("calm.run.json"),
    )?;

    println!(
        "\n{NAME}: {} connections, and a flood of {}/s past --max-conns {max_conns}",
        plan.conns, plan.flood_rate
    );
    // The flood starts once the measured load has connected (its ramp takes well under a
    // second at the default connect rate) and runs until the run ends.
    let flood_run = {
        let (loadgen, args, json) = (
            loadgen.clone(),
            args(server.pid()),
            workspace.out.join("flooded.run.json"),
        );
        std::thread::spawn(move || run_loadgen(&loadgen, &args, &json))
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut flood = Flood::start(server.addr(), plan.flood_rate, 4);
    let flooded = flood_run
        .join()
        .map_err(|_| anyhow::anyhow!("the flooded run panicked"))??;
    let flood_rate = flood.stop();
    let counts = &flood.counts;
    let flood_json = json!({
        "asked_per_sec": plan.flood_rate,
        "achieved_per_sec": (flood_rate * 10.0).round() / 10.0,
        "server_full": counts.server_full.load(Ordering::Relaxed),
        "served": counts.served.load(Ordering::Relaxed),
        "failed": counts.failed.load(Ordering::Relaxed),
    });
    let summary = summarize(plan, &calm, &flooded, &flood_json);
    let json = json!({
        "schema": "c10k-lab/flood-bench/v1",
        "quick": plan.quick,
        "machine": machine(),
        "max_conns": plan.conns + plan.headroom,
        "calm": calm,
        "flooded": flooded,
        "flood": flood_json,
        "wall_s": started.elapsed().as_secs_f64(),
    });
    workspace.write_results(NAME, &summary, &json)?;
    // The served clients must stay whole under the flood; their latency is the measurement.
    let whole = |r: &Value| {
        r["connections"]["connected"].as_u64() == Some(plan.conns as u64)
            && r["connections"]["dropped"] == 0
            && r["messages"]["lost"] == 0
    };
    Ok(if whole(&calm) && whole(&flooded) {
        ExitCode::SUCCESS
    } else {
        eprintln!("{NAME}: the served clients lost connections or messages");
        ExitCode::FAILURE
    })
}

fn summarize(plan: &Plan, calm: &Value, flooded: &Value, flood: &Value) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# A connect flood past --max-conns{}\n\nMachine: {}\n\nchat-epoll, --max-conns {}, \
         measured load {} connections in rooms of 10 at 2 msg/s each.\n",
        if plan.quick { " (quick mode)" } else { "" },
        machine(),
        plan.conns + plan.headroom,
        plan.conns
    );
    let _ = writeln!(
        md,
        "| run | round trip p50 / p99 µs | fan-out p99 µs | send lag p99 µs | server CPU % | \
         lost |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, r) in [("no flood", calm), ("flood", flooded)] {
        let _ = writeln!(
            md,
            "| {name} | {} / {} | {} | {} | {} | {} |",
            number(r, &["latency_us", "round_trip", "p50"]),
            number(r, &["latency_us", "round_trip", "p99"]),
            number(r, &["latency_us", "fanout", "p99"]),
            number(r, &["latency_us", "send_lag", "p99"]),
            number(r, &["server", "cpu_percent"]),
            r["messages"]["lost"]
        );
    }
    let _ = writeln!(
        md,
        "\nThe flood: {} connections/s asked, {} achieved; {} answered `server_full`, {} served, \
         {} failed (refused, reset or timed out).",
        flood["asked_per_sec"],
        flood["achieved_per_sec"],
        flood["server_full"],
        flood["served"],
        flood["failed"]
    );
    md
}
