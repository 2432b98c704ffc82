//! `loadgen run` in several processes: worker processes of the `loadgen` binary each hold whole
//! rooms, and the parent merges their histograms and counters into one report. The one big run
//! of the test suite is here: 30,000 connections, more than one process may hold on this
//! machine (20,000 open files), over two chat-epoll processes of 15,000 each.

mod support;

use loadgen::run::{run, RunReport, Spread};
use loadgen::server_process::{ServerProcess, SpawnOptions};
use loadgen::testkit::{Faults, TestServer};
use support::{chat_epoll, quick, CliRun};

/// Per-address figures add up to the run's, and latency counts to the message counts.
fn assert_adds_up(report: &RunReport) {
    let sum = |f: fn(&loadgen::run::AddrReport) -> u64| report.per_addr.iter().map(f).sum::<u64>();
    assert_eq!(sum(|p| p.connected), report.connections.connected as u64);
    assert_eq!(sum(|p| p.sent), report.messages.sent);
    assert_eq!(sum(|p| p.acked), report.messages.acked);
    assert_eq!(sum(|p| p.deliveries), report.messages.deliveries);
    assert_eq!(report.latency_us.round_trip.count, report.messages.acked);
    assert_eq!(report.latency_us.fanout.count, report.messages.deliveries);
}

/// Two worker processes against one in-process server: the report is one report of the same
/// schema, whose counts are those of the whole run (every room's copies accounted for, both
/// processes' engine threads counted).
#[test]
fn two_processes_make_one_report() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut config = quick(server.addr(), 40);
    config.procs = Some(2);
    config.threads = Some(1);
    config.rate = Some(10.0);
    let report = run(&config).expect("run");
    assert!(support::server_clean(&report), "{}", report.headline);
    assert_eq!(report.config.procs, 2);
    assert_eq!(report.generator.procs, 2);
    assert_eq!(report.generator.threads, 2);
    // Each process bound its own source address, so they never compete for ports.
    assert_eq!(report.config.source_addrs, 2);
    assert_eq!(report.connections.connected, 40);
    assert!(report.messages.acked > 0);
    // Rooms of 5: four other members receive each message, whichever process sent it.
    assert_eq!(report.messages.deliveries, 4 * report.messages.acked);
    assert_adds_up(&report);
}

/// 30,000 connections against two chat-epoll processes of 15,000 each (whole rooms per server:
/// two processes are not a cluster), with the default number of generator processes: two, as
/// one may hold only 20,000 descriptors here. Everyone connects, nothing is lost, and the
/// command line prints one merged report. Bounded: 5,000 connects a second, a 0.1 msg/s
/// trickle over 3 s.
#[test]
fn thirty_thousand_connections_over_two_servers() {
    let options = SpawnOptions {
        fd_limit: Some(16_384),
        ..SpawnOptions::default()
    };
    let servers: Vec<ServerProcess> = (0..2).map(|_| chat_epoll(&options)).collect();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
    let pids: Vec<String> = servers.iter().map(|s| s.pid().to_string()).collect();
    let cli = CliRun::new(
        "run-30k",
        &[
            &["--addr", &addrs.join(","), "--spread", "rooms"],
            &["--conns", "30000", "--room-size", "10", "--rate", "0.1"],
            &[
                "--duration",
                "3s",
                "--warmup",
                "1s",
                "--connect-rate",
                "5000",
            ],
            &["--connect-timeout", "30s", "--drain", "20s"],
            &["--server-pid", &pids.join(",")],
        ],
    );
    let stdout = &cli.stdout;
    eprintln!("{stdout}");
    cli.assert_ok_or_behind();
    let report = cli.report();
    assert!(support::server_clean(&report), "{stdout}");
    assert_eq!(report.connections.connected, 30_000, "{stdout}");
    assert_eq!(report.messages.lost, 0, "{stdout}");
    assert_eq!(report.generator.procs, 2, "{stdout}");
    assert_eq!(report.config.spread, Spread::Rooms);
    assert!(report.messages.acked > 0, "{stdout}");
    assert_eq!(report.per_addr.len(), 2);
    for per_addr in &report.per_addr {
        assert_eq!(per_addr.connected, 15_000, "{stdout}");
    }
    assert_adds_up(&report);
    let server = report.server.as_ref().expect("both servers sampled");
    assert_eq!(server.pids.len(), 2);
    assert!(stdout.contains("per server"), "{stdout}");
}
