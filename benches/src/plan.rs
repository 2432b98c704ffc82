//! What the `c10k` bench runs: which connection counts, which workloads, for how long.
//!
//! Two workloads, each run against every model at every level:
//!
//! - **chat** — the room workload: rooms of 10, every member sends one message per second on a
//!   fixed schedule (open loop), so at 10,000 connections the server receives 10,000 messages
//!   and writes 100,000 deliveries per second. The offered load is the same for every model;
//!   what differs is whether a model keeps up, and its latency (p99, coordinated-omission
//!   corrected).
//! - **ping** — request/response without fan-out, in closed loop: each connection sends its
//!   next `ping` as soon as the `pong` is back, so the QPS line is the most each model can
//!   answer on this machine (server and generator share its cores).
//!
//! The full plan runs 100, 1,000 and 10,000 connections with 3 s measured after 1 s of warm-up
//! (`cargo bench` must stay within 15 minutes on two cores); quick mode runs 10 and 50
//! connections for 1 s, a smoke test for CI.

use loadgen::run::{RunConfig, Workload};
use loadgen::sweep::{models, ModelSpec, Status, SweepConfig, SweepResults};
use std::net::SocketAddr;
use std::time::Duration;

/// One workload of the comparison.
#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    /// The name of its directory under `target/c10k/` and its heading in the report.
    pub name: &'static str,
    /// What it shows, one sentence for the report.
    pub description: &'static str,
    pub workload: Workload,
    /// Messages per second per connection (open loop); `None` is closed loop.
    pub rate: Option<f64>,
    pub room_size: usize,
}

/// The whole comparison.
#[derive(Debug, Clone)]
pub struct C10kPlan {
    /// Connection counts, ascending: a model that cannot open all connections at one level is
    /// not tried at the higher ones (the sweep marks them skipped).
    pub levels: Vec<usize>,
    pub workloads: Vec<WorkloadPlan>,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long to wait for messages still in flight after the measured window.
    pub drain: Duration,
    /// Per-connection bound on connect and on join. It is also how long the single-client
    /// blocking server keeps the generator waiting before its level counts as failed.
    pub connect_timeout: Duration,
    /// Whether this is quick mode (`C10K_BENCH_QUICK=1`).
    pub quick: bool,
}

impl C10kPlan {
    /// The plan for `cargo bench`, or for quick mode.
    pub fn new(quick: bool) -> C10kPlan {
        let workloads = vec![
            WorkloadPlan {
                name: "chat",
                description: "rooms of 10, each member sends 1 message/s (open loop); every \
                              message is delivered to the 10 members of its room",
                workload: Workload::Chat,
                rate: Some(1.0),
                room_size: 10,
            },
            WorkloadPlan {
                name: "ping",
                description: "ping/pong in closed loop: each connection sends its next ping \
                              as soon as the pong is back (the most each model answers)",
                workload: Workload::Ping,
                rate: None,
                room_size: 10,
            },
        ];
        if quick {
            C10kPlan {
                levels: vec![10, 50],
                workloads,
                warmup: Duration::from_millis(200),
                duration: Duration::from_secs(1),
                drain: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(2),
                quick,
            }
        } else {
            C10kPlan {
                levels: vec![100, 1_000, 10_000],
                workloads,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(3),
                drain: Duration::from_secs(2),
                connect_timeout: Duration::from_secs(5),
                quick,
            }
        }
    }

    /// The sweep of every model in `models` for one workload.
    pub fn sweep_config(&self, workload: &WorkloadPlan, models: Vec<ModelSpec>) -> SweepConfig {
        // `addrs`, `conns` and `server_pids` are filled in by the sweep for each level.
        let mut run = RunConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), 1);
        run.workload = workload.workload;
        run.rate = workload.rate;
        run.room_size = workload.room_size;
        run.warmup = self.warmup;
        run.duration = self.duration;
        run.drain = self.drain;
        run.connect_timeout = self.connect_timeout;
        // The live progress line is only drawn on a terminal.
        run.progress = true;
        SweepConfig {
            models,
            levels: self.levels.clone(),
            run,
            // The bench builds every binary up front (see `release_build`): one that is still
            // missing after that is a failure to report, not something to build mid-sweep.
            build_missing: false,
            echo: true,
        }
    }
}

