//! The checker can fail: against a TestServer with an injected fault, `loadgen check` exits
//! non-zero and names the scenarios that catch that fault.

use chat_core::HubConfig;
use loadgen::check::{run_checks, CheckConfig, Outcome};
use loadgen::testkit::{Faults, Limits, TestServer};
use std::process::Command;
use std::time::Duration;

/// Runs `loadgen check` with every limit of a TestServer; returns (exit code, stdout lines).
fn check_binary(server: &TestServer) -> (Option<i32>, Vec<String>) {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["check", "--addr", &server.addr().to_string()])
        .args(["--max-line", &TestServer::MAX_LINE.to_string()])
        .args(["--max-conns", "32", "--idle-timeout", "2"])
        .args(["--max-backlog", &TestServer::MAX_BACKLOG.to_string()])
        .output()
        .expect("run loadgen check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    (
        output.status.code(),
        stdout.lines().map(String::from).collect(),
    )
}

fn faulty(faults: Faults) -> TestServer {
    let config = HubConfig {
        max_conns: 32,
        idle_timeout: Some(Duration::from_secs(2)),
        ..HubConfig::default()
    };
    TestServer::start_with(config, faults).expect("start the test server")
}

/// The FAIL lines of a run (the scenario names), asserting a non-zero exit code.
fn failed_scenarios(faults: Faults) -> Vec<String> {
    let server = faulty(faults);
    let (code, lines) = check_binary(&server);
    assert_eq!(
        code,
        Some(1),
        "a faulty server must fail the check:\n{}",
        lines.join("\n")
    );
    let summary = lines.last().cloned().unwrap_or_default();
    assert!(summary.contains(" failed, "), "closing line: {summary}");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .filter_map(|l| l.split(':').next())
        .map(String::from)
        .collect()
}

fn assert_named(failed: &[String], expected: &[&str]) {
    for name in expected {
        assert!(
            failed.iter().any(|f| f == name),
            "{name} should FAIL; failed: {failed:?}"
        );
    }
}

/// Losing every 5th broadcast is caught by the scenarios that count broadcasts.
#[test]
fn lost_broadcasts_fail_the_check() {
    let failed = failed_scenarios(Faults {
        drop_every_nth_broadcast: Some(5),
        ..Faults::default()
    });
    assert_named(&failed, &["message.id_echo", "order.concurrent_senders"]);
}

/// Swapped broadcasts are caught by the ordering scenarios.
#[test]
fn reordered_broadcasts_fail_the_check() {
    let failed = failed_scenarios(Faults {
        reorder_broadcasts: true,
        ..Faults::default()
    });
    assert_named(
        &failed,
        &["order.concurrent_senders", "order.stalled_reader"],
    );
}

/// Mislabelled errors fail every error scenario, closing codes included; scenarios without
/// errors still pass.
#[test]
fn wrong_error_codes_fail_the_check() {
    let failed = failed_scenarios(Faults {
        wrong_error_codes: true,
        ..Faults::default()
    });
    assert_named(
        &failed,
        &[
            "errors.bad_request.invalid_json",
            "errors.bad_request.bad_id",
            "errors.not_joined",
            "errors.already_joined",
            "errors.bad_nickname",
            "errors.nickname_taken",
            "errors.bad_room",
            "errors.no_such_user",
            "framing.line_over_limit",
            "framing.long_line_without_newline",
            "limits.server_full",
            "limits.idle_timeout",
        ],
    );
    assert!(!failed.iter().any(|f| f == "join.welcome"), "{failed:?}");
    assert!(
        !failed.iter().any(|f| f == "errors.unknown_type"),
        "{failed:?}"
    );
}

/// A server whose backlog is (practically) unbounded never cuts off a reader that never reads:
/// the stalled-reader scenario fails, saying so.
#[test]
fn unbounded_backlog_fails_the_stalled_reader_scenario() {
    let limits = Limits {
        max_line: 4096,
        max_backlog: 1 << 30,
        ..Limits::default()
    };
    let server = TestServer::start_limited(limits, Faults::default()).expect("start");
    let config = CheckConfig {
        max_line: Some(4096),
        max_backlog: Some(256 * 1024),
        only: Some("order.stalled_reader".into()),
        ..CheckConfig::default()
    };
    let report = run_checks(server.addr(), &config);
    match report.outcome("order.stalled_reader") {
        Some(Outcome::Fail(why)) => assert!(why.contains("never disconnected"), "{why}"),
        other => panic!("expected a FAIL, got {other:?}"),
    }
}

/// A server that counts queued bytes against `--max-backlog` before it has tried to write them
/// cuts off a member reading at full speed during a burst: the burst scenario fails.
#[test]
fn counting_untried_bytes_fails_the_burst_scenario() {
    let limits = Limits {
        max_backlog: 65536,
        ..Limits::default()
    };
    let faults = Faults {
        count_untried_backlog: true,
        ..Faults::default()
    };
    let server = TestServer::start_limited(limits, faults).expect("start");
    let config = CheckConfig {
        max_backlog: Some(65536),
        only: Some(loadgen::check::BURST.into()),
        ..CheckConfig::default()
    };
    let report = run_checks(server.addr(), &config);
    assert!(
        matches!(
            report.outcome(loadgen::check::BURST),
            Some(Outcome::Fail(_))
        ),
        "{report}"
    );
}

/// A server that drops the replies of a client that half-closed fails the half-close scenario.
#[test]
fn dropping_replies_on_hangup_fails_the_half_close_scenario() {
    let server = faulty(Faults {
        drop_replies_on_hangup: true,
        ..Faults::default()
    });
    let name = "close.half_close_gets_every_reply";
    let config = CheckConfig {
        only: Some(name.into()),
        ..CheckConfig::default()
    };
    let report = run_checks(server.addr(), &config);
    assert!(
        matches!(report.outcome(name), Some(Outcome::Fail(_))),
        "{report}"
    );
}
