//! The checker against the in-process test server: a correct server passes every scenario (via
//! the library and via the `loadgen check` binary), a `--single` run against a one-at-a-time
//! server passes the one-client scenarios and SKIPs (never passes) the others.

use loadgen::check::{run_checks, CheckConfig, Outcome};
use loadgen::testkit::{nothing_listens, Faults, Limits, TestServer};
use std::process::Command;

/// The scenarios that need two clients connected at once.
const MULTI_CLIENT: [&str; 17] = [
    "join.joined_event",
    "nick.room_notified",
    "message.broadcast_to_room",
    "private.delivered",
    "join_room.move_notifies",
    "join_room.same_room",
    "list_users.named_room",
    "list_rooms.sorted_counts",
    "quit.room_notified",
    "quit.hangup_notifies_room",
    "errors.nickname_taken",
    "order.concurrent_senders",
    "order.stalled_reader",
    "isolation.bad_input",
    "limits.server_full",
    "backlog.burst_spares_a_full_speed_reader",
    "limits.max_conns_per_ip",
];

fn skipped(report: &loadgen::check::CheckReport) -> Vec<&'static str> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skip(_)))
        .map(|r| r.name)
        .collect()
}

/// A correct server passes every scenario; with every limit given, only the rate and
/// per-address scenarios (which need a server started with those limits) are skipped.
#[test]
fn correct_server_passes_everything() {
    let server = TestServer::start_limited(Limits::small(), Faults::default()).expect("start");
    let report = run_checks(server.addr(), &Limits::small().check_config());
    println!("{report}");
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(
        skipped(&report),
        ["limits.rate_limited", "limits.max_conns_per_ip"]
    );
    assert!(report.passed() >= 60, "{report}");
}

/// The per-address scenario (connections from 127.0.0.3 and 127.0.0.4) passes against a server
/// limited to 4 connections per address, where every other scenario is skipped, and fails
/// against a server without the limit (the fifth connection is served).
#[test]
fn the_per_address_scenario_tells_a_limited_server_from_an_unlimited_one() {
    let config = CheckConfig {
        max_conns_per_ip: Some(4),
        ..CheckConfig::default()
    };
    let name = "limits.max_conns_per_ip";
    for limit in [4, 0] {
        let mut limits = Limits::small();
        limits.hub.max_conns_per_ip = limit;
        let server = TestServer::start_limited(limits, Faults::default()).expect("start");
        let report = run_checks(server.addr(), &config);
        match (limit, report.outcome(name)) {
            (4, Some(Outcome::Pass)) => assert_eq!(report.passed(), 1, "{report}"),
            (0, Some(Outcome::Fail(_))) => assert_eq!(report.failed(), 1, "{report}"),
            (_, other) => panic!("limit {limit}: {other:?}\n{report}"),
        }
    }
}

/// `--single` against a one-connection-at-a-time server: every one-client scenario passes,
/// every multi-client one is SKIPped with the reason, none passes.
#[test]
fn single_mode_skips_multi_client_scenarios() {
    let mut limits = Limits::small();
    limits.one_at_a_time = true;
    let server = TestServer::start_limited(limits.clone(), Faults::default()).expect("start");
    let config = CheckConfig {
        single: true,
        ..limits.check_config()
    };
    let report = run_checks(server.addr(), &config);
    println!("{report}");
    assert_eq!(report.failed(), 0, "{report}");
    for name in MULTI_CLIENT {
        match report.outcome(name) {
            Some(Outcome::Skip(why)) => assert!(why.contains("--single"), "{name}: {why}"),
            other => panic!("{name} should SKIP with --single, got {other:?}"),
        }
    }
    let mut expected_skips: Vec<&str> = MULTI_CLIENT.to_vec();
    expected_skips.push("limits.rate_limited");
    let mut skips = skipped(&report);
    skips.sort_unstable();
    expected_skips.sort_unstable();
    assert_eq!(skips, expected_skips);
}

/// `--only` runs just the matching scenarios.
#[test]
fn only_filters_scenarios_by_name() {
    let server = TestServer::start(Faults::default()).expect("start");
    let config = CheckConfig {
        only: Some("ping".into()),
        ..CheckConfig::default()
    };
    let report = run_checks(server.addr(), &config);
    let names: Vec<&str> = report.results.iter().map(|r| r.name).collect();
    assert_eq!(names, ["ping.pong", "order.pipelined_pings"]);
    assert_eq!(report.passed(), 2);
}

/// The binary prints one `PASS`/`SKIP` line per scenario and the closing line
/// `N passed, 0 failed, N skipped`, and exits 0.
#[test]
fn binary_output_format_and_exit_code() {
    let server = TestServer::start_limited(Limits::small(), Faults::default()).expect("start");
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["check", "--addr", &server.addr().to_string()])
        .args([
            "--max-line",
            "4096",
            "--max-conns",
            "32",
            "--idle-timeout",
            "2",
        ])
        .args(["--max-backlog", "262144"])
        .output()
        .expect("run loadgen check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let (last, scenarios) = lines.split_last().expect("some output");
    for line in scenarios {
        assert!(
            line.starts_with("PASS ") || line.starts_with("SKIP "),
            "unexpected line {line:?}"
        );
    }
    let passed = scenarios.iter().filter(|l| l.starts_with("PASS ")).count();
    assert_eq!(*last, format!("{passed} passed, 0 failed, 2 skipped"));
    assert!(scenarios.contains(&"SKIP limits.rate_limited: pass --rate-limit (the server's setting) to test limits.rate_limited"));
}

/// Against an address where nothing listens, every scenario FAILs (none passes, none panics)
/// and the binary exits 1.
#[test]
fn nothing_listening_fails_every_scenario() {
    let closed = nothing_listens();
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "check",
            "--addr",
            &closed.addr().to_string(),
            "--timeout-ms",
            "500",
        ])
        .output()
        .expect("run loadgen check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("PASS "), "{stdout}");
    assert!(!stdout.contains("panicked"), "{stdout}");
    assert!(stdout.contains("cannot connect"), "{stdout}");
    assert!(stdout.trim_end().ends_with("skipped"), "{stdout}");
}