/// The smoke test's verdict: levels that a model with no known limit failed to serve. In quick
/// mode (10 and 50 connections) every model but the single-client blocking one serves every
/// level, so anything listed here is a regression, and the bench fails. A level the server
/// served while the generator fell behind (`behind`, CI machines are busy) is not a failure of
/// the server, nor is a model skipped because it cannot run on this machine at all (chat-uring
/// where io_uring is unavailable, `models::cannot_run_here`): where it runs, it is held to every
/// level like the others.
pub fn unexpected_failures(models: &[ModelSpec], runs: &[SweepResults]) -> Vec<String> {
    let mut failures = Vec::new();
    for results in runs {
        for row in &results.rows {
            let limited = models
                .iter()
                .any(|m| m.name == row.model && m.limit_note.is_some());
            let failed = matches!(row.status, Status::Failed | Status::Skipped);
            if failed && !limited && !models::cannot_run_here(row) {
                failures.push(format!(
                    "{} at {} connections ({}): {}",
                    row.model,
                    row.conns,
                    results.settings.workload,
                    row.reason.as_deref().unwrap_or("no reason given")
                ));
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_results::chat_results;
    use loadgen::sweep::SweepRow;

    /// `cargo bench` runs the levels on both workloads; quick mode stays small.
    #[test]
    fn full_and_quick_levels() {
        let full = C10kPlan::new(false);
        assert_eq!(full.levels, [100, 1_000, 10_000]);
        let names: Vec<_> = full.workloads.iter().map(|w| w.name).collect();
        assert_eq!(names, ["chat", "ping"]);
        let quick = C10kPlan::new(true);
        assert_eq!(quick.levels, [10, 50]);
        assert!(quick.duration <= Duration::from_secs(1));
    }

    /// The sweep gets valid run settings for each workload (the generator would refuse others).
    #[test]
    fn sweep_configs_are_valid_runs() {
        for quick in [false, true] {
            let plan = C10kPlan::new(quick);
            for workload in &plan.workloads {
                let config = plan.sweep_config(workload, Vec::new());
                assert_eq!(config.levels, plan.levels);
                assert_eq!(config.run.workload, workload.workload);
                assert!(!config.build_missing);
                let mut run = config.run.clone();
                run.conns = *plan.levels.last().unwrap_or(&1);
                run.validate().expect("a valid run");
            }
        }
    }

    /// Only failures of models without a known limit count against the smoke test.
    #[test]
    fn only_unexpected_failures_fail_the_smoke_test() {
        let models = loadgen::sweep::models::select("blocking,epoll-edge").expect("known models");
        let limited = models[0].name.clone();
        let unlimited = models[1].name.clone();
        assert!(models[0].limit_note.is_some() && models[1].limit_note.is_none());
        let mut results = chat_results(vec![
            SweepRow::without_report(&limited, 10, Status::Failed, "one at a time".into()),
            SweepRow::without_report(&limited, 50, Status::Skipped, "not tried".into()),
        ]);
        assert!(unexpected_failures(&models, std::slice::from_ref(&results)).is_empty());
        results.rows.push(SweepRow::without_report(
            &unlimited,
            50,
            Status::Failed,
            "lost 3 messages".into(),
        ));
        let failures = unexpected_failures(&models, &[results]);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("lost 3 messages"), "{failures:?}");
    }

    /// chat-uring skipped where io_uring is unavailable does not fail the smoke test; chat-uring
    /// failing a level where it runs does.
    #[test]
    fn a_model_that_cannot_run_here_is_excused_only_from_running() {
        let models = loadgen::sweep::models::select("uring").expect("known models");
        let uring = models[0].name.clone();
        assert!(
            models[0].limit_note.is_none(),
            "chat-uring has no known limit"
        );
        let unavailable = "io_uring unavailable here: seccomp (chat-uring needs io_uring: …)";
        let mut results = chat_results(
            [10, 50]
                .map(|conns| {
                    SweepRow::without_report(&uring, conns, Status::Skipped, unavailable.into())
                })
                .to_vec(),
        );
        assert!(unexpected_failures(&models, std::slice::from_ref(&results)).is_empty());
        results.rows = vec![
            SweepRow::without_report(&uring, 10, Status::Failed, "lost 3 messages".into()),
            SweepRow::without_report(&uring, 50, Status::Skipped, "failed at 10".into()),
        ];
        assert_eq!(unexpected_failures(&models, &[results]).len(), 2);
    }
}
