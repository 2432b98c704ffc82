//! The scenarios of the exercises' protocol extensions (`loadgen check --extension`): off by
//! default, and each one fails against a server without the extensions (the in-process test
//! server speaks PROTOCOL.md and nothing more). That they pass against the reference solution,
//! `chat-ext`, is proven by the lessons' exercises test (`cargo test -p lessons --test
//! exercises`), which runs exercises 12 to 14's checks on it.

use loadgen::check::{run_checks, CheckConfig, Extension, Outcome};
use loadgen::testkit::{Faults, TestServer};
use std::process::Command;

/// Without `--extension`, no extension scenario is even listed: every server's own conformance
/// run stays as it was.
#[test]
fn extensions_are_off_by_default() {
    let server = TestServer::start(Faults::default()).expect("start the test server");
    let report = run_checks(server.addr(), &CheckConfig::default());
    let listed: Vec<&str> = report
        .results
        .iter()
        .map(|r| r.name)
        .filter(|name| name.starts_with("ext."))
        .collect();
    assert!(listed.is_empty(), "listed without --extension: {listed:?}");
}

/// A server of PROTOCOL.md without the extensions fails every extension scenario: none passes
/// before the student has done anything.
#[test]
fn every_extension_scenario_fails_without_the_extensions() {
    let server = TestServer::start(Faults::default()).expect("start the test server");
    let config = CheckConfig {
        extensions: vec![Extension::Login, Extension::History, Extension::File],
        only: Some("ext.".into()),
        ..CheckConfig::default()
    };
    let report = run_checks(server.addr(), &config);
    let not_failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Fail(_)))
        .map(ToString::to_string)
        .collect();
    assert!(
        report.results.len() >= 20,
        "expected the three extensions' scenarios, got {}",
        report.summary()
    );
    assert!(
        not_failed.is_empty(),
        "these passed or were skipped against a server without the extensions:\n{}",
        not_failed.join("\n")
    );
}

/// `--extension` takes the three names (comma-separated) and refuses any other.
#[test]
fn the_flag_names_the_extensions() {
    let server = TestServer::start(Faults::default()).expect("start the test server");
    let run = |extension: &str| {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["check", "--addr", &server.addr().to_string()])
            .args(["--extension", extension, "--only", "ext.history.not_joined"])
            .output()
            .expect("run loadgen check")
    };
    let output = run("login,history");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL ext.history.not_joined"), "{stdout}");
    assert!(stdout.contains("0 passed, 1 failed, 0 skipped"), "{stdout}");
    let output = run("emoji");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("login, history, file"), "{stderr}");
}
