//! The process-level assertions (`assert_conformance`, `assert_graceful_shutdown`,
//! `assert_survives_fd_exhaustion`) against a real server *process*: this test binary itself,
//! started with `--serve-testkit`, runs a `TestServer` with the standard server flags.
//!
//! That needs control over `main`, hence `harness = false` (see Cargo.toml): `main` either
//! serves (when started by a test) or runs the tests below, taking name filters like libtest.

use chat_core::{ServerArgs, Shutdown};
use clap::Parser;
use loadgen::check::{assert_conformance, assert_graceful_shutdown, assert_survives_fd_exhaustion};
use loadgen::testkit::{Faults, Limits, TestServer};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The first argument that turns this binary into a server.
const SERVE: &str = "--serve-testkit";

/// The tests: a name and what it pins down, for the report.
const TESTS: [(&str, fn()); 6] = [
    (
        "conformance_of_a_correct_server_process",
        conformance_of_a_correct_server_process,
    ),
    (
        "conformance_of_a_one_at_a_time_server",
        conformance_of_a_one_at_a_time_server,
    ),
    (
        "graceful_shutdown_of_a_one_at_a_time_server",
        graceful_shutdown_of_a_one_at_a_time_server,
    ),
    (
        "conformance_fails_for_wrong_error_codes",
        conformance_fails_for_wrong_error_codes,
    ),
    (
        "graceful_shutdown_of_a_correct_server",
        graceful_shutdown_of_a_correct_server,
    ),
    ("fd_exhaustion_is_survived", fd_exhaustion_is_survived),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(SERVE) {
        return serve(&args[2..]);
    }
    // libtest-like: plain arguments filter by name; flags (--nocapture, ...) are ignored.
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("running {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in selected {
        let ok = catch_unwind(AssertUnwindSafe(test)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        println!("test result: ok");
        ExitCode::SUCCESS
    } else {
        println!("test result: FAILED: {failed:?}");
        ExitCode::FAILURE
    }
}

/// Server mode: the common server flags, plus two of the fixture's options.
#[derive(Parser, Debug)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    wrong_error_codes: bool,
    /// Serve one connection at a time (a stand-in for the blocking model).
    #[arg(long)]
    one_at_a_time: bool,
}

fn serve(args: &[String]) -> ExitCode {
    let args =
        ServeArgs::parse_from(std::iter::once("serve").chain(args.iter().map(String::as_str)));
    let limits = Limits {
        hub: args.server.hub_config(),
        max_line: args.server.max_line,
        max_backlog: args.server.max_backlog,
        one_at_a_time: args.one_at_a_time,
    };
    let faults = Faults {
        wrong_error_codes: args.wrong_error_codes,
        ..Faults::default()
    };
    let shutdown = match Shutdown::on_signal(|| {}) {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("cannot watch signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match TestServer::start_limited_at(args.server.addr, limits, faults) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    chat_core::net::announce(server.addr());
    while !shutdown.is_requested() {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(server); // sends shutting_down and closes every connection
    ExitCode::SUCCESS
}

fn this_binary() -> PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

/// `assert_conformance` passes for a correct server process started with the limit flags.
fn conformance_of_a_correct_server_process() {
    assert_conformance(&this_binary(), &[SERVE], false);
}

/// `assert_conformance(.., single = true)` passes for a one-connection-at-a-time server.
fn conformance_of_a_one_at_a_time_server() {
    assert_conformance(&this_binary(), &[SERVE, "--one-at-a-time"], true);
}

/// `assert_graceful_shutdown` with one client, as one-client servers call it.
fn graceful_shutdown_of_a_one_at_a_time_server() {
    assert_graceful_shutdown(&this_binary(), &[SERVE, "--one-at-a-time"], 1);
}

/// `assert_conformance` panics for a server that mislabels errors, naming the failed scenarios.
fn conformance_fails_for_wrong_error_codes() {
    // The panic is expected: keep its long message out of the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(|| {
        assert_conformance(&this_binary(), &[SERVE, "--wrong-error-codes"], false);
    });
    std::panic::set_hook(hook);
    let panic = result.expect_err("a server with wrong error codes must not pass");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    for name in [
        "errors.not_joined",
        "limits.server_full",
        "framing.line_over_limit",
    ] {
        assert!(
            message.contains(&format!("FAIL {name}:")),
            "{name} not named in: {message}"
        );
    }
}

/// Every connected client receives `shutting_down` and EOF, and the process exits 0 in time.
fn graceful_shutdown_of_a_correct_server() {
    assert_graceful_shutdown(&this_binary(), &[SERVE], 5);
}

/// With 64 file descriptors and 150 connection attempts, the server keeps serving, stays idle,
/// and accepts again afterwards.
fn fd_exhaustion_is_survived() {
    assert_survives_fd_exhaustion(&this_binary(), &[SERVE]);
}
