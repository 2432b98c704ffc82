//! A generator that cannot keep its schedule has measured itself, not the server: the run must
//! say so first, fail, and exit non-zero, however clean the server was.

use loadgen::run::{RunReport, BEHIND};
use loadgen::server_process::ServerProcess;
use loadgen::sweep::find_or_build;
use std::process::Command;

/// One engine thread offered a million messages a second (20 connections × 50,000 msg/s)
/// against chat-epoll: it cannot write them on time, its send lag runs to tens of
/// milliseconds, and the run fails with "the generator fell behind: these figures bound the
/// generator, not the server" as the first words of its verdict, in the JSON too.
#[test]
fn a_starved_generator_fails_loudly() {
    let program = find_or_build("chat-epoll", true).expect("chat-epoll binary");
    let server = ServerProcess::spawn(&program, ["--idle-timeout", "0"]).expect("chat-epoll");
    let dir = std::env::temp_dir().join(format!("loadgen-run-behind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("run.json");
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--addr", &server.addr().to_string()])
        .args(["--conns", "20", "--room-size", "1", "--workload", "ping"])
        .args(["--rate", "50000", "--threads", "1"])
        .args(["--duration", "1s", "--warmup", "200ms", "--drain", "1s"])
        .args(["--connect-timeout", "20s"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!("FAILED: {BEHIND} (")),
        "the verdict must open with it:\n{stdout}"
    );
    let report = RunReport::from_json(&std::fs::read_to_string(&json).expect("json written"))
        .expect("a run report");
    assert!(!report.ok);
    assert!(report.generator.behind);
    assert!(!report.messages.rate_kept);
    assert!(
        report.problems[0].starts_with(BEHIND),
        "{:?}",
        report.problems
    );
    assert!(
        report.latency_us.send_lag.p99 > report.config.max_send_lag_us,
        "send lag p99 {} µs",
        report.latency_us.send_lag.p99
    );
    assert_eq!(report.connections.connected, 20, "the server was fine");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
