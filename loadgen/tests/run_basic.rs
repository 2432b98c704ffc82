//! `loadgen run` against the in-process TestServer: every workload, both loops, the failure
//! reports, and the command line with its JSON output.

mod support;

use chat_core::HubConfig;
use loadgen::run::{run, RunReport, Spread, Workload, SCHEMA};
use loadgen::testkit::{nothing_listens, Faults, TestServer};
use support::{quick, CliRun};

/// Everything a server controls is clean (see `support::server_clean`).
fn assert_clean(report: &RunReport) {
    assert!(
        support::server_clean(report),
        "run not clean: {}",
        report.headline
    );
    assert_eq!(report.messages.lost, 0);
    assert_eq!(report.messages.duplicated, 0);
    assert_eq!(report.messages.out_of_order, 0);
    assert_eq!(report.messages.unparsed, 0);
    assert_eq!(
        report.messages.received_copies, report.messages.expected_copies,
        "{}",
        report.headline
    );
}

/// The chat workload: every member receives every message of its room, the sender's own copy
/// counts as its acknowledgement, and fan-out latency is measured for the other members.
#[test]
fn chat_workload_accounts_for_every_copy() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let report = run(&quick(server.addr(), 40)).expect("run");
    assert_clean(&report);
    assert_eq!(report.connections.connected, 40);
    assert_eq!(report.config.rooms, 8);
    let m = &report.messages;
    assert!(m.sent > 0 && m.acked == m.sent, "{m:?}");
    // Rooms of 5: four other members receive each message.
    assert_eq!(m.deliveries, 4 * m.acked);
    assert_eq!(report.latency_us.round_trip.count, m.acked);
    assert_eq!(report.latency_us.fanout.count, m.deliveries);
    // "OK", or "FAILED" only because a busy machine made the generator late (assert_clean).
    assert!(
        report.headline.contains(" 40/40 connected"),
        "{}",
        report.headline
    );
    // The JSON round-trips and carries its schema.
    let json = serde_json::to_string(&report).expect("serializes");
    let back = RunReport::from_json(&json).expect("parses back");
    assert_eq!(back.schema, SCHEMA);
    assert_eq!(back.messages.acked, m.acked);
}

/// Ping (closed loop), private messages and idle connections all run clean.
#[test]
fn ping_private_and_idle_workloads() {
    let server = TestServer::start(Faults::default()).expect("test server");

    let mut ping = quick(server.addr(), 10);
    ping.workload = Workload::Ping;
    ping.rate = None; // closed loop
    let report = run(&ping).expect("ping run");
    assert_clean(&report);
    assert_eq!(report.config.mode, "closed");
    assert!(report.messages.acked > 0);
    assert_eq!(report.messages.deliveries, 0);

    let mut private = quick(server.addr(), 10);
    private.workload = Workload::Private;
    let report = run(&private).expect("private run");
    assert_clean(&report);
    // Each private message reaches exactly one partner.
    assert_eq!(report.messages.deliveries, report.messages.acked);

    let mut idle = quick(server.addr(), 30);
    idle.workload = Workload::Idle;
    idle.server_pids = vec![std::process::id()]; // the TestServer lives in this process
    let report = run(&idle).expect("idle run");
    assert_clean(&report);
    assert_eq!(report.messages.sent_total, 0);
    assert_eq!(report.connections.join_us.count, 30);
    let server_report = report.server.expect("server figures with a pid");
    assert!(server_report.rss_connected_kib > 0);
}

/// Connections spread over several 127.0.0.x source addresses (bound before connecting, as
/// beyond ~28,000 connections they must be) open and work like the others.
#[test]
fn several_source_addresses() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut config = quick(server.addr(), 30);
    config.source_addrs = Some(3);
    let report = run(&config).expect("run");
    assert_clean(&report);
    assert_eq!(report.config.source_addrs, 3);
    assert_eq!(report.connections.connected, 30);
}

/// Connections that cannot open are counted by kind and named in the first line.
#[test]
fn refused_connections_are_reported_first() {
    let closed = nothing_listens();
    let report = run(&quick(closed.addr(), 5)).expect("run");
    assert!(!report.ok);
    assert_eq!(report.connections.connected, 0);
    assert_eq!(report.connections.failures.get("refused"), Some(&5));
    assert!(
        report
            .headline
            .starts_with("FAILED: only 0 of 5 connections opened (5 refused)"),
        "{}",
        report.headline
    );
}

/// Half the rooms on a server that never answers (its listener accepts nothing, so the kernel
/// completes the connects and the handshakes wait in its backlog): those connections fail with
/// `join_timeout` when the connect timeout has passed, and the other half, whose connect and
/// join deadlines passed long after they joined, are not failed by them and lose nothing.
#[test]
fn unanswered_handshakes_time_out_and_joined_connections_do_not() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut cfg = quick(server.addr(), 20);
    cfg.addrs.push(silent.local_addr().expect("address"));
    cfg.spread = Spread::Rooms;
    // Long enough for the joins on a loaded machine; the silent half waits all of it.
    cfg.connect_timeout = std::time::Duration::from_secs(5);
    let report = run(&cfg).expect("run");
    assert!(!report.ok);
    assert_eq!(report.connections.connected, 10, "{}", report.headline);
    assert_eq!(
        report.connections.failures.get("join_timeout"),
        Some(&10),
        "{:?}",
        report.connections.failures
    );
    assert_eq!(report.connections.dropped, 0);
    assert!(report.messages.acked > 0, "{:?}", report.messages);
    assert_eq!(report.messages.lost, 0);
    drop(silent);
}

/// A server at its connection limit answers `server_full`: reported as such, and the run goes
/// on with the connections that did open.
#[test]
fn server_full_is_reported() {
    let config = HubConfig {
        max_conns: 3,
        ..HubConfig::default()
    };
    let server = TestServer::start_with(config, Faults::default()).expect("test server");
    let mut cfg = quick(server.addr(), 5);
    cfg.connect_rate = 50.0; // in order: the first three get in
    let report = run(&cfg).expect("run");
    assert_eq!(report.connections.connected, 3);
    assert_eq!(report.connections.failures.get("server_full"), Some(&2));
    assert!(report
        .headline
        .contains("only 3 of 5 connections opened (2 server_full)"));
    assert_eq!(report.messages.lost, 0);
    assert!(report.messages.acked > 0);
}

/// The command line prints the verdict first, writes the JSON report, and exits 0 on a clean
/// run (1 only if the busy test machine made the generator fall behind, which it then says).
#[test]
fn command_line_prints_summary_and_writes_json() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let cli = CliRun::new(
        "run-cli",
        &[
            &["--addr", &server.addr().to_string()],
            &["--conns", "12", "--rooms", "3", "--rate", "10"],
            &[
                "--duration",
                "1s",
                "--warmup",
                "200ms",
                "--connect-timeout",
                "20s",
            ],
        ],
    );
    let stdout = &cli.stdout;
    let first_line = stdout.lines().next().unwrap_or("");
    cli.assert_ok_or_behind();
    assert!(first_line.contains(" 12/12 connected"), "{stdout}");
    assert!(stdout.contains("round trip (corrected)"), "{stdout}");
    assert!(stdout.contains("send lag (generator)"), "{stdout}");
    assert!(stdout.contains("µs per message"), "{stdout}");
    let report = cli.report();
    assert_clean(&report);
    assert_eq!(report.config.room_size, 4);
    assert_eq!(report.connections.connected, 12);
    assert!(report.generator.cpu_us_per_msg.is_some());
}
