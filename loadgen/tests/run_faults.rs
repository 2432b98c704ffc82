//! The checks of `loadgen run` can fail: against a deliberately faulty TestServer the run
//! reports lost and reordered deliveries, and a stalling server shows in the open-loop
//! (coordinated-omission corrected) latency but hides in the closed-loop one.

mod support;

use loadgen::run::{render_summary, run, RunConfig, RunReport};
use loadgen::testkit::{Faults, TestServer};
use std::net::SocketAddr;
use std::time::Duration;

/// `support::quick` at 40 msg/s for 1.5 s; copies that never come are waited for 2 s.
fn config(addr: SocketAddr, conns: usize, room_size: usize) -> RunConfig {
    let mut config = support::quick(addr, conns);
    config.room_size = room_size;
    config.rate = Some(40.0);
    config.duration = Duration::from_millis(1500);
    config.drain = Duration::from_secs(2);
    config
}

/// A server that drops every 7th broadcast to each recipient.
fn lossy_server() -> TestServer {
    TestServer::start(Faults {
        drop_every_nth_broadcast: Some(7),
        ..Faults::default()
    })
    .expect("test server")
}

/// The run failed, its headline starts with `verdict` and names the lost copies.
fn assert_failed_with_loss(report: &RunReport, verdict: &str) {
    assert!(!report.ok);
    assert!(report.headline.starts_with(verdict), "{}", report.headline);
    assert!(
        report.headline.contains("copies lost"),
        "{}",
        report.headline
    );
}

/// A server that drops every 7th broadcast to each recipient: the run counts the missing
/// copies as lost (and every expected copy is either received or lost), fails, and says so.
#[test]
fn dropped_broadcasts_are_reported_lost() {
    let server = lossy_server();
    let report = run(&config(server.addr(), 12, 4)).expect("run");
    let m = &report.messages;
    assert!(m.lost > 0, "no loss detected: {}", report.headline);
    assert_eq!(m.received_copies + m.lost, m.expected_copies, "{m:?}");
    assert_eq!(m.duplicated, 0);
    assert_failed_with_loss(&report, "FAILED:");
}

/// `--tolerate-generator-lag` lifts only the generator's own verdict: the same lossy server with
/// a generator made "behind" (any send lag over 0 µs counts) still fails the run, and the
/// headline names both.
#[test]
fn tolerating_the_generator_never_hides_a_loss() {
    let server = lossy_server();
    let mut config = config(server.addr(), 12, 4);
    config.tolerate_generator_lag = true;
    // Microsecond resolution: a nanosecond allowed is 0 µs, which no woken thread can keep.
    config.max_send_lag = Duration::from_nanos(1);
    let report = run(&config).expect("run");
    assert!(report.generator.behind, "{}", report.headline);
    assert!(report.messages.lost > 0, "{}", report.headline);
    assert_failed_with_loss(&report, &format!("FAILED: {} (", loadgen::run::BEHIND));
}

/// A run that sent late although no generator thread was busy, with as many engine threads as
/// the machine has cores and the server on loopback: the verdict names the cure, one engine
/// thread fewer (benches/results/2026-12-03-pacing). With fewer threads than cores it does not.
/// Any send lag over 0 µs counts as late here, so both runs are behind.
#[test]
fn a_late_generator_on_every_core_is_told_to_leave_the_server_one() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = TestServer::start(Faults::default()).expect("test server");
    let late = |threads: usize| {
        // At least one connection a thread, so that none of them is left out.
        let mut config = config(server.addr(), 4 * cores.max(3), 4);
        config.max_send_lag = Duration::from_nanos(1);
        config.threads = Some(threads);
        let report = run(&config).expect("run");
        assert!(report.generator.behind, "{}", report.headline);
        assert_eq!(report.messages.lost, 0, "{}", report.headline);
        report.problems[0].clone()
    };
    let advice = "leaves the server a core";
    if cores >= 2 {
        let verdict = late(cores);
        let cure = format!("`--threads {}` {advice}", cores - 1);
        assert!(verdict.contains(&cure), "{verdict}");
        assert!(
            !late(cores - 1).contains(advice),
            "one thread fewer already leaves a core"
        );
    } else {
        // One core: there is no thread to give up.
        assert!(!late(1).contains(advice));
    }
}

/// A server that swaps consecutive broadcasts: the run counts deliveries out of order, none
/// lost (the swapped copies do arrive), and fails.
#[test]
fn reordered_broadcasts_are_reported_out_of_order() {
    let server = TestServer::start(Faults {
        reorder_broadcasts: true,
        ..Faults::default()
    })
    .expect("test server");
    // Rooms of one: every broadcast a connection receives is its own, so each swap reverses
    // two messages of the same sender.
    let report = run(&config(server.addr(), 4, 1)).expect("run");
    let m = &report.messages;
    assert!(
        m.out_of_order > 0,
        "no reordering detected: {}",
        report.headline
    );
    assert_eq!(m.lost, 0, "{}", report.headline);
    assert_eq!(m.duplicated, 0);
    assert!(!report.ok);
    assert!(
        report.headline.contains("out of order"),
        "{}",
        report.headline
    );
}

/// Starts a server that holds all output during [3 s, 4 s) after its start, and runs a 5 s
/// measured window right away, so the window contains exactly that one 1-second stall.
fn run_against_stall(closed: bool) -> RunReport {
    let server = TestServer::start(Faults {
        stall: Some((Duration::from_secs(3), Duration::from_secs(1))),
        ..Faults::default()
    })
    .expect("test server");
    let mut cfg = config(server.addr(), 4, 1);
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Duration::from_secs(5);
    cfg.rate = if closed { None } else { Some(50.0) };
    run(&cfg).expect("run")
}

/// Coordinated omission: in open loop every message due during the 1 s stall waits for it,
/// about a fifth of the samples, so p99 shows the stall (~1 s). In closed loop each connection
/// has one message in flight: the stall delays one message per connection and the rest of
/// the samples are fast, so p99 stays far below it; only `max` betrays the stall.
#[test]
fn open_loop_p99_shows_a_stall_that_closed_loop_hides() {
    let open = run_against_stall(false);
    let closed = run_against_stall(true);
    eprintln!("open loop:\n{}", render_summary(&open));
    eprintln!("closed loop:\n{}", render_summary(&closed));
    let (open_rt, closed_rt) = (&open.latency_us.round_trip, &closed.latency_us.round_trip);
    assert!(
        support::server_clean(&open) && support::server_clean(&closed),
        "{}\n{}",
        open.headline,
        closed.headline
    );
    assert!(
        open_rt.p99 >= 500_000,
        "open-loop p99 {} µs should reflect the 1 s stall",
        open_rt.p99
    );
    assert!(
        closed_rt.max >= 500_000,
        "the closed-loop run did see the stall (max {} µs)",
        closed_rt.max
    );
    assert!(
        closed_rt.p99 < 500_000,
        "closed-loop p99 {} µs should hide the stall ({} samples)",
        closed_rt.p99,
        closed_rt.count
    );
}
