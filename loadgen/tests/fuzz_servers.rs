//! Every server model survives 60 s of `loadgen fuzz`: no crash, no hang, no wrong answer, and
//! its process is still running afterwards.
//!
//! Each server runs as its own process (`loadgen::server_process`), found beside this test
//! binary or built first (`loadgen::sweep::find_or_build`, as the other process tests do). The
//! eleven runs happen at the same time, so the whole file takes about a minute. libtest would run
//! them two at a time on a two-core machine (its default is one thread per core), hence
//! `harness = false` (see Cargo.toml): `main` runs every selected case on its own thread and
//! reports each like libtest (`test NAME ... ok`), taking name filters like libtest.
//!
//! The witness bound is 5 s: far above a loaded machine's scheduling hiccups (the runs share
//! two cores with each other), far below what a server that stops answering shows. The fault
//! tests (`fuzz_faults.rs`) prove a stalled, crashed or wrong server fails.

use loadgen::fuzz::{fuzz, FuzzConfig};
use loadgen::server_process::ServerProcess;
use loadgen::sweep::find_or_build;
use loadgen::sweep::models::unavailable_here;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

/// How long each server is fuzzed.
const FUZZ_TIME: Duration = Duration::from_secs(60);

/// How long the witness waits for each reply.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(5);

/// One case: a name, the server package (its binary has the same name), its model flags, and
/// whether it serves one client at a time.
struct Case {
    name: &'static str,
    package: &'static str,
    args: &'static [&'static str],
    single: bool,
}

const CASES: [Case; 11] = [
    Case {
        name: "fuzz_chat_blocking_one_client_at_a_time",
        package: "chat-blocking",
        args: &[],
        single: true,
    },
    Case {
        name: "fuzz_chat_threads",
        package: "chat-threads",
        args: &[],
        single: false,
    },
    Case {
        name: "fuzz_chat_pool",
        package: "chat-pool",
        args: &[],
        single: false,
    },
    Case {
        name: "fuzz_chat_poll_with_poll",
        package: "chat-poll",
        args: &["--backend", "poll"],
        single: false,
    },
    Case {
        name: "fuzz_chat_poll_with_select",
        package: "chat-poll",
        args: &["--backend", "select"],
        single: false,
    },
    Case {
        name: "fuzz_chat_epoll_level_triggered",
        package: "chat-epoll",
        args: &["--trigger", "level"],
        single: false,
    },
    Case {
        name: "fuzz_chat_epoll_edge_triggered",
        package: "chat-epoll",
        args: &["--trigger", "edge"],
        single: false,
    },
    Case {
        name: "fuzz_chat_reactor",
        package: "chat-reactor",
        args: &[],
        single: false,
    },
    Case {
        name: "fuzz_chat_async",
        package: "chat-async",
        args: &[],
        single: false,
    },
    Case {
        name: "fuzz_chat_uring",
        package: "chat-uring",
        args: &[],
        single: false,
    },
    // A cluster node on the in-process bus: the same node code as on Redis, without a Redis
    // server to start; the chat port only (the WebSocket side has its own tests).
    Case {
        name: "fuzz_chat_cluster_node",
        package: "chat-cluster",
        args: &["--redis", "memory", "--http-addr", "off"],
        single: false,
    },
];

/// Fuzzes one server process for [`FUZZ_TIME`]; panics with the fuzzer's report on any
/// problem, or when the run did too little to mean anything. Returns a one-line summary.
fn fuzz_one(case: &Case) -> String {
    let program = find_or_build(case.package, true).unwrap_or_else(|e| panic!("{e}"));
    // chat-uring where the kernel or a seccomp profile refuses io_uring: said, not fuzzed.
    if let Some(why) = unavailable_here(case.package, &program) {
        return format!("SKIPPED: {why}");
    }
    let mut server = ServerProcess::spawn(&program, case.args)
        .unwrap_or_else(|e| panic!("{} does not start: {e}", case.package));
    let config = FuzzConfig {
        duration: FUZZ_TIME,
        witness_timeout: WITNESS_TIMEOUT,
        single: case.single,
        ..FuzzConfig::new(server.addr())
    };
    let report = fuzz(&config).unwrap_or_else(|e| panic!("{e:#}"));
    let text = report.render();
    assert!(report.ok(), "{}:\n{text}", case.name);
    assert!(
        server.is_running(),
        "{}: the server process is gone after the run\n{text}",
        case.name
    );
    // The run really attacked and really checked (a fuzzer that did nothing would "pass").
    let sessions: u64 = report.sessions.iter().map(|(_, n)| n).sum();
    let (min_sessions, min_replies) = if case.single { (20, 20) } else { (200, 100) };
    assert!(
        sessions >= min_sessions,
        "{}: too few sessions\n{text}",
        case.name
    );
    assert!(
        report.witness_replies >= min_replies,
        "{}: too few witness replies\n{text}",
        case.name
    );
    assert!(
        report.errors.get("bad_request").copied().unwrap_or(0) > 0,
        "{}: no bad_request at all: the attack did not reach the parser\n{text}",
        case.name
    );
    let _ = server.terminate(Duration::from_secs(5));
    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    format!(
        "{sessions} sessions, {} connections, {} witness replies (p99 {:.1} ms, max {:.1} ms), seed {}",
        report.connections,
        report.witness_replies,
        ms(report.witness_p99),
        ms(report.witness_max),
        report.setup.seed
    )
}

fn main() -> ExitCode {
    // libtest-like: plain arguments filter by name; flags (--nocapture, ...) are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&'static Case> = CASES
        .iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    println!("running {} tests (at the same time)", selected.len());
    let (done, results) = mpsc::channel();
    for case in &selected {
        let (case, done) = (*case, done.clone());
        std::thread::spawn(move || {
            let summary = catch_unwind(AssertUnwindSafe(|| fuzz_one(case))).ok();
            let _ = done.send((case.name, summary));
        });
    }
    drop(done);
    let mut failed = Vec::new();
    for (name, summary) in results {
        match summary {
            Some(summary) => println!("test {name} ... ok ({summary})"),
            None => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        println!("test result: ok. {} passed", selected.len());
        ExitCode::SUCCESS
    } else {
        println!("test result: FAILED: {failed:?}");
        ExitCode::FAILURE
    }
}
