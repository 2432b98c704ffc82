//! # The C10K comparison: every server model at 100, 1,000 and 10,000 connections
//!
//! The question of the whole workspace, answered on this machine: how does each I/O model
//! (blocking, a thread per connection, a thread pool, select, poll, epoll level- and
//! edge-triggered, a hand-written reactor, async, io_uring) hold up as connections grow? For each
//! workload of [`C10kPlan`] (the chat room workload, and ping), the load generator's sweep
//! starts each server binary in its own process, drives it at each connection count, and stops
//! it; this bench then writes the charts and prints the summary tables.
//!
//! Criterion's model (many short, identical iterations) does not fit a run of thousands of
//! stateful connections, so this target has its own `main` (`harness = false`) and reuses the
//! load generator as a library: there is exactly one load generator in the workspace.
//!
//! ```text
//! cargo bench -p c10k-benches --bench c10k                      # ~5 min of runs on 2 cores
//! C10K_BENCH_QUICK=1 cargo bench -p c10k-benches --bench c10k   # smoke test: ~1 min of runs
//! ```
//!
//! (Plus building the server binaries in release first: a no-op when they are fresh, a few
//! minutes from a clean checkout.)
//!
//! Output: `target/c10k/index.html` (open it in a browser) embedding, per workload,
//! `target/c10k/<workload>/{qps,p99,memory}.svg`, beside `results.{md,csv,json}`; the summary
//! tables go to stdout. In quick mode the bench fails if a model with no known limit could not
//! serve a level, which makes it CI's smoke test of every server and of the generator.

use c10k_benches::index_html::write_index;
use c10k_benches::plan::{unexpected_failures, C10kPlan};
use c10k_benches::{entry, quick_mode};
use loadgen::sweep::{self, write_charts};
use std::process::ExitCode;
use std::time::Instant;

/// The name `cargo bench -- <filter>` must match for this target to run.
const NAME: &str = "c10k";

fn main() -> ExitCode {
    entry::run(NAME, || compare(&C10kPlan::new(quick_mode())))
}

/// Builds the servers, sweeps every workload, writes the report, prints the tables.
fn compare(plan: &C10kPlan) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir = entry::prepare(NAME)?.out;
    let models = sweep::models::select("all")?;

    let mut runs = Vec::new();
    for workload in &plan.workloads {
        println!(
            "\n{NAME}: workload `{}` at {:?} connections, {} models{}",
            workload.name,
            plan.levels,
            models.len(),
            if plan.quick { " (quick mode)" } else { "" }
        );
        let results = sweep::sweep(&plan.sweep_config(workload, models.clone()))?;
        // The load generator's own writers: the same files `loadgen sweep` produces.
        let out = dir.join(workload.name);
        std::fs::create_dir_all(&out)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
        results.write_json(&out.join("results.json"))?;
        results.write_csv(&out.join("results.csv"))?;
        results.write_markdown(&out.join("results.md"))?;
        write_charts(&results, &out)?;
        runs.push((workload.clone(), results));
    }
    let index = write_index(&dir, plan, &runs)?;

    for (workload, results) in &runs {
        println!(
            "\n## {NAME}: `{}`\n\n{}",
            workload.name,
            results.to_markdown()
        );
    }
    println!(
        "{NAME}: charts in {} ({:.0} s)",
        index.display(),
        started.elapsed().as_secs_f64()
    );

    if plan.quick {
        let results: Vec<_> = runs.into_iter().map(|(_, r)| r).collect();
        let failures = unexpected_failures(&models, &results);
        if !failures.is_empty() {
            eprintln!("{NAME}: smoke test failed; models with no known limit failed a level:");
            for failure in &failures {
                eprintln!("  - {failure}");
            }
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
