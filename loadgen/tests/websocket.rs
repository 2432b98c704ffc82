//! The WebSocket transport of `loadgen check` and `loadgen run`, against the test server's
//! WebSocket front (`TestServer::start_with_ws`, PROTOCOL.md's WebSocket rules on the same Hub
//! as its TCP clients).
//!
//! After the cluster node's `/ws` lands, the same two checks belong against it: `loadgen check
//! --transport ws --addr <its HTTP address>` passing, and a `loadgen run --transport ws` with
//! nothing lost (see the README).

mod support;

use loadgen::check::{run_checks, CheckConfig, Outcome};
use loadgen::run::{run, RunConfig, Transport};
use loadgen::testkit::{Faults, Limits, TestServer};
use std::process::Command;
use std::time::Duration;

/// The checker told the test server's small limits (`Limits::small`, so that the scenarios
/// that need them run), over WebSocket.
fn ws_config() -> CheckConfig {
    CheckConfig {
        transport: Transport::Ws,
        ..Limits::small().check_config()
    }
}

/// Over WebSocket, a correct server passes every scenario but the TCP-only ones (skipped with
/// their reason) and those needing a limit the server was not started with; the `ws.*`
/// scenarios run, close codes included.
#[test]
fn check_over_websocket_passes_a_correct_server() {
    let server = TestServer::start_with_ws(Limits::small(), Faults::default()).expect("start");
    let addr = server.ws_addr().expect("a WebSocket front");
    let report = run_checks(addr, &ws_config());
    println!("{report}");
    assert_eq!(report.failed(), 0, "{report}");
    for name in [
        "ws.binary_message_is_bad_request",
        "ws.message_over_limit_closes_1008",
        "ws.quit_closes_1000",
        "ws.idle_timeout_closes_1008",
        "ws.server_full_closes_1013",
        "ws.client_close_is_answered",
        "ws.ping_gets_pong",
        "ws.fragmented_message",
        "message.broadcast_to_room",
        "order.concurrent_senders",
        "backlog.burst_spares_a_full_speed_reader",
    ] {
        assert_eq!(
            report.outcome(name),
            Some(&Outcome::Pass),
            "{name}\n{report}"
        );
    }
    for (name, why) in [
        ("framing.crlf", "TCP only"),
        ("close.half_close_gets_every_reply", "TCP only"),
        ("limits.slowloris", "TCP only"),
    ] {
        match report.outcome(name) {
            Some(Outcome::Skip(reason)) => assert!(reason.contains(why), "{name}: {reason}"),
            other => panic!("{name} should be skipped over WebSocket, got {other:?}"),
        }
    }
}

/// The checker's WebSocket scenarios notice a server that breaks the rules: a TCP-only server
/// refuses the upgrade, and every scenario fails saying so.
#[test]
fn check_over_websocket_fails_a_server_without_websocket() {
    let server = TestServer::start_limited(Limits::small(), Faults::default()).expect("start");
    let config = CheckConfig {
        only: Some("ping.pong".into()),
        ..ws_config()
    };
    let report = run_checks(server.addr(), &config);
    match report.outcome("ping.pong") {
        Some(Outcome::Fail(why)) => assert!(why.contains("upgrade"), "{why}"),
        other => panic!("expected a FAIL, got {other:?}"),
    }
}

/// `loadgen run --transport ws`: every connection upgrades and joins, every copy arrives, in
/// order; a server that drops broadcasts is caught over WebSocket as over TCP.
#[test]
fn run_over_websocket_accounts_for_every_copy() {
    let server = TestServer::start_with_ws(Limits::default(), Faults::default()).expect("start");
    let mut config = support::quick(server.ws_addr().expect("ws"), 60);
    config.transport = Transport::Ws;
    config.rate = Some(10.0);
    let report = run(&config).expect("run");
    assert!(support::server_clean(&report), "{}", report.headline);
    assert_eq!(report.connections.connected, 60);
    assert!(report.messages.acked > 0);
    assert_eq!(report.messages.deliveries, 4 * report.messages.acked);
    assert_eq!(report.config.ws_path.as_deref(), Some("/ws"));

    let faulty = TestServer::start_with_ws(
        Limits::default(),
        Faults {
            drop_every_nth_broadcast: Some(7),
            ..Faults::default()
        },
    )
    .expect("start");
    config.addrs = vec![faulty.ws_addr().expect("ws")];
    let report = run(&config).expect("run");
    assert!(report.messages.lost > 0, "{}", report.headline);
    assert!(!report.ok);
}

/// A WebSocket run against the TCP port fails every connection, with the upgrade as the reason.
#[test]
fn run_over_websocket_against_plain_tcp_says_why() {
    let server = TestServer::start(Faults::default()).expect("start");
    let mut config = RunConfig::new(server.addr(), 4);
    config.transport = Transport::Ws;
    config.duration = Duration::from_millis(300);
    config.warmup = Duration::ZERO;
    config.connect_timeout = Duration::from_secs(5);
    let report = run(&config).expect("run");
    assert_eq!(report.connections.connected, 0);
    assert!(
        report.connections.failures.contains_key("ws_upgrade"),
        "{:?}",
        report.connections
    );
}

/// The command line takes `--transport ws` for both commands.
#[test]
fn command_line_transport_flag() {
    let server = TestServer::start_with_ws(Limits::small(), Faults::default()).expect("start");
    let addr = server.ws_addr().expect("ws").to_string();
    let check = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "check",
            "--addr",
            &addr,
            "--transport",
            "ws",
            "--only",
            "ws.",
        ])
        .output()
        .expect("loadgen check runs");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(stdout.contains("PASS ws.quit_closes_1000"), "{stdout}");
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--addr", &addr, "--transport", "ws", "--conns", "20"])
        .args(["--duration", "1s", "--warmup", "200ms", "--rate", "5"])
        .output()
        .expect("loadgen run runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("(WebSocket /ws)"), "{stdout}");
    assert!(stdout.contains("20 connected"), "{stdout}");
}

/// Churn over WebSocket: churners say goodbye with a close frame, upgrade again and rejoin;
/// the members that stay lose nothing.
#[test]
fn churn_over_websocket() {
    let server = TestServer::start_with_ws(Limits::default(), Faults::default()).expect("start");
    let mut config = support::quick(server.ws_addr().expect("ws"), 50);
    config.transport = Transport::Ws;
    config.rate = Some(5.0);
    config.churn = Some(20.0);
    config.duration = Duration::from_secs(2);
    let report = run(&config).expect("run");
    let churn = report.churn.as_ref().expect("churn section");
    assert!(churn.closes >= 10, "{}", report.headline);
    assert_eq!(churn.reconnect_failures, 0, "{}", report.headline);
    support::assert_nothing_lost(&report);
    let m = &report.messages;
    assert_eq!(m.received_copies, m.expected_copies, "{}", report.headline);
    assert_eq!(report.connections.dropped, 0, "{}", report.headline);
}
