//! A sweep's results to test with (the page and the smoke test's verdict read the same
//! thing): the chat workload at 10 and 50 connections on this machine, with the rows given.

use loadgen::sweep::{Machine, SweepResults, SweepRow, SweepSettings, SWEEP_SCHEMA};

/// Results of the chat workload, open loop, at 10 and 50 connections, holding `rows`.
pub fn chat_results(rows: Vec<SweepRow>) -> SweepResults {
    SweepResults {
        schema: SWEEP_SCHEMA.to_string(),
        started_unix_s: 0,
        machine: Machine::detect(),
        settings: SweepSettings {
            workload: "chat".into(),
            mode: "open".into(),
            rate_per_conn: Some(1.0),
            room_size: 10,
            duration_s: 1.0,
            warmup_s: 0.2,
            levels: vec![10, 50],
        },
        rows,
    }
}
